"""The host side of the validation protocol's framing (tinyedge_tasks/device/frames.py), byte for byte."""
from __future__ import annotations

import struct
import zlib

import pytest

from tinyedge_tasks.device import frames


def test_a_frame_is_sync_header_payload_and_zlib_crc():
    data = frames.encode(frames.ERROR, b"no camera")
    assert data[:2] == b"\xa5\x5a"
    assert data[2:8] == struct.pack("<BBI", 1, 0x7F, 9)
    assert data[8:17] == b"no camera"
    assert struct.unpack("<I", data[17:])[0] == zlib.crc32(data[2:17])


def test_console_text_between_frames_passes_through():
    stream = b"boot ok\r\n" + frames.encode(frames.INFO, b"{}") + b"tinyedge: ready\n" + frames.encode(frames.ERROR)
    scanner = frames.Scanner()
    text, found = scanner.feed(stream)
    assert text == b"boot ok\r\ntinyedge: ready\n"
    assert [(f.kind, f.payload, f.offset) for f in found] == [(frames.INFO, b"{}", 9),
                                                              (frames.ERROR, b"", 9 + 14 + 16)]


def test_a_frame_split_anywhere_is_put_back_together():
    """Fed one byte at a time (a slow UART), including a console 0xA5 that is not a sync pair."""
    stream = b"x\xa5y" + frames.encode(frames.RESULT, bytes(range(40))) + b"z"
    scanner = frames.Scanner()
    text, found = b"", []
    for byte in stream:
        more, got = scanner.feed(bytes([byte]))
        text, found = text + more, found + got
    assert text == b"x\xa5yz"
    assert [(f.kind, f.payload) for f in found] == [(frames.RESULT, bytes(range(40)))]


def test_a_truncated_frame_waits_for_the_rest():
    data = frames.encode(frames.INFO, b"0123456789")
    scanner = frames.Scanner()
    assert scanner.feed(data[:-3]) == (b"", [])
    text, found = scanner.feed(data[-3:])
    assert text == b"" and found[0].payload == b"0123456789"


def test_a_crc_error_names_the_frame_type_and_offset():
    data = bytearray(frames.encode(frames.RESULT, b"\x01\x02\x03\x04"))
    data[9] ^= 0x40
    with pytest.raises(frames.CorruptFrame, match=r"corrupt RESULT frame at byte 5 of the stream: CRC"):
        frames.Scanner().feed(b"hello" + bytes(data))


def test_an_oversize_length_is_a_corrupt_frame_at_once():
    header = b"\xa5\x5a" + struct.pack("<BBI", 1, frames.RESULT, frames.MAX_PAYLOAD + 1)
    with pytest.raises(frames.CorruptFrame, match=r"RESULT frame at byte 0 .*length 1048577 is over"):
        frames.Scanner().feed(header)


def test_another_protocol_version_is_refused():
    data = bytearray(frames.encode(frames.INFO, b"{}"))
    data[2] = 2
    with pytest.raises(frames.CorruptFrame, match="protocol version 2, expected 1"):
        frames.Scanner().feed(bytes(data))


def test_the_c_encoder_and_decoder_agree_with_the_host(tmp_path):
    """te_protocol.c (what the firmware links) compiled with the host gcc: its frame for a payload is the host's
    byte for byte, and it decodes the host's frame and refuses a damaged one."""
    import subprocess
    from conftest import REPO
    firmware = REPO / "tinyedge_tasks" / "firmware"
    (tmp_path / "t.c").write_text(r'''
#include <stdio.h>
#include "te_protocol.h"
static void out(void *c, const void *d, size_t n) { (void)c; fwrite(d, 1, n, stdout); }
int main(void) {
    static uint8_t frame[64], buffer[32];
    size_t n = fread(frame, 1, sizeof frame, stdin);
    te_rx rx;
    te_rx_init(&rx, buffer, sizeof buffer);
    int status = 0;
    for (size_t i = 0; i < n && status == 0; ++i) status = te_rx_byte(&rx, frame[i]);
    if (status == TE_RX_FRAME) te_send(out, NULL, rx.type, buffer, rx.length);
    else printf("status %d", status);
    return 0;
}''')
    exe = tmp_path / "t"
    subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", str(firmware), str(tmp_path / "t.c"),
                    str(firmware / "te_protocol.c"), "-o", str(exe)], check=True)
    good = frames.encode(frames.INFO, b'{"protocol": 1}')
    assert subprocess.run([exe], input=b"noise\xa5" + good, capture_output=True).stdout == good
    bad = bytearray(good)
    bad[10] ^= 1
    assert subprocess.run([exe], input=bytes(bad), capture_output=True).stdout == b"status -3"
