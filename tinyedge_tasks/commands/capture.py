"""doit capture: the board's own camera frames saved into the data set folder's class sub-folder, so the training
images come from the camera that will classify them. Over the validation protocol: CAPTURE, and the FRAME as the
firmware sees it before preprocessing (gray8, rgb888, rgb565 or jpeg), saved as PNG.

A file is never overwritten (each is written beside its final name, then linked into place only if that name is
free), and Ctrl-C ends the run with the frames so far kept. Needs nothing built: a board flashed with tinyedge's
firmware on a port (resolved as `doit flash` does it; a pyserial URL works too), at the board file's serial_speed.
"""
from __future__ import annotations

import io
import os
import struct
from pathlib import Path

from ..config import boards
from ..errors import TinyedgeError
from .flash import serial_port

FORMATS = {0: "gray8", 1: "rgb888", 2: "rgb565", 3: "jpeg"}


def _folder(project, label: str) -> Path:
    """The class sub-folder of the image-folder data set, made if new."""
    source = project.manifest.get("dataset.source")
    folder = project.root / source
    if ":" in source or not folder.is_dir():
        raise TinyedgeError(f"tinyedge.yaml: dataset.source is {source!r}; capture saves into an image folder (one "
                            "sub-folder per class): set dataset.source to a folder (e.g. data/) and run capture again")
    if not label or label.startswith(".") or "/" in label or "\\" in label:
        raise TinyedgeError(f"--label {label!r}: expected a class name, the sub-folder of {source} to save into "
                            "(e.g. --label 3)")
    (folder / label).mkdir(exist_ok=True)
    return folder / label


def image(payload: bytes):
    """FRAME payload (u16 width, u16 height, u8 format, pixels) -> a PIL image."""
    import numpy as np
    from PIL import Image
    width, height, kind = struct.unpack_from("<HHB", payload)
    pixels = payload[5:]
    if kind == 3:
        return Image.open(io.BytesIO(pixels)).convert("RGB")
    sizes = {0: 1, 1: 3, 2: 2}
    if kind not in sizes or len(pixels) != width * height * sizes[kind]:
        raise TinyedgeError(f"the board sent a FRAME of {width}x{height} in format {FORMATS.get(kind, kind)} with "
                            f"{len(pixels)} pixel bytes: not a frame tinyedge can read")
    if kind == 0:
        return Image.frombytes("L", (width, height), pixels)
    if kind == 1:
        return Image.frombytes("RGB", (width, height), pixels)
    value = np.frombuffer(pixels, dtype=">u2").reshape(height, width).astype(np.uint16)   # esp32-camera: big-endian
    r, g, b = (value >> 11) & 31, (value >> 5) & 63, value & 31   # widened by bit replication, as the firmware does
    rgb = np.stack([(r << 3) | (r >> 2), (g << 2) | (g >> 4), (b << 3) | (b >> 2)], -1)
    return Image.fromarray(rgb.astype(np.uint8), "RGB")


def save(picture, folder: Path) -> Path:
    """picture as the first free capture-NNNN.png of folder: written beside it, then linked (never overwrites)."""
    partial = folder / f".capture-{os.getpid()}.partial.png"
    picture.save(partial, format="PNG")
    try:
        number = len(list(folder.glob("capture-*.png")))
        while True:
            target = folder / f"capture-{number:04d}.png"
            try:
                os.link(partial, target)
                return target
            except FileExistsError:
                number += 1
    finally:
        partial.unlink()


def run(project, options, args) -> None:
    from ..device import frames
    from ..device.link import Link
    folder = _folder(project, options.get("label") or "")
    port = serial_port(project, options)
    count = int(options.get("count") or 1)
    speed = boards.load(boards.path_of(project.manifest)).serial_speed
    with Link(port, speed, float(options.get("timeout") or 10)) as link:
        info = link.hello()
        print(f"  {port}: {info['backend']} firmware on {info['board']}; capturing {count} frames into {folder}",
              flush=True)
        for done in range(count):
            link.send(frames.CAPTURE)
            frame = link.answer(frames.FRAME, link.timeout)
            if frame is None:
                raise TinyedgeError(f"no FRAME from {port} within {link.timeout:g} s; {done} frames saved in {folder}")
            target = save(image(frame.payload), folder)
            print(f"  frame {done + 1}/{count}: {project.relative(target)}", flush=True)
