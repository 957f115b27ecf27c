"""edgec firmware on QEMU's Cortex-M boards: outputs, deterministic counts, protocol errors.

Real arm-none-eabi-gcc and qemu-system-arm; the model is the fixture in firmware_support.py.
"""

from __future__ import annotations

import struct
import time
import zlib

import numpy as np
import pytest

from firmware_support import IN, OUT, random_inputs, reference, write_fc_model

pytestmark = pytest.mark.toolchain

BUDGETS = {"mps2-an386": (1 << 20, 256 << 10), "mps2-an500": (1 << 20, 320 << 10),
           "mps2-an505": (1 << 20, 512 << 10), "mps3-an547": (2 << 20, 1 << 20)}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from edgec.device.firmware import build_firmware

    c_dir = write_fc_model(tmp_path_factory.mktemp("fc_model"))
    out = tmp_path_factory.mktemp("firmware")
    return {b: build_firmware(c_dir, b, flash_bytes=f, ram_bytes=r, out=out / b) for b, (f, r) in BUDGETS.items()}


@pytest.fixture(params=["mps2-an386", "mps3-an547"])
def device(request, images):
    from edgec.device.firmware import Device, QemuSession

    with QemuSession(images[request.param].elf, request.param) as session, Device(session.url, timeout=20) as dev:
        yield dev


@pytest.mark.parametrize("board", list(BUDGETS))
def test_device_outputs_equal_numpy_and_counts_repeat_for_the_same_input(images, board):
    from edgec.device.firmware import run_on_device

    xs = random_inputs(6)
    results = run_on_device(images[board], [x.tobytes() for x in xs] + [xs[0].tobytes()])
    for x, (output, count) in zip(xs, results):
        np.testing.assert_array_equal(np.frombuffer(output, np.int8), reference(x))
        # 480 multiply-accumulates: well over one instruction each, well under a hundred.
        assert 480 < count < 48_000
    assert results[-1] == results[0]
    # Counts are per-inference instruction counts: the same input gives the same count.
    again = run_on_device(images[board], [xs[0].tobytes()])
    assert again[0].ticks == results[0].ticks


def test_info_reports_the_model_sizes_and_the_counter_clock(device):
    info = device.info()
    assert (info.input_bytes, info.output_bytes, info.arena_bytes) == (IN, OUT, 4 * OUT)
    assert info.protocol_version == 1 and info.counter_hz in (25_000_000, 32_000_000)


def _good_infer(device):
    x = random_inputs(1, seed=7)[0]
    r = device.infer(x.tobytes())
    np.testing.assert_array_equal(np.frombuffer(r.output, np.int8), reference(x))


def test_corrupted_frame_gets_a_crc_error_and_the_device_keeps_answering(device):
    from edgec.device.firmware.protocol import CMD_ERROR, CMD_INFER, ST_BAD_CRC, encode_frame

    frame = bytearray(encode_frame(CMD_INFER, random_inputs(1)[0].tobytes()))
    frame[12] ^= 0x10  # a payload bit flipped on the line
    device.send_raw(bytes(frame))
    command, payload = device.read_frame()
    assert command == CMD_ERROR and payload[0] == ST_BAD_CRC
    _good_infer(device)


def test_wrong_length_input_gets_a_length_error_naming_the_expected_size(device):
    from edgec.device.firmware import DeviceError
    from edgec.device.firmware.protocol import CMD_INFER, ST_BAD_LENGTH

    with pytest.raises(DeviceError, match=f"wrong payload length \\(expected {IN} bytes\\)") as e:
        device.request(CMD_INFER, bytes(IN - 3))
    assert e.value.status == ST_BAD_LENGTH and e.value.exit_code == 3
    with pytest.raises(DeviceError, match="wrong payload length"):
        device.request(CMD_INFER, bytes(IN + 100))
    _good_infer(device)


def test_unknown_command_is_refused_and_the_device_keeps_answering(device):
    from edgec.device.firmware import DeviceError
    from edgec.device.firmware.protocol import ST_UNKNOWN_COMMAND

    with pytest.raises(DeviceError, match="unknown command") as e:
        device.request(0x33)
    assert e.value.status == ST_UNKNOWN_COMMAND
    _good_infer(device)


def test_truncated_frame_times_out_on_the_device_and_the_next_request_works(device):
    from edgec.device.firmware.protocol import CMD_ERROR, MAGIC, ST_TIMEOUT

    device.send_raw(MAGIC + struct.pack("<BI", 0x02, IN) + bytes(5))  # 5 of 48 payload bytes, then silence
    start = time.monotonic()
    command, payload = device.read_frame()
    assert command == CMD_ERROR and payload[0] == ST_TIMEOUT
    assert time.monotonic() - start < 10
    _good_infer(device)


def test_garbage_before_a_frame_is_skipped(device):
    device.send_raw(bytes(range(200)) + b"\xed\x9e")
    _good_infer(device)


def test_reply_frames_carry_a_valid_crc(device):
    from edgec.device.firmware.protocol import CMD_INFO, MAGIC, encode_frame

    device.send_raw(encode_frame(CMD_INFO))
    time.sleep(0.2)
    raw = device._port.read(4 + 5 + 24 + 4)
    assert raw[:4] == MAGIC
    (crc,) = struct.unpack("<I", raw[-4:])
    assert crc == zlib.crc32(raw[4:-4])


def test_run_on_device_refuses_inputs_of_the_wrong_size_before_sending(images):
    from edgec.core.errors import InputError
    from edgec.device.firmware import run_on_device

    with pytest.raises(InputError, match=f"input 1 has {IN - 1} bytes; the firmware's model takes {IN}"):
        run_on_device(images["mps2-an386"], [bytes(IN), bytes(IN - 1)])


_LOOP_MODEL_H = """#ifndef MODEL_H
#define MODEL_H
#include <stdint.h>
#define EDGEC_INPUT_BYTES 4
#define EDGEC_OUTPUT_BYTES 4
#define EDGEC_ARENA_BYTES 0
int edgec_invoke(const int8_t *input, int8_t *output);
#endif
"""
# Runs exactly 2 instructions per iteration (subs, bne) for the count given as input.
_LOOP_MODEL_C = """#include <string.h>
#include "model.h"
int edgec_invoke(const int8_t *input, int8_t *output)
{
    uint32_t n, count;
    memcpy(&count, input, 4);
    n = count;
    if (count == 0xDEADu) {
        return *(volatile int *)0xF0000000u;  /* an unmapped address: a bus fault */
    }
    if (n != 0u) {
        __asm volatile("1: subs %0, %0, #1\\n\\tbne 1b" : "+r"(n) : : "cc");
    }
    memcpy(output, input, 4);
    return 0;
}
"""


@pytest.mark.parametrize("board", ["mps2-an386", "mps3-an547"])
def test_count_is_the_number_of_instructions_executed(tmp_path, board):
    from edgec.device.firmware import build_firmware, run_on_device

    c_dir = tmp_path / "loop"
    c_dir.mkdir()
    (c_dir / "model.h").write_text(_LOOP_MODEL_H)
    (c_dir / "model.c").write_text(_LOOP_MODEL_C)
    image = build_firmware(c_dir, board, flash_bytes=1 << 20, ram_bytes=1 << 18, out=tmp_path / "fw")
    runs = run_on_device(image, [n.to_bytes(4, "little") for n in (1, 100_001, 300_001)])
    base, small, large = (r.ticks for r in runs)
    tick = 1e9 / {"mps2-an386": 25e6, "mps3-an547": 32e6}[board]  # instructions per counter tick
    assert abs((small - base) - 200_000) <= tick
    assert abs((large - base) - 600_000) <= tick


def test_fault_in_the_model_is_reported_to_the_host(tmp_path):
    from edgec.device.firmware import DeviceError, build_firmware, run_on_device

    c_dir = tmp_path / "fault"
    c_dir.mkdir()
    (c_dir / "model.h").write_text(_LOOP_MODEL_H)
    (c_dir / "model.c").write_text(_LOOP_MODEL_C)
    image = build_firmware(c_dir, "mps2-an386", flash_bytes=1 << 20, ram_bytes=1 << 18, out=tmp_path / "fw")
    with pytest.raises(DeviceError, match=r"device fault \(code \d+\)") as e:
        run_on_device(image, [(0xDEAD).to_bytes(4, "little")], timeout=20)
    assert e.value.status == 6


def test_image_qemu_cannot_load_is_a_toolchain_error_quoting_qemu(tmp_path):
    from edgec.core.errors import ToolchainError
    from edgec.device.firmware import QemuSession

    bad = tmp_path / "firmware.elf"
    bad.write_bytes(b"not an image")
    # QEMU loads the bytes as a raw image; the core then locks up on its garbage vector table.
    with pytest.raises(ToolchainError, match="qemu-system-arm exited with code -6 at start: qemu: fatal: Lockup"):
        with QemuSession(bad, "qemu-mps2-an386"):
            pass
