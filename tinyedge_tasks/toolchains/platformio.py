"""PlatformIO: `pio run` builds a generated project (flash and RAM use from its size report), `pio run -t upload`
flashes it, `pio device monitor` shows the board's serial output. Knows no model.

PlatformIO downloads the ESP32 platform and toolchain on first use. Its workspace (`.pio`) lives under
<state>/platformio/<env>, outside build/codegen/, so regenerating the sources keeps the compiled libraries;
`pio run` by hand in build/codegen/firmware uses its own `.pio` there.
"""
from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
from pathlib import Path

from ..errors import TinyedgeError


SIZE_LINE = re.compile(r"^(RAM|Flash):.*\(used (\d+) bytes from (\d+) bytes\)", re.MULTILINE)
OFFLINE_SIGNS = ("HTTPClientError", "Could not resolve", "ConnectionError", "Max retries exceeded",
                 "InternetIsOffline", "You are not connected to the Internet")


def pio_executable() -> str:
    """The `pio` command on PATH; a clear message when PlatformIO is not installed."""
    found = shutil.which("pio") or shutil.which("platformio")
    if found is None:
        raise TinyedgeError("PlatformIO is not installed (no `pio` on PATH); install it with "
                            "`pip install platformio` (it is a tinyedge dependency: `pip install -e .`) and run again")
    return found


def env_name(firmware: Path) -> str:
    """The generated project's one environment: the board name."""
    config = configparser.ConfigParser()
    config.read(firmware / "platformio.ini")
    return config.get("platformio", "default_envs")


def workspace_dir(state: Path, firmware: Path) -> Path:
    """A persistent PlatformIO workspace per board, outside the build folder."""
    return state / "platformio" / env_name(firmware)


def pio(args: list[str], firmware: Path, state: Path, what: str, stream: bool = False) -> str:
    """Run `pio <args>` in the generated project (echoing its output when `stream`); its failures become
    messages that say what to do."""
    command = [pio_executable(), *args, "--project-dir", str(firmware)]
    env = {**os.environ, "PLATFORMIO_WORKSPACE_DIR": str(workspace_dir(state, firmware))}
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if stream:
                print(line, end="", flush=True)
    output = "".join(lines)
    if process.returncode == 0:
        return output
    if any(sign in output for sign in OFFLINE_SIGNS):
        raise TinyedgeError(
            f"{what}: PlatformIO could not download the ESP32 platform, toolchain or libraries (no network). "
            "Connect to the network once so PlatformIO can install them (later builds work offline), or run "
            f"`pio run` in {firmware} by hand to see its output")
    tail = "\n    ".join(output.strip().splitlines()[-15:])
    raise TinyedgeError(f"{what}: `pio {' '.join(args)}` failed in {firmware} (exit {process.returncode}); "
                        f"its last lines:\n    {tail}\nrun `pio {' '.join(args)}` in {firmware} by hand for the "
                        "full output")


def size_report(output: str) -> dict:
    """'RAM: ... (used N bytes from M bytes)' and 'Flash: ...' lines -> numbers."""
    found = {kind.lower(): (int(used), int(total)) for kind, used, total in SIZE_LINE.findall(output)}
    if set(found) != {"ram", "flash"}:
        raise TinyedgeError("pio run succeeded but printed no RAM/Flash size report; run `pio run` in "
                            "build/codegen/firmware by hand and report the output as a tinyedge bug")
    return {"flash_used_bytes": found["flash"][0], "flash_available_bytes": found["flash"][1],
            "ram_used_bytes": found["ram"][0], "ram_available_bytes": found["ram"][1]}


def build(firmware: Path, state: Path, binary: Path) -> dict:
    """Compile the project; copy the firmware image to `binary`; the build record's values."""
    sizes = size_report(pio(["run"], firmware, state, "build", stream=True))
    env = env_name(firmware)
    shutil.copyfile(workspace_dir(state, firmware) / "build" / env / "firmware.bin", binary)
    return {"env": env, **sizes}


def upload(firmware: Path, state: Path, port: str) -> None:
    pio(["run", "--target", "upload", "--upload-port", port], firmware, state, "flash", stream=True)


def monitor(port: str, speed: int) -> None:
    result = subprocess.run([pio_executable(), "device", "monitor", "--port", port, "--baud", str(speed)])
    if result.returncode not in (0, -2, 130):  # Ctrl-C is the normal way out
        raise TinyedgeError(f"`pio device monitor` on {port} stopped with exit {result.returncode}: is the port "
                            "in use by another program (close it), or did the board disconnect?")
