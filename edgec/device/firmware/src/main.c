/* The edgec device loop: answers INFO and INFER frames on UART0 (see edgec_fw.h and
 * edgec/firmware/protocol.py). The model comes from the generated model.c/model.h:
 * int edgec_invoke(const edgec_input_t *input, edgec_output_t *output), whose element types are
 * int8_t, or float for a model with float input or output; frames carry the buffers' raw bytes. */
#include "edgec_fw.h"
#include "model.h"

#ifndef EDGEC_INPUT_BYTES
#error "model.h must define EDGEC_INPUT_BYTES"
#endif
#ifndef EDGEC_OUTPUT_BYTES
#error "model.h must define EDGEC_OUTPUT_BYTES"
#endif
#ifndef EDGEC_ARENA_BYTES
#error "model.h must define EDGEC_ARENA_BYTES"
#endif
#ifndef EDGEC_INPUT_FLOAT /* model.h from before float I/O: int8 in and out */
typedef int8_t edgec_input_t;
typedef int8_t edgec_output_t;
#endif

static edgec_input_t input_buf[EDGEC_INPUT_BYTES / sizeof(edgec_input_t)] __attribute__((aligned(16)));
static edgec_output_t output_buf[EDGEC_OUTPUT_BYTES / sizeof(edgec_output_t)] __attribute__((aligned(16)));

static void reply_info(void)
{
    const uint8_t head[4] = {EDGEC_ST_OK, EDGEC_PROTOCOL_VERSION, 0, 0};
    reply_begin(EDGEC_CMD_INFO | EDGEC_REPLY_BIT, 24);
    reply_bytes(head, 4);
    reply_u32(EDGEC_INPUT_BYTES);
    reply_u32(EDGEC_OUTPUT_BYTES);
    reply_u32(EDGEC_ARENA_BYTES);
    reply_u32(EDGEC_COUNTER_HZ);
    reply_u32(EDGEC_INPUT_BYTES); /* largest payload accepted */
    reply_end();
}

static void infer(void)
{
    const uint8_t head[4] = {EDGEC_ST_OK, 0, 0, 0};
    counter_start();
    int rc = edgec_invoke(input_buf, output_buf);
    uint64_t ticks = counter_stop();
    if (rc != 0) {
        reply_error(EDGEC_CMD_INFER | EDGEC_REPLY_BIT, EDGEC_ST_INVOKE_FAILED, (uint32_t)rc);
        return;
    }
    reply_begin(EDGEC_CMD_INFER | EDGEC_REPLY_BIT, 12u + EDGEC_OUTPUT_BYTES);
    reply_bytes(head, 4);
    reply_u32((uint32_t)ticks);
    reply_u32((uint32_t)(ticks >> 32));
    reply_bytes(output_buf, EDGEC_OUTPUT_BYTES);
    reply_end();
}

void edgec_serve_one(void)
{
    uint8_t cmd = 0;
    uint32_t length = 0;
    frame_wait_magic();
    int status = frame_read(&cmd, &length, (uint8_t *)input_buf, EDGEC_INPUT_BYTES);
    if (status != EDGEC_ST_OK) {
        reply_error(EDGEC_CMD_ERROR, (uint8_t)status, 0u);
        return;
    }
    uint8_t reply = (uint8_t)(cmd | EDGEC_REPLY_BIT);
    if (cmd == EDGEC_CMD_INFO) {
        if (length != 0u) {
            reply_error(reply, EDGEC_ST_BAD_LENGTH, 0u);
            return;
        }
        reply_info();
    } else if (cmd == EDGEC_CMD_INFER) {
        if (length != EDGEC_INPUT_BYTES) {
            reply_error(reply, EDGEC_ST_BAD_LENGTH, EDGEC_INPUT_BYTES);
            return;
        }
        infer();
    } else {
        reply_error(EDGEC_CMD_ERROR, EDGEC_ST_UNKNOWN_COMMAND, cmd);
    }
}

#ifndef EDGEC_NO_MAIN /* a framework's project (edgec_port.h) has its own main and calls edgec_serve_one */
int main(void)
{
    counter_init();
    uart_init();
    for (;;) {
        edgec_serve_one();
    }
}
#endif
