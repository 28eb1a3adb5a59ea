"""Helpers for every generator of C sources (firmware projects, the preprocessing): Jinja2 environments that
fail on a missing value, integer C types, arrays as rows of literals."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import TinyedgeError

CTYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t"}


def environment(templates: Path):
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.filters["c_string"] = lambda text: json.dumps(text, ensure_ascii=False)  # JSON escapes are valid C
    return env


def hex_rows(values, per_row: int, fmt: str) -> list[str]:
    items = [fmt.format(v) for v in values]
    return [", ".join(items[i:i + per_row]) + "," for i in range(0, len(items), per_row)]


def ctype(dtype: str, what: str) -> str:
    if dtype not in CTYPES:
        raise TinyedgeError(f"the model's {what} is {dtype}; the firmware expects an integer model "
                            f"({', '.join(CTYPES)}): set compression.quantize.scheme to int8 or int16x8")
    return CTYPES[dtype]
