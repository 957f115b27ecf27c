/* Shared declarations of the edgec firmware: board facts (passed as -D flags by
 * edgec/firmware/build.py from boards.py), the CMSDK UART driver, the SysTick counter,
 * CRC-32 and the wire constants of the framed serial protocol (mirrored in protocol.py). */
#ifndef EDGEC_FW_H
#define EDGEC_FW_H

#include <stdint.h>
#include <stddef.h>

/* In a framework's project (Arduino, PlatformIO, Zephyr, ESP-IDF; edgec/firmware/projects_hosted.py)
 * edgec_port.h says that the framework owns main() and the serial port, and the counter's clock. */
#if defined(__has_include)
#if __has_include("edgec_port.h")
#include "edgec_port.h"
#endif
#endif

#ifndef EDGEC_UART_BASE
#error "EDGEC_UART_BASE must be defined by the build (see edgec/firmware/boards.py)"
#endif
#ifndef EDGEC_UART_RX_IRQ
#error "EDGEC_UART_RX_IRQ must be defined by the build"
#endif
#ifndef EDGEC_COUNTER_HZ
#error "EDGEC_COUNTER_HZ must be defined by the build"
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- protocol: magic, command(u8), length(u32 LE), payload, CRC-32(u32 LE) over
 * command+length+payload. A reply carries command | 0x80; a frame the device cannot
 * attribute to a command (bad CRC, timeout) is answered with EDGEC_CMD_ERROR. */
#define EDGEC_MAGIC0 0xEDu
#define EDGEC_MAGIC1 0x9Eu
#define EDGEC_MAGIC2 0xC0u
#define EDGEC_MAGIC3 0x5Au
#define EDGEC_PROTOCOL_VERSION 1u

#define EDGEC_CMD_INFO 0x01u
#define EDGEC_CMD_INFER 0x02u
#define EDGEC_CMD_ERROR 0xFFu
#define EDGEC_REPLY_BIT 0x80u

#define EDGEC_ST_OK 0u
#define EDGEC_ST_BAD_CRC 1u
#define EDGEC_ST_BAD_LENGTH 2u
#define EDGEC_ST_UNKNOWN_COMMAND 3u
#define EDGEC_ST_INVOKE_FAILED 4u
#define EDGEC_ST_TIMEOUT 5u
#define EDGEC_ST_FAULT 6u

/* A frame whose next byte does not arrive within this time is abandoned. */
#define EDGEC_BYTE_TIMEOUT_MS 1000u

/* ---- UART (CMSDK APB UART of the MPS2/MPS3 boards) */
void uart_init(void);
void uart_putc(uint8_t c);
/* Returns 0 and the byte, or -1 when timeout_ms (0 = wait forever) elapsed first. */
int uart_getc(uint8_t *c, uint32_t timeout_ms);

/* ---- counter (SysTick on the processor clock) */
void counter_init(void);          /* starts the free-running counter */
uint32_t counter_ms(void);        /* milliseconds since counter_init, for receive timeouts */
void counter_start(void);         /* marks the start of an inference */
uint64_t counter_stop(void);      /* ticks since counter_start */

/* ---- CRC-32 (IEEE 802.3, reflected, as zlib.crc32) */
uint32_t crc32_update(uint32_t crc, const uint8_t *data, size_t n);
#define EDGEC_CRC_INIT 0xFFFFFFFFu
#define EDGEC_CRC_FINAL(c) ((c) ^ 0xFFFFFFFFu)

/* ---- protocol replies, used by main.c and the fault handler */
void reply_begin(uint8_t cmd, uint32_t length);
void reply_bytes(const void *data, uint32_t n);
void reply_u32(uint32_t v);
void reply_end(void);
void reply_error(uint8_t cmd, uint8_t status, uint32_t detail);

/* ---- the device loop (main.c): serves one request; a framework's loop calls it forever */
void edgec_serve_one(void);
/* Runs the bundled samples (edgec_samples.h, when the build has them) and prints one line:
 * "edgec self-check: K/N bit-exact". A framework's setup calls it once after uart_init. */
void edgec_self_check(void);
/* Prints the self-check line (frame.c): "edgec self-check: K/N bit-exact", and the first
 * mismatching sample when K < N. */
void self_check_report(uint32_t exact, uint32_t total, uint32_t first_bad);

/* ---- protocol requests (frame.c) */
void frame_wait_magic(void);
int frame_read(uint8_t *cmd, uint32_t *length, uint8_t *buf, uint32_t capacity);

#ifdef __cplusplus
}
#endif

#endif
