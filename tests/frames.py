"""What the firmware tests share: where codegen writes the ESP-IDF project, the calibration record, camera
frames as the ESP32-CAM's driver stores them (RGB565), used by tests/backends/tflm/test_firmware.py (host gcc) and
tests/preprocess/test_baremetal.py (Cortex-M in QEMU), the refusals every validation firmware must answer, and the
fake board `doit validate`'s fault tests talk to (there is no board here)."""
from __future__ import annotations

import json
import socket
import struct
import threading
from pathlib import Path

import numpy as np

from tinyedge_tasks.device import frames

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


class FakeBoard:
    """No board here: a fake device on a loopback TCP socket, speaking the protocol (the host's encoder) with a
    behaviour chosen by the test. `on(frame, connection)` answers one frame; returning False hangs up."""

    def __init__(self, on):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.on = on
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            connection, _ = self.server.accept()
        except OSError:
            return
        scanner = frames.Scanner()
        with connection:
            while data := connection.recv(4096):
                for frame in scanner.feed(data)[1]:
                    if self.on(frame, connection) is False:
                        return

    def close(self):
        self.server.close()


def fake_info(project: Path, digest: str | None = None) -> bytes:
    """The INFO of a board carrying the project's model (or the model `digest`), in the shape calibrate's
    outputs.npy gives: 32x32x1 int8 in, its output values out."""
    index = json.loads((project / "build/codegen/project.json").read_text())
    outputs = np.load(project / "build/calibrate/outputs.npy")
    tensor = {"shape": [1, 32, 32, 1], "dtype": "int8", "scale": 1 / 255, "zero_point": -128, "bytes": 1024}
    output = {"shape": [1, outputs.shape[1]], "dtype": str(outputs.dtype), "bytes": outputs[0].nbytes}
    return json.dumps({"protocol": 1, "model_xxh3": digest or index["model_xxh3"], "backend": "c", "board": "fake",
                       "clock_hz": 1000, "cycle_counter": "fake", "cycles_per_second": 1000, "input": tensor,
                       "output": output, "arena_bytes": 1, "arena_used": None, "layers": []}).encode()


def fake_result(project: Path, frame: frames.Frame, change=None) -> bytes:
    """The RESULT a correct board sends for an INFER: calibrate's outputs for that sample, 100 cycles."""
    index = struct.unpack_from("<I", frame.payload)[0]
    output = np.load(project / "build/calibrate/outputs.npy")[index].copy()
    if change:
        change(index, output)
    return frames.encode(frames.RESULT, struct.pack("<IQI", index, 100, 0) + output.tobytes())


def fake_board(project: Path, after_results: int | None = None, corrupt_at: int | None = None, change=None):
    """A fake that answers INFO and RESULTs; it hangs up after `after_results` RESULTs, or damages the RESULT of
    sample `corrupt_at` (one payload bit)."""
    sent = []

    def on(frame, connection):
        if frame.kind == frames.HELLO:
            connection.sendall(b"boot\r\n" + frames.encode(frames.INFO, fake_info(project)))
            return True
        if after_results is not None and len(sent) == after_results:
            return False
        data = bytearray(fake_result(project, frame, change))
        if len(sent) == corrupt_at:
            data[20] ^= 0x01
        sent.append(frame)
        connection.sendall(b"log line\n" + bytes(data))
        return True
    return on
