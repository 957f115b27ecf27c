/* The edgec device loop: answers INFO and INFER frames on UART0 (see edgec_fw.h and
 * edgec/firmware/protocol.py). The model comes from the generated model.c/model.h:
 * int edgec_invoke(const edgec_input_t *input, edgec_output_t *output), whose element types are
 * int8_t, or float for a model with float input or output; frames carry the buffers' raw bytes. */
#include "edgec_fw.h"
#include "model.h"
/* A --project build bundles a few held-out samples (edgec/device/firmware/samples.py). */
#if defined(__has_include)
#if __has_include("edgec_samples.h")
#include "edgec_samples.h"
#endif
#endif

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

#ifdef EDGEC_SAMPLE_COUNT
typedef char edgec_sample_input_size_matches[(EDGEC_SAMPLE_INPUT_BYTES == EDGEC_INPUT_BYTES) ? 1 : -1];
typedef char edgec_sample_output_size_matches[(EDGEC_SAMPLE_OUTPUT_BYTES == EDGEC_OUTPUT_BYTES) ? 1 : -1];
#endif

/* Runs the bundled samples and prints one line, "edgec self-check: 4/4 bit-exact", before the
 * protocol starts (the host skips text outside frames). Without bundled samples it does nothing.
 * Each inference sits between counter_start and counter_stop, as a served one does, so the cycle
 * trace (cycles.py) can skip them. */
void edgec_self_check(void)
{
#ifdef EDGEC_SAMPLE_COUNT
    uint32_t exact = 0u;
    uint32_t first_bad = EDGEC_SAMPLE_COUNT;
    for (uint32_t s = 0u; s < EDGEC_SAMPLE_COUNT; s++) {
        uint8_t *in = (uint8_t *)input_buf;
        const uint8_t *out = (const uint8_t *)output_buf;
        for (uint32_t i = 0u; i < EDGEC_INPUT_BYTES; i++) {
            in[i] = edgec_sample_inputs[s][i];
        }
        counter_start();
        int rc = edgec_invoke(input_buf, output_buf);
        (void)counter_stop();
        int same = rc == 0;
        for (uint32_t i = 0u; same && i < EDGEC_OUTPUT_BYTES; i++) {
            same = out[i] == edgec_sample_outputs[s][i];
        }
        if (same) {
            exact++;
        } else if (first_bad == EDGEC_SAMPLE_COUNT) {
            first_bad = s;
        }
    }
    self_check_report(exact, EDGEC_SAMPLE_COUNT, first_bad);
#endif
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
    edgec_self_check();
    for (;;) {
        edgec_serve_one();
    }
}
#endif
