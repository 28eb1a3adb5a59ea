"""doit monitor: the board's serial output (top classes, inference time) at the board's serial speed."""
from __future__ import annotations

from .flash import project_index, serial_port


def run(project, options, args) -> None:
    index, toolchain = project_index(project)
    port = serial_port(project, options) if getattr(toolchain, "NEEDS_PORT", True) else ""
    print(f"  monitor {port} at {index.serial_speed} baud (Ctrl-C to leave)", flush=True)
    toolchain.monitor(port, index.serial_speed)
