"""What the firmware tests share: where codegen writes the ESP-IDF project, the calibration record, camera
frames as the ESP32-CAM's driver stores them (RGB565), used by tests/backends/tflm/test_firmware.py (host gcc) and
tests/preprocess/test_baremetal.py (Cortex-M in QEMU), and the refusals every validation firmware must answer."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

FIRMWARE = Path("build/codegen/firmware")


def calibration_of(project: Path) -> dict:
    return json.loads((project / "build/calibrate/calibration.json").read_text())


def rgb565(rgb: np.ndarray) -> bytes:
    """RGB888 -> RGB565, high byte first, as the camera driver stores a frame."""
    r, g, b = (rgb[:, :, i].astype(np.uint16) for i in range(3))
    value = ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3)
    return value.astype(">u2").tobytes()


def from_rgb565(frame: bytes, width: int, height: int) -> np.ndarray:
    """What the firmware sees: RGB565 expanded to RGB888 by bit replication (te_rgb565_to_rgb888)."""
    value = np.frombuffer(frame, ">u2").reshape(height, width).astype(np.uint16)
    r, g, b = (value >> 11) & 0x1F, (value >> 5) & 0x3F, value & 0x1F
    return np.stack([(r << 3) | (r >> 2), (g << 2) | (g >> 4), (b << 3) | (b >> 2)], axis=2).astype(np.uint8)


def camera_frames() -> list[np.ndarray]:
    """Real photos (sklearn's sample images) cut to the camera's 320x240, digits scaled up to 320x240, and a
    frame smaller than the model input (the resize then enlarges)."""
    from sklearn.datasets import load_digits, load_sample_images
    frames = [image[40:280, 50:370] for image in load_sample_images().images]
    digits = np.round(load_digits().images[:3] * (255 / 16)).astype(np.uint8)
    frames += [np.repeat(np.kron(d, np.ones((30, 40), np.uint8))[:, :, None], 3, axis=2) for d in digits]
    frames.append(load_sample_images().images[1][100:118, 200:224])
    return frames


def assert_refusals(link, noise: bytes = b"") -> None:
    """A device's ERROR answers on `link` (a tinyedge_tasks.device Link), in the C firmware's words: CAPTURE
    without a camera, an INFER of the wrong size (the model takes 1024 bytes), and a damaged HELLO after `noise`."""
    import pytest

    from tinyedge_tasks.device import frames
    from tinyedge_tasks.errors import TinyedgeError
    link.send(frames.CAPTURE)
    with pytest.raises(TinyedgeError, match="answered ERROR: no camera"):
        link.answer(frames.FRAME, 10)
    link.send(frames.INFER, struct.pack("<I", 0) + bytes(10))
    with pytest.raises(TinyedgeError, match="answered ERROR: input length 10, expected 1024"):
        link.answer(frames.RESULT, 10)
    damaged = bytearray(frames.encode(frames.HELLO))
    damaged[-1] ^= 0xFF
    link.serial.write(noise + bytes(damaged))
    with pytest.raises(TinyedgeError, match=r"answered ERROR: corrupt frame \(CRC\)"):
        link.answer(frames.INFO, 10)
