/* tinyedge validation protocol, version 1 (docs: the README's "doit validate"; host side: tinyedge_tasks/device/).
   Frame, integers little-endian:
       0xA5 0x5A | version u8 | type u8 | length u32 | payload[length] | crc32 u32
   crc32 is zlib's (IEEE 802.3, reflected) over version, type, length and payload.
   Transport-agnostic, no allocation, no libc beyond <stddef.h>/<stdint.h>: the ESP-IDF shell, the Cortex-M
   firmware and a host test compile this same file. */
#ifndef TE_PROTOCOL_H
#define TE_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TE_PROTOCOL_VERSION 1
#define TE_SYNC0 0xA5
#define TE_SYNC1 0x5A
#define TE_HEADER_BYTES 8u            /* sync, version, type, length */
#define TE_MAX_PAYLOAD (1ul << 20)    /* a longer length is a corrupt frame */

enum te_type {
    TE_HELLO = 0x01, TE_INFER = 0x02, TE_CAPTURE = 0x03, TE_ERROR = 0x7F,
    TE_INFO = 0x81, TE_RESULT = 0x82, TE_FRAME = 0x83
};

/* zlib.crc32(data, crc): start with crc = 0, chain by passing the previous value. */
uint32_t te_crc32(uint32_t crc, const void *data, size_t length);

void te_put_u16(uint8_t *out, uint16_t value);
void te_put_u32(uint8_t *out, uint32_t value);
void te_put_u64(uint8_t *out, uint64_t value);
uint32_t te_get_u32(const uint8_t *in);

/* Sending: the payload may be written in pieces (te_tx_begin, te_tx_data..., te_tx_end), so a RESULT is sent
   without assembling it in memory. `write` must send all `length` bytes. */
typedef void (*te_write_fn)(void *context, const void *data, size_t length);

typedef struct {
    te_write_fn write;
    void *context;
    uint32_t crc;
} te_tx;

void te_tx_begin(te_tx *tx, te_write_fn write, void *context, uint8_t type, uint32_t length);
void te_tx_data(te_tx *tx, const void *data, size_t length);
void te_tx_end(te_tx *tx);
void te_send(te_write_fn write, void *context, uint8_t type, const void *payload, uint32_t length);

/* Receiving, one byte at a time: bytes outside a frame are skipped (the host sends none, but a terminal may).
   te_rx_byte returns TE_RX_MORE until a frame is complete (TE_RX_FRAME: rx->type, rx->length, payload in the
   buffer given to te_rx_init) or is refused (an error code below; the scanner has resynchronised). */
enum te_rx_status {
    TE_RX_MORE = 0, TE_RX_FRAME = 1,
    TE_RX_BAD_VERSION = -1, TE_RX_TOO_LONG = -2, TE_RX_BAD_CRC = -3
};

typedef struct {
    uint8_t *buffer;
    uint32_t capacity;
    uint8_t header[TE_HEADER_BYTES];
    uint8_t trailer[4];
    uint32_t position;   /* bytes of the current frame seen so far */
    uint8_t type;
    uint32_t length;
} te_rx;

void te_rx_init(te_rx *rx, uint8_t *buffer, uint32_t capacity);
int te_rx_byte(te_rx *rx, uint8_t byte);

#ifdef __cplusplus
}
#endif

#endif
