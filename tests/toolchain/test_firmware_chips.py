"""Firmware for real chips (STM32F405, nRF51822, nRF52840): on QEMU's models of the first two, as a
CMake project built from a clean folder, the budget gate at link time, and the flash commands.

Real arm-none-eabi-gcc, cmake and qemu-system-arm; the model is the fixture in firmware_support.py.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from firmware_support import IN, OUT, random_inputs, reference, write_fc_model

pytestmark = [pytest.mark.toolchain,
              pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("cmake") is None
                                 or shutil.which("qemu-system-arm") is None,
                                 reason="arm-none-eabi-gcc / cmake / qemu-system-arm missing: run `make toolchains`")]

# (QEMU machine or chip, flash budget, RAM budget): the chips' real memories.
CHIPS = {"netduinoplus2": (1 << 20, 128 << 10), "microbit": (256 << 10, 16 << 10), "nrf52840": (1 << 20, 256 << 10),
         "rp2040": (2 << 20, 264 << 10)}
# Where each chip's flash starts, the vector table's offset in it (the RP2040's boot2 comes first), its RAM.
MEMORY = {"netduinoplus2": (0x08000000, 0, 0x20000000, 128 << 10), "microbit": (0x0, 0, 0x20000000, 16 << 10),
          "nrf52840": (0x0, 0, 0x20000000, 256 << 10), "rp2040": (0x10000000, 256, 0x20000000, 264 << 10)}


@pytest.fixture(scope="module")
def c_dir(tmp_path_factory):
    return write_fc_model(tmp_path_factory.mktemp("fc_model"))


@pytest.fixture(scope="module")
def images(c_dir, tmp_path_factory):
    from edgec.device.firmware.projects import build_with_cmake

    out = tmp_path_factory.mktemp("chips")
    return {name: build_with_cmake(c_dir, name, flash_bytes=f, ram_bytes=r, out=out / name, target_id="fixture")
            for name, (f, r) in CHIPS.items()}


@pytest.mark.parametrize("machine", ["netduinoplus2", "microbit"])
def test_cmake_built_firmware_answers_bit_exact_on_the_chips_qemu_model(images, machine):
    from edgec.device.firmware import run_on_device

    xs = random_inputs(5)
    results = run_on_device(images[machine], [x.tobytes() for x in xs] + [xs[0].tobytes()], timeout=20)
    for x, (output, count) in zip(xs, results):
        np.testing.assert_array_equal(np.frombuffer(output, np.int8), reference(x))
        assert 480 < count < 48_000  # 480 multiply-accumulates
    # The counter (SysTick at 168 MHz on the STM32, TIMER0 at 16 MHz on the nRF51) restarts per
    # inference: the same input gives the same count.
    assert results[-1] == results[0]


@pytest.mark.parametrize("machine", ["netduinoplus2", "microbit"])
def test_info_reports_the_chips_counter_clock(images, machine):
    from edgec.device.firmware import Device, QemuSession
    from edgec.device.firmware.run import await_boot

    with QemuSession(images[machine].elf, machine) as session, Device(session.url, timeout=20) as device:
        info = await_boot(device, session, 20)
    assert (info.input_bytes, info.output_bytes) == (IN, OUT)
    assert info.counter_hz == {"netduinoplus2": 168_000_000, "microbit": 16_000_000}[machine]


@pytest.mark.parametrize("name", list(CHIPS))
def test_image_has_the_vector_table_where_the_chip_boots_and_fits_its_memories(images, name):
    image = images[name]
    flash_origin, vectors, ram_origin, ram_size = MEMORY[name]
    binary = image.elf.with_suffix(".bin").read_bytes()
    stack_top, reset = struct.unpack_from("<II", binary, vectors)
    assert ram_origin < stack_top <= ram_origin + ram_size
    assert reset & 1 and flash_origin < reset < flash_origin + len(binary)  # a Thumb address inside the image
    assert image.flash_bytes <= CHIPS[name][0] and image.ram_bytes <= CHIPS[name][1]
    hex_lines = image.elf.with_suffix(".hex").read_text().splitlines()
    assert hex_lines[-1] == ":00000001FF"  # Intel HEX end-of-file record
    if flash_origin:  # an extended linear address record puts the data at 0x0800xxxx / 0x1000xxxx
        assert hex_lines[0] == {0x08000000: ":020000040800F2", 0x10000000: ":020000041000EA"}[flash_origin]


def _crc32_mpeg2(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


def test_rp2040_boot2_carries_the_crc_its_bootrom_checks(images):
    assert _crc32_mpeg2(b"123456789") == 0x0376E6E7  # the CRC-32/MPEG-2 check value
    boot2 = images["rp2040"].elf.with_suffix(".bin").read_bytes()[:256]
    assert struct.unpack_from("<I", boot2, 252)[0] == _crc32_mpeg2(boot2[:252])


def test_same_project_builds_byte_identical_from_two_folders(c_dir, tmp_path):
    from edgec.device.firmware.boards_chips import STM32F405
    from edgec.device.firmware.projects import write_cmake_project

    elves = []
    for where in ("a", "b/deeper"):
        project = write_cmake_project(c_dir, STM32F405, tmp_path / where / "project", target_id="fixture",
                                      flash_bytes=1 << 20, ram_bytes=128 << 10)
        subprocess.run(["cmake", "-B", "build"], cwd=project, check=True, capture_output=True)
        subprocess.run(["cmake", "--build", "build"], cwd=project, check=True, capture_output=True)
        elves.append((project / "build" / "firmware.elf").read_bytes())
    assert elves[0] == elves[1]


def test_project_layout_and_cmake_names_every_source(c_dir, tmp_path):
    from edgec.device.firmware.boards_chips import NRF51822
    from edgec.device.firmware.projects import write_cmake_project

    project = write_cmake_project(c_dir, NRF51822, tmp_path / "project", target_id="fixture",
                                  flash_bytes=256 << 10, ram_bytes=16 << 10)
    files = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert files == ["CMakeLists.txt", "cmake/arm-none-eabi.cmake", "firmware/counter_nrf51.c", "firmware/crc32.c",
                     "firmware/edgec_fw.h", "firmware/frame.c", "firmware/main.c", "firmware/startup.c",
                     "firmware/uart_nrf5.c", "linker.ld", "model/model.c", "model/model.h"]
    cmake = (project / "CMakeLists.txt").read_text()
    for source in ("firmware/uart_nrf5.c", "firmware/counter_nrf51.c", "model/model.c"):
        assert f"\n  {source}\n" in cmake
    assert "-mcpu=cortex-m0" in cmake and "EDGEC_UART_TX_PIN=24" in cmake
    linker = (project / "linker.ld").read_text()
    assert "ORIGIN = 0x00000000, LENGTH = 0x40000" in linker and "ORIGIN = 0x20000000, LENGTH = 0x4000" in linker
    toolchain = (project / "cmake" / "arm-none-eabi.cmake").read_text()
    assert "set(CMAKE_SYSTEM_NAME Generic)" in toolchain and "arm-none-eabi-gcc" in toolchain


def test_model_over_the_ram_budget_fails_at_link_time_saying_by_how_much(c_dir, tmp_path):
    from edgec.core.errors import GateError
    from edgec.device.firmware.projects import build_with_cmake

    # 2 KB of stack alone fills a 2 KB budget: the overflow is the firmware's static data.
    with pytest.raises(GateError, match=r"RAM overflowed by \d+ bytes \(budget 2048 B .* 2048 B of stack\)"):
        build_with_cmake(c_dir, "microbit", flash_bytes=256 << 10, ram_bytes=2048, out=tmp_path)


@pytest.mark.parametrize("board, image, port, expected", [
    ("stm32f405", "b/firmware.elf", None, ["openocd", "-f", "interface/stlink.cfg", "-f", "target/stm32f4x.cfg",
                                           "-c", "program b/firmware.elf verify reset exit"]),
    ("nrf51822", "b/firmware.hex", "/mnt/MICROBIT", ["cp", "b/firmware.hex", "/mnt/MICROBIT/"]),
])
def test_flash_commands_for_the_real_chips(board, image, port, expected):
    from edgec.device.firmware import flash_command

    assert flash_command(board, Path(image), port=port) == expected


def test_microbit_drive_takes_a_hex_image_only():
    from edgec.core.errors import InputError
    from edgec.device.firmware import flash_command

    with pytest.raises(InputError, match="flashes a .hex image"):
        flash_command("nrf51822", Path("b/firmware.elf"), port="/mnt/MICROBIT")


def _with_samples(c_dir: Path, dest: Path, *, corrupt: int | None = None) -> Path:
    """The fixture model with four bundled samples; ``corrupt``: that sample's expected output is off by one."""
    from edgec.device.firmware.samples import write_samples

    folder = shutil.copytree(c_dir, dest)
    xs = random_inputs(4, seed=7)
    expected = [reference(x).tobytes() for x in xs]
    if corrupt is not None:
        wrong = bytearray(expected[corrupt])
        wrong[3] ^= 1
        expected[corrupt] = bytes(wrong)
    write_samples(folder, [x.tobytes() for x in xs], expected)
    return folder


@pytest.mark.parametrize("machine, corrupt, line", [
    ("netduinoplus2", None, "edgec self-check: 4/4 bit-exact"),
    ("netduinoplus2", 2, "edgec self-check: 3/4 bit-exact (first mismatch: sample 2)"),
    ("microbit", None, "edgec self-check: 4/4 bit-exact"),
])
def test_bundled_samples_are_checked_at_boot_and_the_protocol_still_answers(c_dir, tmp_path, machine, corrupt, line):
    from edgec.device.firmware import run_on_device
    from edgec.device.firmware.projects import build_with_cmake

    folder = _with_samples(c_dir, tmp_path / "model", corrupt=corrupt)
    flash, ram = CHIPS[machine]
    image = build_with_cmake(folder, machine, flash_bytes=flash, ram_bytes=ram, out=tmp_path / "fw", target_id="t")
    assert (tmp_path / "fw" / "project" / "model" / "edgec_samples.c").is_file()
    xs = random_inputs(2)
    link = {}
    results = run_on_device(image, [x.tobytes() for x in xs], timeout=20, link=link)
    # The line QEMU's UART carried before the first frame, and the frames after it unharmed.
    assert link["self_check"]["line"] == line
    assert link["self_check"]["passed"] is (corrupt is None)
    for x, (output, _) in zip(xs, results):
        np.testing.assert_array_equal(np.frombuffer(output, np.int8), reference(x))
    # const: the samples sit in flash (.rodata), not in the RAM the micro:bit has 16 KB of.
    nm = subprocess.run(["arm-none-eabi-nm", "-S", str(image.elf)], capture_output=True, text=True).stdout
    where = {f[3]: int(f[0], 16) for f in (line.split() for line in nm.splitlines()) if len(f) == 4}
    flash_origin, _, ram_origin, _ = MEMORY[machine]
    for name in ("edgec_sample_inputs", "edgec_sample_outputs"):
        assert flash_origin <= where[name] < flash_origin + flash and not ram_origin <= where[name] < ram_origin + ram


def test_cycle_trace_skips_the_self_checks_inferences(c_dir, tmp_path):
    from edgec.device.firmware.cycles import trace_inference
    from edgec.device.firmware.projects import build_with_cmake

    plain = build_with_cmake(c_dir, "netduinoplus2", flash_bytes=1 << 20, ram_bytes=128 << 10, out=tmp_path / "a")
    bundled = build_with_cmake(_with_samples(c_dir, tmp_path / "model"), "netduinoplus2", flash_bytes=1 << 20,
                               ram_bytes=128 << 10, out=tmp_path / "b")
    sample = random_inputs(1)[0].tobytes()
    # The same served inference, whatever ran at boot.
    assert trace_inference(bundled.elf, "netduinoplus2", sample).instructions == \
        trace_inference(plain.elf, "netduinoplus2", sample).instructions
