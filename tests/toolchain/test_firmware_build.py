"""Firmware builds with arm-none-eabi-gcc: budgets as linker limits, footprint, bad inputs."""

from __future__ import annotations

import re

import pytest

from firmware_support import write_fc_model

pytestmark = pytest.mark.toolchain

M4_FLASH, M4_RAM = 1_048_576, 262_144  # targets/cortex-m4.toml


def test_model_over_the_flash_budget_fails_at_link_time_saying_by_how_much(tmp_path):
    from edgec.core.errors import GateError
    from edgec.device.firmware import build_firmware

    big = 1_500_000
    c_dir = write_fc_model(tmp_path / "m", extra_c=f"static const int8_t big[{big}] = {{1}};",
                           extra_use="output[0] += big[(uint8_t)input[0] * 5000];")
    with pytest.raises(GateError) as e:
        build_firmware(c_dir, "mps2-an386", flash_bytes=M4_FLASH, ram_bytes=M4_RAM, out=tmp_path / "fw")
    message = str(e.value)
    assert e.value.exit_code == 1
    assert message.startswith("[firmware / mps2-an386] model does not fit cortex-m4 at link time")
    overflow = int(re.search(r"flash overflowed by (\d+) bytes", message).group(1))
    # The constant array alone is 1.5 MB; the rest (code, weights) is a few KB.
    assert big - M4_FLASH < overflow < big - M4_FLASH + 16_384
    assert "--prune/--clusters" in message and "RAM" not in message


def test_model_over_the_ram_budget_fails_at_link_time_naming_ram(tmp_path):
    from edgec.core.errors import GateError
    from edgec.device.firmware import build_firmware

    c_dir = write_fc_model(tmp_path / "m", extra_c="static int8_t scratch[300000];",
                           extra_use="scratch[(uint8_t)input[0]] = input[1]; output[1] += scratch[7];")
    with pytest.raises(GateError, match=r"RAM overflowed by \d+ bytes \(budget 262144 B") as e:
        build_firmware(c_dir, "mps3-an547", flash_bytes=M4_FLASH, ram_bytes=M4_RAM, out=tmp_path / "fw")
    overflow = int(re.search(r"RAM overflowed by (\d+) bytes", str(e.value)).group(1))
    assert 300_000 + 8192 - M4_RAM <= overflow < 300_000 + 8192 - M4_RAM + 1024


def test_same_model_fits_when_the_budget_is_large_enough(tmp_path):
    from edgec.device.firmware import build_firmware

    c_dir = write_fc_model(tmp_path / "m", extra_c="static int8_t scratch[200000];",
                           extra_use="scratch[(uint8_t)input[0]] = input[1]; output[1] += scratch[7];")
    image = build_firmware(c_dir, "mps2-an386", flash_bytes=M4_FLASH, ram_bytes=M4_RAM, out=tmp_path / "fw")
    assert image.elf.is_file()
    assert 200_000 + 8192 <= image.ram_bytes <= M4_RAM
    # text holds the 480 int8 weights and 10 int32 biases plus the firmware (a few KB).
    assert 480 + 40 < image.text < 16_384 and image.flash_bytes == image.text + image.data


def test_linker_script_places_sections_in_board_memory_capped_at_the_target_budget():
    from edgec.device.firmware.boards import board
    from edgec.device.firmware.build import render_linker_script

    m4 = render_linker_script(board("mps2-an386"), flash_bytes=M4_FLASH, ram_bytes=M4_RAM, stack_bytes=4096)
    assert "FLASH (rx)  : ORIGIN = 0x00000000, LENGTH = 0x100000" in m4
    assert "RAM   (rwx) : ORIGIN = 0x20000000, LENGTH = 0x40000" in m4
    m55 = render_linker_script(board("qemu-mps3-an547"), flash_bytes=2 << 20, ram_bytes=1 << 20, stack_bytes=4096)
    # The reset vector lives in the ITCM at 0; its 512 bytes count against the flash budget.
    assert "VECTORS (rx) : ORIGIN = 0x00000000, LENGTH = 0x200" in m55
    assert "FLASH (rx)  : ORIGIN = 0x11000000, LENGTH = 0x1ffe00" in m55
    assert "RAM   (rwx) : ORIGIN = 0x31000000, LENGTH = 0x100000" in m55


def test_builds_are_byte_identical(tmp_path):
    from edgec.device.firmware import build_firmware

    c_dir = write_fc_model(tmp_path / "m")
    a = build_firmware(c_dir, "mps2-an505", flash_bytes=M4_FLASH, ram_bytes=M4_RAM, out=tmp_path / "a")
    b = build_firmware(c_dir, "mps2-an505", flash_bytes=M4_FLASH, ram_bytes=M4_RAM, out=tmp_path / "b")
    assert a.elf.read_bytes() == b.elf.read_bytes()


def test_folder_without_generated_model_is_an_input_error(tmp_path):
    from edgec.core.errors import InputError
    from edgec.device.firmware import build_firmware

    with pytest.raises(InputError, match="no model.c/model.h") as e:
        build_firmware(tmp_path, "mps2-an386", flash_bytes=M4_FLASH, ram_bytes=M4_RAM, out=tmp_path / "fw")
    assert e.value.exit_code == 2
    (tmp_path / "model.c").write_text("int x;\n")
    (tmp_path / "model.h").write_text("#define EDGEC_INPUT_BYTES 4\n")
    with pytest.raises(InputError, match="does not define EDGEC_OUTPUT_BYTES, EDGEC_ARENA_BYTES"):
        build_firmware(tmp_path, "mps2-an386", flash_bytes=M4_FLASH, ram_bytes=M4_RAM, out=tmp_path / "fw")


def test_unknown_board_is_an_input_error_listing_the_known_ones(tmp_path):
    from edgec.core.errors import InputError
    from edgec.device.firmware import build_firmware

    with pytest.raises(InputError, match="unknown QEMU board 'mps2-an999' .*qemu-mps2-an386"):
        build_firmware(write_fc_model(tmp_path / "m"), "mps2-an999", flash_bytes=M4_FLASH, ram_bytes=M4_RAM,
                       out=tmp_path / "fw")


def test_c_that_does_not_compile_is_a_toolchain_error_quoting_the_compiler(tmp_path):
    from edgec.core.errors import ToolchainError
    from edgec.device.firmware import build_firmware

    c_dir = write_fc_model(tmp_path / "m", extra_c="this is not C;")
    with pytest.raises(ToolchainError, match="arm-none-eabi-gcc failed: .*model.c") as e:
        build_firmware(c_dir, "mps2-an386", flash_bytes=M4_FLASH, ram_bytes=M4_RAM, out=tmp_path / "fw")
    assert e.value.exit_code == 3


def test_every_board_matches_its_target_core():
    from edgec.device.firmware import board_for_core

    assert [board_for_core(c).machine for c in ("cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")] == [
        "mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547"]
