"""doit monitor: the board's serial output (top classes, inference time) at the board's serial speed."""
from __future__ import annotations

import subprocess

from .. import boards
from ..errors import TinyedgeError
from ..stages.build import pio_executable
from .flash import serial_port


def run(project, options, args) -> None:
    port = serial_port(project, options)
    speed = boards.load(boards.path_of(project.manifest)).serial_speed
    print(f"  monitor {port} at {speed} baud (Ctrl-C to leave)", flush=True)
    result = subprocess.run([pio_executable(), "device", "monitor", "--port", port, "--baud", str(speed)])
    if result.returncode not in (0, -2, 130):  # Ctrl-C is the normal way out
        raise TinyedgeError(f"`pio device monitor` on {port} stopped with exit {result.returncode}: is the port "
                            "in use by another program (close it), or did the board disconnect?")
