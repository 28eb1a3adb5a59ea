/* tinyedge's serial shell for QEMU's mps2-an386 / mps2-an500: the validation protocol (te_protocol.h) on the
   CMSDK APB UART0 at 0x40004000, which QEMU wires to the first -serial (a loopback socket under `doit validate`).
   HELLO -> INFO (model_info.h: the JSON codegen wrote, with the model's XXH3), INFER -> RESULT (the outputs, the
   SysTick cycles of the invoke and of each operator), CAPTURE -> ERROR "no camera". Registers as QEMU's
   hw/char/cmsdk-apb-uart.c models them: DATA 0x00, STATE 0x04 (bit 0 TX full, bit 1 RX full), CTRL 0x08 (bit 0 TX
   enable, bit 1 RX enable), BAUDDIV 0x10 (at least 16, else QEMU ignores it). */
#include <string.h>

#include "harness.h"
#include "model_info.h"
#include "te_protocol.h"

#define UART0 0x40004000ul
#define UART_DATA (*(volatile unsigned long *)(UART0 + 0x00))
#define UART_STATE (*(volatile unsigned long *)(UART0 + 0x04))
#define UART_CTRL (*(volatile unsigned long *)(UART0 + 0x08))
#define UART_INTSTATUS (*(volatile unsigned long *)(UART0 + 0x0C))
#define UART_BAUDDIV (*(volatile unsigned long *)(UART0 + 0x10))
#define NVIC_ISER0 (*(volatile unsigned long *)0xE000E100ul)
#define NVIC_ICPR0 (*(volatile unsigned long *)0xE000E280ul)
#define UART0_RX_IRQ 0       /* QEMU's mps2.c: UART0's receive interrupt is IRQ 0 (transmit 1) */
#define TX_FULL 1ul
#define RX_FULL 2ul
#define CORE_HZ 25000000ul   /* the mps2 boards' core and APB clock in QEMU */
#define BAUD 115200ul

#ifndef TE_CYCLES_PER_TICK
#error "TE_CYCLES_PER_TICK: instructions per SysTick tick under -icount, set by the qemu toolchain"
#endif

static void uart_write(void *context, const void *data, size_t length) {
    (void)context;
    const uint8_t *bytes = (const uint8_t *)data;
    for (size_t i = 0; i < length; ++i) {
        while (UART_STATE & TX_FULL) {
        }
        UART_DATA = bytes[i];
    }
}

static void console(const char *line) {
    uart_write(NULL, line, strlen(line));
}

/* The next received byte. The core sleeps (WFI) until the UART's receive interrupt is pending: interrupts stay
   masked (PRIMASK), the pending bit only wakes it. Under -icount a sleeping core lets QEMU deliver the socket's
   bytes at once, where a polling loop would make it wait for the end of each translated block run. */
static uint8_t uart_read(void) {
    while (!(UART_STATE & RX_FULL)) {
        __asm__ volatile("wfi");
    }
    const uint8_t byte = (uint8_t)UART_DATA;
    UART_INTSTATUS = RX_FULL;   /* write 1 to clear the RX interrupt (bit 1, like STATE's RX full) */
    NVIC_ICPR0 = 1ul << UART0_RX_IRQ;
    return byte;
}

static void error(const char *text) {
    te_send(uart_write, NULL, TE_ERROR, text, (uint32_t)strlen(text));
}

/* text + the decimal digits of value, into out (newlib's snprintf would add kilobytes of code). */
static char *with_number(char *out, const char *text, unsigned long value) {
    char digits[12];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    out = strcpy(out, text) + strlen(text);
    while (count > 0) {
        *out++ = digits[--count];
    }
    *out = '\0';
    return out;
}

static int8_t output[TINYEDGE_OUTPUT_SIZE];
static unsigned long long layers[TINYEDGE_LAYERS > 0 ? TINYEDGE_LAYERS : 1];

/* INFER: u32 index, then the input -> RESULT: u32 index, u64 cycles, u32 L, L x u64, then the output. */
static void infer(const uint8_t *payload, uint32_t length) {
    if (length != 4 + TINYEDGE_INPUT_SIZE) {
        char text[64];
        with_number(with_number(text, "input length ", length - 4), ", expected ", TINYEDGE_INPUT_SIZE);
        error(length < 4 ? "INFER without a sample index" : text);
        return;
    }
    memset(layers, 0, sizeof layers);
    const unsigned long long ticks = te_timed_invoke((const int8_t *)payload + 4, output, layers);
#ifdef TINYEDGE_LAYER_HOOK
    const uint32_t count = TINYEDGE_LAYERS;
#else
    const uint32_t count = 0;
#endif
    uint8_t head[16];
    memcpy(head, payload, 4);
    te_put_u64(head + 4, ticks * TE_CYCLES_PER_TICK);
    te_put_u32(head + 12, count);
    te_tx tx;
    te_tx_begin(&tx, uart_write, NULL, TE_RESULT, (uint32_t)(sizeof head + 8 * count + TINYEDGE_OUTPUT_SIZE));
    te_tx_data(&tx, head, sizeof head);
    for (uint32_t i = 0; i < count; ++i) {
        uint8_t cycles[8];
        te_put_u64(cycles, layers[i] * TE_CYCLES_PER_TICK);
        te_tx_data(&tx, cycles, sizeof cycles);
    }
    te_tx_data(&tx, output, TINYEDGE_OUTPUT_SIZE);
    te_tx_end(&tx);
}

static void answer(uint8_t type, const uint8_t *payload, uint32_t length) {
    static const char info[] = TINYEDGE_INFO;
    char text[40];
    switch (type) {
    case TE_HELLO:
        te_send(uart_write, NULL, TE_INFO, info, sizeof info - 1);
        break;
    case TE_INFER:
        infer(payload, length);
        break;
    case TE_CAPTURE:
        error("no camera");
        break;
    default:
        with_number(text, "unknown frame type ", type);
        error(text);
    }
}

int te_serve(void) {
    static uint8_t buffer[4 + TINYEDGE_INPUT_SIZE];
    te_rx rx;
    te_rx_init(&rx, buffer, sizeof buffer);
    UART_BAUDDIV = CORE_HZ / BAUD;
    UART_CTRL = 3 | 8;   /* TX and RX enabled, RX interrupt (woken from WFI, never taken: PRIMASK is set) */
    __asm__ volatile("cpsid i");
    NVIC_ISER0 = 1ul << UART0_RX_IRQ;
    te_systick_start();
    console("tinyedge: validation protocol 1 on UART0\r\n");
    for (;;) {
        const int status = te_rx_byte(&rx, uart_read());
        if (status == TE_RX_FRAME) {
            answer(rx.type, buffer, rx.length);
        } else if (status == TE_RX_BAD_CRC) {
            error("corrupt frame (CRC)");
        } else if (status == TE_RX_TOO_LONG) {
            error("frame longer than an INFER of this model");
        } else if (status == TE_RX_BAD_VERSION) {
            error("protocol version not 1");
        }
    }
}
