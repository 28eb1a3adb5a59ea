"""doit flash: build the generated firmware and upload it to the board, through the toolchain codegen named.

The port comes from `doit flash --port`, else $TINYEDGE_PORT, else firmware.port in tinyedge.yaml, else the
one serial port found; a missing device stops before PlatformIO runs, with what to do. A pyserial URL
(socket://127.0.0.1:PORT, rfc2217://host:port) is taken as it is: `doit validate` shares this resolution.
"""
from __future__ import annotations

import os

from ..errors import TinyedgeError
from ..artifacts import ProjectIndex
from ..toolchains import adapter


def _detected() -> list[str]:
    from serial.tools import list_ports  # pyserial comes with PlatformIO
    return sorted(port.device for port in list_ports.comports())


def serial_port(project, options: dict) -> str:
    """The board's serial port, checked to exist (a URL is checked by opening it)."""
    port = options.get("port") or os.environ.get("TINYEDGE_PORT") or project.manifest.get("firmware.port")
    detected = _detected()
    listing = ", ".join(detected) if detected else "none"
    if not port:
        if len(detected) == 1:
            return detected[0]
        raise TinyedgeError(
            f"which serial port? found: {listing}; plug in the board (USB-serial adapter for the ESP32-CAM) and "
            "pass --port, set $TINYEDGE_PORT, or set firmware.port in tinyedge.yaml")
    if "://" in port:
        return port
    if not os.path.exists(port) and port not in detected:
        raise TinyedgeError(
            f"no board on serial port {port}: the device does not exist (serial ports found: {listing}); "
            "plug in the board, check the cable and the port name (`pio device list`), then run again")
    return port


def project_index(project) -> tuple[ProjectIndex, object]:
    """codegen's project index and the adapter of the toolchain it names."""
    index = ProjectIndex.from_json(project.artifact(ProjectIndex.ARTIFACT).read_text())
    return index, adapter(index.toolchain)


def run(project, options, args) -> None:
    index, toolchain = project_index(project)
    port = serial_port(project, options) if getattr(toolchain, "NEEDS_PORT", True) else ""
    firmware = project.artifact(ProjectIndex.ARTIFACT).parent / index.folder
    print(f"  uploading {firmware} to {port or index.board}", flush=True)
    toolchain.upload(firmware, project.state, port)
