# tinyedge's validation protocol, version 1, on the MicroPython console (sys.stdin.buffer / sys.stdout.buffer):
# the device side of `doit validate` (the host side is tinyedge_tasks/device). A frame is
#   0xA5 0x5A | version u8 | type u8 | length u32 | payload | crc32 u32   (little-endian; CRC over all but sync)
# HELLO -> INFO (te_info.INFO plus what only the running port knows), INFER -> RESULT (ticks_us of the invoke and of
# each layer), CAPTURE -> FRAME (the camera's RGB565 frame) or ERROR "no camera". print() lines stay console text.
import json
import struct
import sys
import time

import te_info
import te_model

try:
    from binascii import crc32
except ImportError:   # a port built without it: the bitwise loop (slow, and only a fallback)
    crc32 = None

try:
    from micropython import kbd_intr
except ImportError:
    kbd_intr = None

SYNC = b"\xa5\x5a"
VERSION = 1
HELLO, INFER, CAPTURE, ERROR = 0x01, 0x02, 0x03, 0x7F
INFO, RESULT, FRAME = 0x81, 0x82, 0x83
MAX_PAYLOAD = 1 << 20
RGB565 = 2


def _crc(data):
    if crc32 is not None:
        return crc32(data)
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def send(kind, payload=b""):
    body = struct.pack("<BBI", VERSION, kind, len(payload)) + payload
    sys.stdout.buffer.write(SYNC + body + struct.pack("<I", _crc(body)))


def _read(count):
    data = sys.stdin.buffer.read(count) if count else b""
    if data is None or len(data) < count:
        raise EOFError
    return data


def receive():
    """(type, payload) of the next frame; bytes before the sync are skipped. None for a damaged frame (the host
    has been told with an ERROR). EOFError at the end of the input."""
    last = 0
    while True:
        byte = _read(1)[0]
        if last == 0xA5 and byte == 0x5A:
            break
        last = byte
    head = _read(6)
    version, kind, length = struct.unpack("<BBI", head)
    if version != VERSION:
        send(ERROR, b"protocol version not 1")
        return None
    if length > MAX_PAYLOAD:
        send(ERROR, b"frame longer than 1 MiB")
        return None
    payload = _read(length)
    (crc,) = struct.unpack("<I", _read(4))
    if crc != _crc(head + payload):   # the same words as the C firmware (te_protocol.c)
        send(ERROR, b"corrupt frame (CRC)")
        return None
    return kind, payload


def info():
    """INFO's JSON: codegen's constants, with the port and kernels that run and, where `machine` has it, the clock."""
    found = json.loads(te_info.INFO)
    found["platform"] = sys.platform
    found["kernels"] = te_model.kernels.__name__
    try:
        import machine
        found["clock_hz"] = machine.freq()
    except (ImportError, AttributeError):   # the unix port: no machine.freq, and no board under it
        found["board"] = "micropython unix port (generated for %s)" % found["board"]
        found["clock_hz"] = None
    return json.dumps(found).encode()


def infer(payload):
    """RESULT: index, microseconds of the invoke, of each layer (te_model marks the end of each), the output."""
    data = payload[4:]
    if len(payload) < 4:
        return ERROR, b"INFER without a sample index"
    if len(data) != te_model.INPUT_SIZE:
        return ERROR, b"input length %d, expected %d" % (len(data), te_model.INPUT_SIZE)
    ticks, marks = time.ticks_us, []
    start = ticks()
    out = te_model.invoke(data, te_model.kernels, lambda: marks.append(ticks()))
    took = time.ticks_diff(ticks(), start)
    layers = [time.ticks_diff(t, p) for t, p in zip(marks, [start] + marks)]
    head = struct.pack("<IQI", struct.unpack("<I", payload[:4])[0], took, len(layers))
    return RESULT, head + struct.pack("<%dQ" % len(layers), *layers) + out


def _answer(kind, payload, described, capture):
    if kind == HELLO:
        return INFO, described
    if kind == INFER:
        return infer(payload)
    if kind == CAPTURE and capture is not None:
        width, height, pixels = capture()
        return FRAME, struct.pack("<HHB", width, height, RGB565) + pixels
    if kind == CAPTURE:
        return ERROR, b"no camera"
    return ERROR, b"unknown frame type 0x%02x" % kind


def serve(capture=None, fresh=False):
    """Answer frames until the input ends. capture() -> (width, height, RGB565 bytes high byte first), or None.
    fresh: drop what is waiting first, the HELLOs that queued while main.py's super-loop was busy (the host sends
    one a second until INFO comes: each would be answered, and the extra INFOs would arrive in place of RESULTs).
    Ctrl-C (byte 3) stays an interrupt until the first frame, so mpremote still reaches the REPL; from then on it
    is data (an INFER holds any byte): the board serves until it is reset."""
    while fresh and waiting():
        _read(1)
    described = info()
    print("tinyedge: serving the validation protocol %d (%s, %s)" % (VERSION, sys.platform,
                                                                   te_model.kernels.__name__))
    first = True
    try:
        while True:
            frame = receive()
            if frame is None:
                continue
            if first and kbd_intr is not None:
                kbd_intr(-1)
            first = False
            send(*_answer(frame[0], frame[1], described, capture))
    except (EOFError, OSError):   # the host closed the line
        pass
    finally:
        if kbd_intr is not None:
            kbd_intr(3)


def waiting():
    """True when the host has sent a byte: main.py's super-loop then hands the console to serve()."""
    import select
    poller = select.poll()
    poller.register(sys.stdin, select.POLLIN)
    return bool(poller.poll(0))
