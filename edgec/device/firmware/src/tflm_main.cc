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
//
// In a framework's project (`edgec compile --format tflm --project arduino|platformio|zephyr|esp-idf`)
// this file is the library's edgec_tflm.cc: edgec_port.h defines EDGEC_NO_MAIN, the framework's
// TFLite Micro package provides the headers, and the example calls edgec_self_check() once and
// edgec_serve_one() forever, as for the generated C.

#include <cstdint>
#include <cstring>

#include "edgec_fw.h"
#include "model_data.h"    // g_model_data, kTensorArenaSize
#include "op_resolver.h"   // edgec::OpResolver, edgec::RegisterOps
#if defined(__has_include)
#if __has_include("edgec_samples.h")
#include "edgec_samples.h"  // held-out samples for the boot self-check (edgec/device/firmware/samples.py)
#endif
#endif
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

// The interpreter, set up on first use; nullptr with setup_detail set when it cannot be.
tflite::MicroInterpreter* interpreter = nullptr;
uint32_t setup_detail = 0u;

tflite::MicroInterpreter* Interpreter() {
  if (interpreter != nullptr || setup_detail != 0u) {
    return interpreter;
  }
  const tflite::Model* model = tflite::GetModel(g_model_data);
  static edgec::OpResolver resolver;
  if (model->version() != TFLITE_SCHEMA_VERSION || edgec::RegisterOps(resolver) != kTfLiteOk) {
    setup_detail = 1u;
    return nullptr;
  }
  static tflite::MicroInterpreter instance(model, resolver, tensor_arena, kTensorArenaSize);
  if (instance.AllocateTensors() != kTfLiteOk) {
    setup_detail = 2u;
    return nullptr;
  }
  interpreter = &instance;
  return interpreter;
}

}  // namespace

// Runs the bundled samples and prints "edgec self-check: K/N bit-exact" (edgec_fw.h).
extern "C" void edgec_self_check(void) {
#ifdef EDGEC_SAMPLE_COUNT
  tflite::MicroInterpreter* interp = Interpreter();
  uint32_t exact = 0u;
  uint32_t first_bad = EDGEC_SAMPLE_COUNT;
  for (uint32_t s = 0u; s < EDGEC_SAMPLE_COUNT; s++) {
    bool same = false;
    if (interp != nullptr && interp->input(0)->bytes == EDGEC_SAMPLE_INPUT_BYTES &&
        interp->output(0)->bytes == EDGEC_SAMPLE_OUTPUT_BYTES) {
      std::memcpy(interp->input(0)->data.raw, edgec_sample_inputs[s], EDGEC_SAMPLE_INPUT_BYTES);
      counter_start();
      same = interp->Invoke() == kTfLiteOk;
      (void)counter_stop();
      same = same && std::memcmp(interp->output(0)->data.raw, edgec_sample_outputs[s],
                                 EDGEC_SAMPLE_OUTPUT_BYTES) == 0;
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

// Serves one request; when the model cannot be set up, answers with a fault status
// (detail 1 = schema or operators, 2 = arena too small) so the host learns why.
extern "C" void edgec_serve_one(void) {
  tflite::MicroInterpreter* interp = Interpreter();
  if (interp == nullptr) {
    uint8_t scratch[4];
    uint8_t cmd = 0;
    uint32_t length = 0;
    frame_wait_magic();
    (void)frame_read(&cmd, &length, scratch, sizeof(scratch));
    reply_error(EDGEC_CMD_ERROR, EDGEC_ST_FAULT, setup_detail);
    return;
  }
  ServeOne(*interp, interp->input(0), interp->output(0));
}

#ifndef EDGEC_NO_MAIN
int main() {
  counter_init();
  uart_init();
  edgec_self_check();
  for (;;) {
    edgec_serve_one();
  }
}
#endif
