/* tinyedge validation protocol, version 1: CRC32, frame encoding and a byte-at-a-time decoder (te_protocol.h). */
#include "te_protocol.h"

uint32_t te_crc32(uint32_t crc, const void *data, size_t length) {
    /* reflected polynomial 0xEDB88320, four bits per step: a 16-entry table instead of 1 KiB */
    static const uint32_t table[16] = {
        0x00000000ul, 0x1DB71064ul, 0x3B6E20C8ul, 0x26D930ACul, 0x76DC4190ul, 0x6B6B51F4ul, 0x4DB26158ul,
        0x5005713Cul, 0xEDB88320ul, 0xF00F9344ul, 0xD6D6A3E8ul, 0xCB61B38Cul, 0x9B64C2B0ul, 0x86D3D2D4ul,
        0xA00AE278ul, 0xBDBDF21Cul};
    const uint8_t *bytes = (const uint8_t *)data;
    crc = ~crc;
    for (size_t i = 0; i < length; ++i) {
        crc ^= bytes[i];
        crc = (crc >> 4) ^ table[crc & 15u];
        crc = (crc >> 4) ^ table[crc & 15u];
    }
    return ~crc;
}

void te_put_u16(uint8_t *out, uint16_t value) {
    out[0] = (uint8_t)value;
    out[1] = (uint8_t)(value >> 8);
}

void te_put_u32(uint8_t *out, uint32_t value) {
    for (int i = 0; i < 4; ++i) {
        out[i] = (uint8_t)(value >> (8 * i));
    }
}

void te_put_u64(uint8_t *out, uint64_t value) {
    te_put_u32(out, (uint32_t)value);
    te_put_u32(out + 4, (uint32_t)(value >> 32));
}

uint32_t te_get_u32(const uint8_t *in) {
    return (uint32_t)in[0] | ((uint32_t)in[1] << 8) | ((uint32_t)in[2] << 16) | ((uint32_t)in[3] << 24);
}

void te_tx_begin(te_tx *tx, te_write_fn write, void *context, uint8_t type, uint32_t length) {
    uint8_t header[TE_HEADER_BYTES] = {TE_SYNC0, TE_SYNC1, TE_PROTOCOL_VERSION, type};
    te_put_u32(header + 4, length);
    tx->write = write;
    tx->context = context;
    tx->crc = te_crc32(0, header + 2, TE_HEADER_BYTES - 2);
    write(context, header, sizeof header);
}

void te_tx_data(te_tx *tx, const void *data, size_t length) {
    tx->crc = te_crc32(tx->crc, data, length);
    tx->write(tx->context, data, length);
}

void te_tx_end(te_tx *tx) {
    uint8_t trailer[4];
    te_put_u32(trailer, tx->crc);
    tx->write(tx->context, trailer, sizeof trailer);
}

void te_send(te_write_fn write, void *context, uint8_t type, const void *payload, uint32_t length) {
    te_tx tx;
    te_tx_begin(&tx, write, context, type, length);
    te_tx_data(&tx, payload, length);
    te_tx_end(&tx);
}

void te_rx_init(te_rx *rx, uint8_t *buffer, uint32_t capacity) {
    rx->buffer = buffer;
    rx->capacity = capacity;
    rx->position = 0;
    rx->type = 0;
    rx->length = 0;
}

/* The header: sync bytes (a wrong one restarts the scan, a 0xA5 may begin a new frame), then version, type,
   length; returns an error once the header is complete and refused. */
static int header_byte(te_rx *rx, uint8_t byte) {
    if (rx->position < 2) {
        const uint8_t sync = rx->position == 0 ? TE_SYNC0 : TE_SYNC1;
        if (byte != sync) {
            rx->position = byte == TE_SYNC0 ? 1 : 0;
            return TE_RX_MORE;
        }
    }
    rx->header[rx->position++] = byte;
    if (rx->position < TE_HEADER_BYTES) {
        return TE_RX_MORE;
    }
    rx->type = rx->header[3];
    rx->length = te_get_u32(rx->header + 4);
    if (rx->header[2] != TE_PROTOCOL_VERSION) {
        rx->position = 0;
        return TE_RX_BAD_VERSION;
    }
    if (rx->length > TE_MAX_PAYLOAD || rx->length > rx->capacity) {
        rx->position = 0;
        return TE_RX_TOO_LONG;
    }
    return TE_RX_MORE;
}

int te_rx_byte(te_rx *rx, uint8_t byte) {
    if (rx->position < TE_HEADER_BYTES) {
        return header_byte(rx, byte);
    }
    const uint32_t offset = rx->position - TE_HEADER_BYTES;
    if (offset < rx->length) {
        rx->buffer[offset] = byte;
    } else {
        rx->trailer[offset - rx->length] = byte;
    }
    rx->position++;
    if (offset + 1 < rx->length + 4) {
        return TE_RX_MORE;
    }
    rx->position = 0;
    uint32_t crc = te_crc32(0, rx->header + 2, TE_HEADER_BYTES - 2);
    crc = te_crc32(crc, rx->buffer, rx->length);
    return crc == te_get_u32(rx->trailer) ? TE_RX_FRAME : TE_RX_BAD_CRC;
}
