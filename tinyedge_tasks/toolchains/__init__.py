"""Toolchain adapters: build, flash and monitor a generated firmware project; they know no model.

A codegen stage writes its project folder and a ProjectIndex naming the toolchain; `doit build`, `flash` and
`monitor` look the adapter up here. Each adapter module has build(folder, state, binary) -> build record values,
upload(folder, state, port) and monitor(port, speed); NEEDS_PORT = False when the board is emulated (no serial).
"""
from __future__ import annotations

from pathlib import Path

import xxhash

from ..errors import TinyedgeError
from . import mpremote, platformio, qemu

ADAPTERS = {"platformio": platformio, "qemu": qemu, "micropython": mpremote}


def adapter(name: str):
    if name not in ADAPTERS:
        raise TinyedgeError(f"codegen/project.json names toolchain '{name}', which this tinyedge does not have "
                            f"(it has {', '.join(sorted(ADAPTERS))}); rerun `doit codegen`")
    return ADAPTERS[name]


def write_project(out: Path, folder: str, files: dict[str, str], toolchain: str, board):
    """Write the project's files under out/folder and return its index (relative path -> digest)."""
    from ..artifacts import ProjectIndex
    digests = {}
    for name, text in sorted(files.items()):
        target = out / folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode() if isinstance(text, str) else text
        target.write_bytes(data)
        digests[name] = xxhash.xxh3_128_hexdigest(data)
    return ProjectIndex(toolchain=toolchain, folder=folder, board=board.id, serial_speed=board.serial_speed,
                        files=digests)
