"""Write values into tinyedge.yaml by editing its text, so comments, order and layout stay as the user wrote them.

PyYAML drops comments when it dumps, so each value is put in place through the marks of the composed node: an
existing value has its characters replaced; a missing key is added at the end of its section (a block section
gets new lines at its indentation, a flow section `{...}` one more `key: value`).
"""
from __future__ import annotations

from typing import Any

import yaml

from ...errors import TinyedgeError


def flow(value: Any) -> str:
    """A value as one line of YAML: 0.5, int8, {sparsity: 0.5}."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 30)
    return text.removesuffix("\n...\n").strip()


def _nested(parts: list[str], value: Any) -> Any:
    for part in reversed(parts):
        value = {part: value}
    return value


def _last_line(node: yaml.Node) -> int:
    """0-based line of the last character of a block node's content."""
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    end = node.end_mark
    return end.line - 1 if end.column == 0 and end.line > node.start_mark.line else end.line


def set_value(text: str, key: str, value: Any, where: str = "tinyedge.yaml") -> str:
    parts = key.split(".")
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if node is None:
        return text.rstrip("\n") + ("\n" if text.strip() else "") + _block(parts, value, 0) + "\n"
    depth = 0
    while depth < len(parts) and isinstance(node, yaml.MappingNode):
        match = next((v for k, v in node.value if k.value == parts[depth]), None)
        if match is None:
            break
        node, depth = match, depth + 1
    rest = parts[depth:]
    start, end = node.start_mark.index, node.end_mark.index
    if not rest:
        if isinstance(node, yaml.ScalarNode) or node.flow_style:
            return text[:start] + flow(value) + text[end:]
        raise TinyedgeError(f"{where}:{node.start_mark.line + 1}: {key} is a section; expected a single value to "
                            f"replace with {flow(value)}: set the keys inside it instead")
    if isinstance(node, yaml.MappingNode) and node.flow_style:
        close = text.rindex("}", start, end)
        separator = ", " if node.value else ""
        return text[:close] + f"{separator}{rest[0]}: {flow(_nested(rest[1:], value))}" + text[close:]
    if isinstance(node, yaml.MappingNode) and node.value:
        lines = text.splitlines(keepends=True)
        after = _last_line(node)
        if not lines[after].endswith("\n"):
            lines[after] += "\n"
        lines.insert(after + 1, _block(rest, value, node.value[0][0].start_mark.column) + "\n")
        return "".join(lines)
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":  # `prune:` or `prune: null`
        spacer = "" if text[start - 1:start] == " " else " "
        return text[:start] + spacer + flow(_nested(rest, value)) + text[end:]
    found = ".".join(parts[:depth]) or "the document"
    raise TinyedgeError(f"{where}:{node.start_mark.line + 1}: {found} is not a section, so {key} cannot be set "
                        "in it; make it a mapping of keys first")


def _block(parts: list[str], value: Any, indent: int) -> str:
    lines = [" " * (indent + 2 * i) + f"{part}:" for i, part in enumerate(parts[:-1])]
    lines.append(" " * (indent + 2 * (len(parts) - 1)) + f"{parts[-1]}: {flow(value)}")
    return "\n".join(lines)


def set_values(text: str, values: dict[str, Any], where: str = "tinyedge.yaml") -> str:
    for key, value in values.items():
        text = set_value(text, key, value, where)
    return text
