"""A link to a board speaking the validation protocol, over any pyserial URL: a serial port (/dev/ttyUSB0),
socket://127.0.0.1:PORT (QEMU's UART on a loopback socket), rfc2217://host:port. One code path for all.

Host rules (version 1): HELLO every second until INFO comes (give up after `timeout`); then one INFER per sample
and its RESULT, the index checked. Console text between frames is kept (and shown with `echo`), never an error."""
from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass

from ..errors import TinyedgeError
from . import frames

HELLO_EVERY = 1.0   # seconds between HELLOs while the board boots
RESULT_HEAD = struct.Struct("<IQI")   # sample index, cycles of the invoke, layer count
INFO_KEYS = ("protocol", "model_xxh3", "backend", "board", "clock_hz", "cycle_counter", "cycles_per_second",
             "input", "output", "arena_bytes", "arena_used", "layers")


class LinkDropped(TinyedgeError):
    """The port went away (cable, reset, the emulator ended)."""


@dataclass
class Result:
    index: int
    cycles: int
    layer_cycles: list[int]
    output: bytes


def _serial():
    import serial   # pyserial: PlatformIO's dependency, and tinyedge's
    return serial


class Link:
    """An open port and the protocol's scanner. Use as a context manager: the port is closed on leaving."""

    def __init__(self, port: str, speed: int, timeout: float = 10.0, echo=None):
        serial = _serial()
        self.port, self.timeout, self.echo = port, timeout, echo
        self.scanner = frames.Scanner()
        self.console = bytearray()
        try:
            self.serial = serial.serial_for_url(port, baudrate=speed, timeout=0.05, write_timeout=timeout)
        except (serial.SerialException, OSError, ValueError) as exc:
            reason = str(exc).replace(f"Could not open port {port}: ", "").replace(f"could not open port {port}: ", "")
            raise TinyedgeError(f"no device on {port} ({reason}): check the port (`doit validate --port`), that "
                                "the board is plugged in and that no other program holds the port") from None
        self.frames: list[frames.Frame] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.serial.close()

    def send(self, kind: int, payload: bytes = b"") -> None:
        try:
            self.serial.write(frames.encode(kind, payload))
        except (_serial().SerialException, OSError) as exc:
            raise LinkDropped(f"the link to {self.port} dropped: {exc}") from None

    def receive(self, seconds: float) -> frames.Frame | None:
        """The next frame, or None when no frame comes for `seconds`; console text is collected meanwhile. The wait
        restarts with every byte of a frame, so a frame that takes longer than `seconds` to arrive at a slow speed
        (a QVGA RGB565 camera frame is 13 s at 115200 baud) is still received; console text alone (a super-loop
        printing) does not hold the wait open."""
        deadline = time.monotonic() + seconds
        while not self.frames:
            if time.monotonic() > deadline:
                return None
            try:
                data = self.serial.read(max(1, self.serial.in_waiting))
            except (_serial().SerialException, OSError) as exc:
                raise LinkDropped(f"the link to {self.port} dropped: {exc}") from None
            text, found = self.scanner.feed(data)
            if data and (self.scanner.pending or found):
                deadline = time.monotonic() + seconds
            self.frames += found
            if text:
                self.console += text
                if self.echo:
                    self.echo(text.decode("utf-8", "replace"))
        return self.frames.pop(0)

    def answer(self, expected: int, seconds: float) -> frames.Frame | None:
        """The next frame of type `expected`; an ERROR frame is the device's refusal, in one line. An INFO where
        another frame is expected is the late answer to a HELLO sent again while the first INFO was on its way."""
        frame = self.receive(seconds)
        while frame is not None and frame.kind == frames.INFO and expected != frames.INFO:
            frame = self.receive(seconds)
        if frame is not None and frame.kind == frames.ERROR:
            raise TinyedgeError(f"the device on {self.port} answered ERROR: "
                                f"{frame.payload.decode('utf-8', 'replace')}")
        if frame is not None and frame.kind != expected:
            raise TinyedgeError(f"the device on {self.port} sent a {frames.name(frame.kind)} frame where "
                                f"{frames.name(expected)} was expected (byte {frame.offset} of the stream)")
        return frame

    def hello(self) -> dict:
        """HELLO until INFO: the firmware's description of itself (INFO_KEYS, all checked present)."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            self.send(frames.HELLO)
            frame = self.answer(frames.INFO, min(HELLO_EVERY, max(0.0, deadline - time.monotonic())))
            if frame is not None:
                return self._info(frame)
        raise TinyedgeError(f"no answer from {self.port}: is the firmware built with tinyedge's shell and the speed "
                            f"right (the board file's serial_speed)?{self._heard()}")

    def _heard(self) -> str:
        text = bytes(self.console[-200:]).decode("utf-8", "replace").strip()
        return f" It printed: {text.splitlines()[-1][:120]!r}" if text else " It sent nothing."

    def _info(self, frame: frames.Frame) -> dict:
        try:
            info = json.loads(frame.payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TinyedgeError(f"the device on {self.port} sent an INFO that is not JSON ({exc})") from None
        missing = [key for key in INFO_KEYS if not isinstance(info, dict) or key not in info]
        if missing:
            raise TinyedgeError(f"the device on {self.port} sent an INFO without {', '.join(missing)}: its firmware "
                                "speaks another protocol version; rebuild and flash it (`doit flash`)")
        return info

    def infer(self, index: int, data: bytes) -> Result:
        """One sample's output and cycles."""
        self.send(frames.INFER, struct.pack("<I", index) + data)
        frame = self.answer(frames.RESULT, self.timeout)
        if frame is None:
            raise TinyedgeError(f"no RESULT from {self.port} for sample {index} within {self.timeout:g} s")
        payload = frame.payload
        if len(payload) < RESULT_HEAD.size or len(payload) < RESULT_HEAD.size + 8 * RESULT_HEAD.unpack_from(payload)[2]:
            raise TinyedgeError(f"the device on {self.port} sent a RESULT of {len(payload)} bytes, too short for its "
                                "header and layer count: flash this project's firmware (`doit flash`)")
        got, cycles, count = RESULT_HEAD.unpack_from(payload)
        if got != index:
            raise TinyedgeError(f"the device on {self.port} answered sample {got} where {index} was sent")
        layers = list(struct.unpack_from(f"<{count}Q", payload, RESULT_HEAD.size))
        return Result(got, cycles, layers, payload[RESULT_HEAD.size + 8 * count:])
