"""Frames of the validation protocol, version 1 (all integers little-endian):

    0xA5 0x5A | version u8 | type u8 | length u32 | payload[length] | crc32 u32

crc32 is zlib's over version, type, length and payload. The scanner takes bytes as they come and splits them into
console text (everything outside a frame: the firmware's own log lines) and whole frames; a frame whose CRC
fails, whose version is not 1 or whose length is over 1 MiB is a CorruptFrame naming its type and byte offset."""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ..errors import TinyedgeError

VERSION = 1
SYNC = b"\xa5\x5a"
HEADER = struct.Struct("<2sBBI")       # sync, version, type, length
MAX_PAYLOAD = 1 << 20

HELLO, INFER, CAPTURE, ERROR = 0x01, 0x02, 0x03, 0x7F
INFO, RESULT, FRAME = 0x81, 0x82, 0x83
NAMES = {HELLO: "HELLO", INFER: "INFER", CAPTURE: "CAPTURE", ERROR: "ERROR", INFO: "INFO", RESULT: "RESULT",
         FRAME: "FRAME"}


class CorruptFrame(TinyedgeError):
    """A frame the link delivered damaged: the bytes cannot be trusted."""


def name(kind: int) -> str:
    return NAMES.get(kind, f"type 0x{kind:02x}")


def encode(kind: int, payload: bytes = b"") -> bytes:
    """One frame of `kind` around `payload`."""
    body = HEADER.pack(SYNC, VERSION, kind, len(payload))[2:] + payload
    return SYNC + body + struct.pack("<I", zlib.crc32(body))


@dataclass
class Frame:
    kind: int
    payload: bytes
    offset: int      # where its sync bytes started in the stream


class Scanner:
    """Bytes in (feed), console text and frames out. Keeps what is not yet a whole frame."""

    def __init__(self):
        self.pending = b""
        self.offset = 0          # stream offset of pending[0]

    def feed(self, data: bytes) -> tuple[bytes, list[Frame]]:
        """The console text and the frames completed by `data`; CorruptFrame on a damaged one."""
        self.pending += data
        text, frames = b"", []
        while True:
            start = self.pending.find(SYNC)
            if start < 0:   # all text, but a last 0xA5 may begin a frame
                keep = 1 if self.pending.endswith(SYNC[:1]) else 0
                text += self.pending[:len(self.pending) - keep]
                self._drop(len(self.pending) - keep)
                return text, frames
            text += self.pending[:start]
            self._drop(start)
            frame = self._frame()
            if frame is None:
                return text, frames
            frames.append(frame)

    def _drop(self, count: int) -> None:
        self.pending = self.pending[count:]
        self.offset += count

    def _frame(self) -> Frame | None:
        """The frame at the start of `pending`, None until all of it has come."""
        if len(self.pending) < HEADER.size:
            return None
        _, version, kind, length = HEADER.unpack_from(self.pending)
        where = f"{name(kind)} frame at byte {self.offset} of the stream"
        if version != VERSION:
            raise CorruptFrame(f"corrupt {where}: protocol version {version}, expected {VERSION}")
        if length > MAX_PAYLOAD:
            raise CorruptFrame(f"corrupt {where}: length {length} is over the {MAX_PAYLOAD} bytes a frame may hold")
        end = HEADER.size + length + 4
        if len(self.pending) < end:
            return None
        body = self.pending[2:HEADER.size + length]
        (crc,) = struct.unpack_from("<I", self.pending, HEADER.size + length)
        if crc != zlib.crc32(body):
            raise CorruptFrame(f"corrupt {where}: CRC 0x{crc:08x}, computed 0x{zlib.crc32(body):08x}; a noisy "
                               "link or a wrong speed: check the cable and the board file's serial_speed")
        frame = Frame(kind, body[HEADER.size - 2:], self.offset)
        self._drop(end)
        return frame
