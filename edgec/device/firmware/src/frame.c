/* Framing of the edgec serial protocol, shared by main.c (generated C models) and
 * tflm_main.cc (TFLite Micro): magic, command, length, payload, CRC-32. */
#include "edgec_fw.h"

static uint32_t tx_crc;

static void put(const uint8_t *p, uint32_t n, int in_crc)
{
    for (uint32_t i = 0; i < n; i++) {
        uart_putc(p[i]);
    }
    if (in_crc) {
        tx_crc = crc32_update(tx_crc, p, n);
    }
}

static void le32(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    b[2] = (uint8_t)(v >> 16);
    b[3] = (uint8_t)(v >> 24);
}

void reply_begin(uint8_t cmd, uint32_t length)
{
    static const uint8_t magic[4] = {EDGEC_MAGIC0, EDGEC_MAGIC1, EDGEC_MAGIC2, EDGEC_MAGIC3};
    uint8_t head[5];
    head[0] = cmd;
    le32(head + 1, length);
    put(magic, 4, 0);
    tx_crc = EDGEC_CRC_INIT;
    put(head, 5, 1);
}

void reply_bytes(const void *data, uint32_t n)
{
    put((const uint8_t *)data, n, 1);
}

void reply_u32(uint32_t v)
{
    uint8_t b[4];
    le32(b, v);
    put(b, 4, 1);
}

void reply_end(void)
{
    uint8_t b[4];
    le32(b, EDGEC_CRC_FINAL(tx_crc));
    put(b, 4, 0);
}

/* Error payload: status, 3 bytes padding, detail (u32). */
void reply_error(uint8_t cmd, uint8_t status, uint32_t detail)
{
    const uint8_t head[4] = {status, 0, 0, 0};
    reply_begin(cmd, 8);
    reply_bytes(head, 4);
    reply_u32(detail);
    reply_end();
}

void frame_wait_magic(void)
{
    const uint32_t magic = (EDGEC_MAGIC0 << 24) | (EDGEC_MAGIC1 << 16) | (EDGEC_MAGIC2 << 8) | EDGEC_MAGIC3;
    uint32_t window = 0u;
    while (window != magic) {
        uint8_t b;
        (void)uart_getc(&b, 0u);
        window = (window << 8) | b;
    }
}

/* Reads the rest of a frame after its magic into buf. The whole declared payload is consumed
 * (and checked against the CRC) even when it is longer than capacity, so that the stream stays
 * in step; only the first capacity bytes are stored. Returns EDGEC_ST_OK or an error status. */
int frame_read(uint8_t *cmd, uint32_t *length, uint8_t *buf, uint32_t capacity)
{
    uint8_t head[5], tail[4];
    for (int i = 0; i < 5; i++) {
        if (uart_getc(&head[i], EDGEC_BYTE_TIMEOUT_MS) != 0) {
            return EDGEC_ST_TIMEOUT;
        }
    }
    uint32_t crc = crc32_update(EDGEC_CRC_INIT, head, 5);
    uint32_t n = (uint32_t)head[1] | ((uint32_t)head[2] << 8) | ((uint32_t)head[3] << 16) | ((uint32_t)head[4] << 24);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t b;
        if (uart_getc(&b, EDGEC_BYTE_TIMEOUT_MS) != 0) {
            return EDGEC_ST_TIMEOUT;
        }
        crc = crc32_update(crc, &b, 1);
        if (i < capacity) {
            buf[i] = b;
        }
    }
    for (int i = 0; i < 4; i++) {
        if (uart_getc(&tail[i], EDGEC_BYTE_TIMEOUT_MS) != 0) {
            return EDGEC_ST_TIMEOUT;
        }
    }
    uint32_t sent = (uint32_t)tail[0] | ((uint32_t)tail[1] << 8) | ((uint32_t)tail[2] << 16) | ((uint32_t)tail[3] << 24);
    if (sent != EDGEC_CRC_FINAL(crc)) {
        return EDGEC_ST_BAD_CRC;
    }
    *cmd = head[0];
    *length = n;
    return EDGEC_ST_OK;
}


static void put_text(const char *s)
{
    while (*s) {
        uart_putc((uint8_t)*s++);
    }
}

static void put_uint(uint32_t v)
{
    char digits[11];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    while (n > 0) {
        uart_putc((uint8_t)digits[--n]);
    }
}

void self_check_report(uint32_t exact, uint32_t total, uint32_t first_bad)
{
    put_text("edgec self-check: ");
    put_uint(exact);
    put_text("/");
    put_uint(total);
    put_text(" bit-exact");
    if (exact != total) {
        put_text(" (first mismatch: sample ");
        put_uint(first_bad);
        put_text(")");
    }
    put_text("\r\n");
}
