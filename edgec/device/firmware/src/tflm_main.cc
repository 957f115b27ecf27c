// edgec device loop for the TFLite Micro format: the same framed serial protocol as edgec's
// generated-C firmware (see edgec/firmware/protocol.py), so `edgec verify OUT/ID --port PORT`
// talks to either.
//
// Template shipped by edgec, not compiled by it (TFLite Micro's sources are not part of
// edgec). Build it with your TFLite Micro tree and these files from the same folder:
//   - model_data.h / model_data.cc and op_resolver.h: written by `edgec compile` for the tflm
//     format (g_model_data, kTensorArenaSize, edgec::OpResolver, edgec::RegisterOps);
//   - frame.c, crc32.c, edgec_fw.h: the protocol framing;
//   - on QEMU's mps2/mps3 boards also startup.c, uart_cmsdk.c, counter.c and the linker script
//     edgec renders for the board; on another board, your own uart_init/uart_putc/uart_getc
//     and counter_* with the signatures of edgec_fw.h (a cycle counter for counter_start/stop).
// Startup code must run C++ static constructors if your TFLite Micro build needs them.

#include <cstdint>
#include <cstring>

#include "edgec_fw.h"
#include "model_data.h"    // g_model_data, kTensorArenaSize
#include "op_resolver.h"   // edgec::OpResolver, edgec::RegisterOps
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/schema/schema_generated.h"

// Defined by TensorFlow Lite's version.h, which not every TFLite Micro tree carries.
#ifndef TFLITE_SCHEMA_VERSION
#define TFLITE_SCHEMA_VERSION 3
#endif

namespace {

alignas(16) uint8_t tensor_arena[kTensorArenaSize];

// Reports the model's input/output sizes, the arena in use and the counter's clock.
void ReplyInfo(const tflite::MicroInterpreter& interpreter, TfLiteTensor* input, TfLiteTensor* output) {
  const uint8_t head[4] = {EDGEC_ST_OK, EDGEC_PROTOCOL_VERSION, 0, 0};
  reply_begin(EDGEC_CMD_INFO | EDGEC_REPLY_BIT, 24);
  reply_bytes(head, 4);
  reply_u32(static_cast<uint32_t>(input->bytes));
  reply_u32(static_cast<uint32_t>(output->bytes));
  reply_u32(static_cast<uint32_t>(interpreter.arena_used_bytes()));
  reply_u32(EDGEC_COUNTER_HZ);
  reply_u32(static_cast<uint32_t>(input->bytes));
  reply_end();
}

void Infer(tflite::MicroInterpreter& interpreter, TfLiteTensor* output) {
  const uint8_t head[4] = {EDGEC_ST_OK, 0, 0, 0};
  counter_start();
  TfLiteStatus status = interpreter.Invoke();
  uint64_t ticks = counter_stop();
  if (status != kTfLiteOk) {
    reply_error(EDGEC_CMD_INFER | EDGEC_REPLY_BIT, EDGEC_ST_INVOKE_FAILED, static_cast<uint32_t>(status));
    return;
  }
  reply_begin(EDGEC_CMD_INFER | EDGEC_REPLY_BIT, 12u + static_cast<uint32_t>(output->bytes));
  reply_bytes(head, 4);
  reply_u32(static_cast<uint32_t>(ticks));
  reply_u32(static_cast<uint32_t>(ticks >> 32));
  reply_bytes(output->data.raw, static_cast<uint32_t>(output->bytes));
  reply_end();
}

// Serves one request. The input frame is read straight into the input tensor.
void ServeOne(tflite::MicroInterpreter& interpreter, TfLiteTensor* input, TfLiteTensor* output) {
  uint8_t cmd = 0;
  uint32_t length = 0;
  frame_wait_magic();
  int status = frame_read(&cmd, &length, reinterpret_cast<uint8_t*>(input->data.raw),
                          static_cast<uint32_t>(input->bytes));
  if (status != EDGEC_ST_OK) {
    reply_error(EDGEC_CMD_ERROR, static_cast<uint8_t>(status), 0u);
    return;
  }
  const uint8_t reply = static_cast<uint8_t>(cmd | EDGEC_REPLY_BIT);
  if (cmd == EDGEC_CMD_INFO) {
    if (length != 0u) {
      reply_error(reply, EDGEC_ST_BAD_LENGTH, 0u);
    } else {
      ReplyInfo(interpreter, input, output);
    }
  } else if (cmd == EDGEC_CMD_INFER) {
    if (length != input->bytes) {
      reply_error(reply, EDGEC_ST_BAD_LENGTH, static_cast<uint32_t>(input->bytes));
    } else {
      Infer(interpreter, output);
    }
  } else {
    reply_error(EDGEC_CMD_ERROR, EDGEC_ST_UNKNOWN_COMMAND, cmd);
  }
}

// Answers every request with a fault status when the model cannot be set up, so that the
// host learns why instead of timing out. detail: 1 = schema or operators, 2 = arena too small.
[[noreturn]] void ServeSetupError(uint32_t detail) {
  uint8_t scratch[4];
  for (;;) {
    uint8_t cmd = 0;
    uint32_t length = 0;
    frame_wait_magic();
    (void)frame_read(&cmd, &length, scratch, sizeof(scratch));
    reply_error(EDGEC_CMD_ERROR, EDGEC_ST_FAULT, detail);
  }
}

}  // namespace

int main() {
  counter_init();
  uart_init();
  const tflite::Model* model = tflite::GetModel(g_model_data);
  static edgec::OpResolver resolver;
  if (model->version() != TFLITE_SCHEMA_VERSION || edgec::RegisterOps(resolver) != kTfLiteOk) {
    ServeSetupError(1u);
  }
  static tflite::MicroInterpreter interpreter(model, resolver, tensor_arena, kTensorArenaSize);
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    ServeSetupError(2u);
  }
  TfLiteTensor* input = interpreter.input(0);
  TfLiteTensor* output = interpreter.output(0);
  for (;;) {
    ServeOne(interpreter, input, output);
  }
}
