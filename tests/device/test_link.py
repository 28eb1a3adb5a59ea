"""The host's link (tinyedge_tasks/device/link.py) on a line it cannot get from a loopback socket on demand: a
slow UART delivering a frame one byte per read, and a late INFO. No board here: pyserial's own loop:// port
stands in for the serial line, and a clock that advances one second per read stands in for a slow link, so
nothing depends on how fast this machine runs."""
from __future__ import annotations

import struct

import numpy as np
import serial  # noqa: F401  pyserial's Timeout keeps the time.monotonic of its import: import it before a test's clock

from tinyedge_tasks.commands import capture
from tinyedge_tasks.device import frames, link


class OneBytePerSecond:
    """A serial line that hands over one byte per read() while the clock moves on by one second per read."""

    def __init__(self, data: bytes, clock: list[float]):
        self.data, self.clock = bytearray(data), clock

    @property
    def in_waiting(self) -> int:
        return min(1, len(self.data))

    def read(self, size: int) -> bytes:
        self.clock[0] += 1.0
        piece, self.data[:1] = bytes(self.data[:1]), b""
        return piece

    def write(self, data: bytes) -> int:
        return len(data)

    def close(self) -> None:
        pass


def _slow_link(monkeypatch, data: bytes) -> link.Link:
    clock = [0.0]
    monkeypatch.setattr(link.time, "monotonic", lambda: clock[0])
    line = link.Link("loop://", 115200, timeout=5.0)
    line.serial.close()
    line.serial = OneBytePerSecond(data, clock)
    return line


def test_a_frame_longer_than_the_timeout_to_arrive_is_received(monkeypatch):
    """A QVGA RGB565 frame takes 13 s at 115200 baud: the timeout is silence on the line, not the whole frame."""
    payload = struct.pack("<HHB", 4, 2, 0) + bytes(range(8))
    line = _slow_link(monkeypatch, frames.encode(frames.FRAME, payload))   # 25 bytes: 25 s at one per second
    frame = line.answer(frames.FRAME, 5.0)
    assert frame is not None and frame.payload == payload


def test_silence_longer_than_the_timeout_ends_the_wait(monkeypatch):
    line = _slow_link(monkeypatch, b"")
    assert line.answer(frames.RESULT, 5.0) is None


def test_a_late_info_before_the_result_is_skipped(monkeypatch):
    """A HELLO sent again while the first INFO was on its way gets a second INFO, which lands where a RESULT is
    expected."""
    result = frames.encode(frames.RESULT, struct.pack("<IQI", 0, 100, 0) + bytes(10))
    line = _slow_link(monkeypatch, frames.encode(frames.INFO, b"{}") + result)
    assert line.answer(frames.RESULT, 5.0).payload[:4] == bytes(4)


def test_capture_widens_rgb565_by_bit_replication_as_the_firmware_does():
    """Every RGB565 value: the saved PNG holds what the firmware's te_rgb565_to_rgb888 hands the preprocessing
    (tests/frames.py's from_rgb565, checked against the generated C in tests/backends/tflm/test_firmware.py)."""
    from frames import from_rgb565
    values = np.arange(65536, dtype=">u2").tobytes()
    payload = struct.pack("<HHB", 256, 256, 2) + values
    assert np.array_equal(np.asarray(capture.image(payload)), from_rgb565(values, 256, 256))
