"""The host side of tinyedge's validation protocol (version 1, tinyedge_tasks/firmware/te_protocol.h is the
device side): frames with a CRC interleaved with the firmware's console text (frames.py), a link that opens a
pyserial URL (a /dev/tty… port, socket://127.0.0.1:PORT, rfc2217://…) and speaks HELLO/INFO and INFER/RESULT
(link.py). Knows no model: bytes in, bytes out."""
