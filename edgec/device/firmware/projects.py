"""Firmware projects a user builds with their own toolchain, and the CMake build edgec runs itself.

``edgec compile ... --backend c --project cmake`` writes ``OUT/<target>/project/``: the generated
C (``model/``), edgec's firmware for the target's chip (``firmware/``: startup, the serial
protocol loop, the chip's UART and counter), the linker script for the chip's memory map with the
target's flash and RAM budgets, a ``CMakeLists.txt`` and an arm-none-eabi toolchain file. ::

    cmake -B build project && cmake --build build   # build/firmware.elf, .bin, .hex

``edgec verify OUT/ID --device qemu-netduinoplus2`` (or ``qemu-microbit``) writes the same project
into a clean folder, builds it this way and runs the ELF in QEMU's model of the chip
(:func:`build_with_cmake`).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from edgec.core.errors import GateError, InputError, ToolchainError
from edgec.device.firmware.boards import Board, board
from edgec.device.firmware.boards_chips import CHIPS, chip
from edgec.device.firmware.projects_hosted import HOSTED_KINDS, check_hosted, write_hosted_project
from edgec.device.firmware.build import (BASE_CFLAGS, DEFAULT_STACK_BYTES, FIRMWARE_SOURCES, LDFLAGS, FirmwareImage,
                                         check_model_dir, elf_size, firmware_source_dir, gate_message,
                                         render_linker_script, require_tool)

log = logging.getLogger(__name__)

STAGE = "project"
CMAKE = "cmake"
PROJECT_DIR = "project"
# Headers every firmware source includes (edgec_fw.h) besides the model's own.
FIRMWARE_HEADERS = ("edgec_fw.h",)
_CMAKE_HINT = "install it with `make toolchains` (Debian package cmake)"

TOOLCHAIN_FILE = """\
# arm-none-eabi GCC for bare-metal Cortex-M, written by edgec.
# The compiler is looked up on PATH; set ARM_GCC_DIR (the folder holding arm-none-eabi-gcc) to use another one.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
if(DEFINED ENV{ARM_GCC_DIR})
  set(_edgec_gcc_dir "$ENV{ARM_GCC_DIR}/")
endif()
set(CMAKE_C_COMPILER "${_edgec_gcc_dir}arm-none-eabi-gcc")
set(CMAKE_CXX_COMPILER "${_edgec_gcc_dir}arm-none-eabi-g++")
set(CMAKE_ASM_COMPILER "${_edgec_gcc_dir}arm-none-eabi-gcc")
set(CMAKE_OBJCOPY "${_edgec_gcc_dir}arm-none-eabi-objcopy" CACHE FILEPATH "objcopy")
set(CMAKE_SIZE "${_edgec_gcc_dir}arm-none-eabi-size" CACHE FILEPATH "size")
# A bare-metal compiler cannot link a test program without the project's linker script.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
"""


def project_chip(profile: dict, device: str | None = None) -> Board:
    """The real chip a project is built for: ``device`` ("qemu-microbit") or the target's device.board."""
    name = device or profile.get("device", {}).get("board")
    found = chip(name) if name else None
    if found is None:
        known = ", ".join(sorted(CHIPS))
        raise InputError(f"target '{profile.get('id')}' has no board edgec writes firmware projects for "
                         f"(device.board = {name!r}; known chips: {known})", stage=STAGE, target=profile.get("id"))
    return found


def _cmake_list(items) -> str:
    return "".join(f"\n  {item}" for item in items)


def render_cmakelists(b: Board, *, target_id: str, firmware: list[str], model: list[str],
                      stack_bytes: int) -> str:
    """Return the project's CMakeLists.txt (sources relative to the project folder)."""
    cpu = [f for f in (*b.cflags, *BASE_CFLAGS) if f.startswith(("-mcpu", "-mfpu", "-mfloat-abi", "-mthumb"))]
    options = [f for f in BASE_CFLAGS if f not in cpu]
    defines = [f"EDGEC_UART_BASE={b.uart_base:#010x}u", f"EDGEC_UART_RX_IRQ={b.uart_rx_irq}u",
               f"EDGEC_NUM_IRQ={b.num_irq}", f"EDGEC_COUNTER_HZ={b.counter_hz}u",
               *(d.removeprefix("-D") for d in b.defines)]
    qemu = f"; QEMU machine {b.machine}" if b.machine else ""
    return f"""\
# edgec firmware for target {target_id} on {b.chip} ({b.core}{qemu}), written by `edgec compile --project cmake`.
#   cmake -B build && cmake --build build    ->  build/firmware.elf, firmware.bin, firmware.hex
# model/ is the generated C of the model; firmware/ answers edgec's serial protocol on the chip's
# UART (115200 8N1), so `edgec verify OUT/{target_id} --port /dev/ttyACM0` checks the flashed board.
cmake_minimum_required(VERSION 3.16)
if(NOT CMAKE_TOOLCHAIN_FILE)
  set(CMAKE_TOOLCHAIN_FILE "${{CMAKE_CURRENT_LIST_DIR}}/cmake/arm-none-eabi.cmake")
endif()
project(edgec_firmware {"C ASM" if any(f.endswith(".S") for f in firmware) else "C"})

set(EDGEC_CPU_FLAGS{_cmake_list(cpu)})
# linker.ld: the chip's memories, with the target's budgets as lengths and a {stack_bytes}-byte stack.
set(EDGEC_LINKER_SCRIPT "${{CMAKE_CURRENT_SOURCE_DIR}}/linker.ld")

add_executable(firmware{_cmake_list(firmware + model)}
)
set_target_properties(firmware PROPERTIES SUFFIX ".elf")
set_property(TARGET firmware APPEND PROPERTY LINK_DEPENDS "${{EDGEC_LINKER_SCRIPT}}")
target_include_directories(firmware PRIVATE firmware model)
target_compile_definitions(firmware PRIVATE{_cmake_list(defines)}
)
# -ffile-prefix-map: the ELF's debug paths do not depend on where the project was built (GCC tries
# the last map first: the build folder may sit inside the project).
target_compile_options(firmware PRIVATE ${{EDGEC_CPU_FLAGS}}{_cmake_list(options)}
  "-ffile-prefix-map=${{CMAKE_CURRENT_SOURCE_DIR}}=."
  "-ffile-prefix-map=${{CMAKE_CURRENT_BINARY_DIR}}=build"
)
target_link_options(firmware PRIVATE ${{EDGEC_CPU_FLAGS}} "-T${{EDGEC_LINKER_SCRIPT}}"{_cmake_list(LDFLAGS)}
  "-Wl,-Map=${{CMAKE_CURRENT_BINARY_DIR}}/firmware.map"
)
add_custom_command(TARGET firmware POST_BUILD
  COMMAND ${{CMAKE_OBJCOPY}} -O binary $<TARGET_FILE:firmware> ${{CMAKE_CURRENT_BINARY_DIR}}/firmware.bin
  COMMAND ${{CMAKE_OBJCOPY}} -O ihex $<TARGET_FILE:firmware> ${{CMAKE_CURRENT_BINARY_DIR}}/firmware.hex
  COMMAND ${{CMAKE_SIZE}} $<TARGET_FILE:firmware>
  VERBATIM
)
"""


def write_cmake_project(c_dir: Path, b: Board, dest: Path, *, target_id: str, flash_bytes: int, ram_bytes: int,
                        stack_bytes: int | None = None) -> Path:
    """Write a CMake project building the generated C in ``c_dir`` for chip ``b`` into ``dest`` (replaced).

    ``flash_bytes``/``ram_bytes`` are the target's budgets: the linker script's region lengths, so
    an over-budget model fails at link time with the overflow in bytes. Returns ``dest``.
    """
    c_dir, dest = Path(c_dir), Path(dest)
    model_sources = check_model_dir(c_dir)
    model_headers = sorted(c_dir.glob("*.h"))
    stack_bytes = stack_bytes or b.stack_bytes or DEFAULT_STACK_BYTES
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "firmware").mkdir(parents=True)
    (dest / "model").mkdir()
    (dest / "cmake").mkdir()
    src = firmware_source_dir()
    firmware = [*FIRMWARE_SOURCES, *b.sources]
    for name in (*firmware, *FIRMWARE_HEADERS):
        shutil.copyfile(src / name, dest / "firmware" / name)
    for path in (*model_sources, *model_headers):
        shutil.copyfile(path, dest / "model" / path.name)
    (dest / "linker.ld").write_text(render_linker_script(b, flash_bytes=flash_bytes, ram_bytes=ram_bytes,
                                                         stack_bytes=stack_bytes))
    (dest / "cmake" / "arm-none-eabi.cmake").write_text(TOOLCHAIN_FILE)
    (dest / "CMakeLists.txt").write_text(render_cmakelists(
        b, target_id=target_id, firmware=[f"firmware/{f}" for f in firmware],
        model=[f"model/{p.name}" for p in model_sources], stack_bytes=stack_bytes))
    return dest


def _run(cmd: list[str], what: str, b: Board, *, flash_bytes: int, ram_bytes: int, stack_bytes: int) -> None:
    log.debug("project: %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode == 0:
        return
    output = proc.stdout + proc.stderr
    gate = gate_message(b, output, flash_bytes=flash_bytes, ram_bytes=ram_bytes, stack_bytes=stack_bytes)
    if gate is not None:
        raise GateError(gate, stage="firmware", target=b.chip)
    errors = [line for line in output.splitlines() if "error" in line.lower()] or output.splitlines()[-3:]
    raise ToolchainError(f"{what} failed: {' | '.join(errors[:3])}", stage="firmware", target=b.chip)


def build_with_cmake(c_dir: Path, board_name: str, *, flash_bytes: int, ram_bytes: int, out: Path,
                     target_id: str = "", cflags: tuple[str, ...] = ()) -> FirmwareImage:
    """Write the CMake project for ``board_name``'s chip into ``out/project`` and build it in a clean ``out/build``.

    The same project ``--project cmake`` writes, configured and built with cmake and arm-none-eabi-gcc
    from empty folders. ``cflags`` are added with CMAKE_C_FLAGS (e.g. ``-DEDGEC_PORTABLE``). Raises
    GateError when the image does not fit the budgets, ToolchainError when cmake or the compiler fails.
    """
    b = chip(board_name) or board(board_name)
    if not b.chip:
        raise InputError(f"'{board_name}' is not a real chip; its firmware is built without cmake", stage=STAGE)
    cmake = shutil.which(CMAKE)
    if cmake is None:
        raise ToolchainError(f"cmake not found; {_CMAKE_HINT}", stage="firmware")
    require_tool("arm-none-eabi-gcc")
    out = Path(out)
    stack_bytes = b.stack_bytes or DEFAULT_STACK_BYTES
    project = write_cmake_project(c_dir, b, out / PROJECT_DIR, target_id=target_id, flash_bytes=flash_bytes,
                                  ram_bytes=ram_bytes, stack_bytes=stack_bytes)
    build = out / "build"
    if build.exists():
        shutil.rmtree(build)
    gate = {"flash_bytes": flash_bytes, "ram_bytes": ram_bytes, "stack_bytes": stack_bytes}
    _run([cmake, "-S", str(project), "-B", str(build), f"-DCMAKE_C_FLAGS={' '.join(cflags)}"], "cmake configure",
         b, **gate)
    _run([cmake, "--build", str(build), "-j", "2"], "cmake --build", b, **gate)
    elf = build / "firmware.elf"
    text, data, bss = elf_size(elf)
    log.info("firmware %s (cmake): text %d B, data %d B, bss %d B (incl. %d B stack)", b.chip, text, data, bss,
             stack_bytes)
    return FirmwareImage(elf=elf, board=b.machine or b.chip, text=text, data=data, bss=bss,
                         flash_budget_bytes=flash_bytes, ram_budget_bytes=ram_bytes, stack_bytes=stack_bytes)


PROJECT_KINDS = ("cmake", *HOSTED_KINDS)


def check_project(profiles: list[dict], kind: str) -> None:
    """Refuse ``--project KIND`` before any work when a target cannot have that project (InputError)."""
    if kind not in PROJECT_KINDS:
        raise InputError(f"--project {kind}: unknown kind (known: {', '.join(PROJECT_KINDS)})", stage=STAGE)
    for profile in profiles:
        # A framework project of a tflm build declares the framework's TFLite Micro package; the CMake
        # project is bare metal, with no TFLite Micro to depend on.
        if profile["format"] != "c" and not (profile["format"] == "tflm" and kind in HOSTED_KINDS):
            formats = "'c' builds (--backend c)" + ("" if kind == "cmake" else " and 'tflm' builds")
            raise InputError(f"--project {kind} is written for {formats}: target '{profile['id']}' is a "
                             f"'{profile['format']}' build; add --backend c", stage=STAGE, target=profile["id"])
        if kind == "cmake":
            project_chip(profile)
        else:
            check_hosted(profile, kind)


def write_project(folder: Path, profile: dict, kind: str) -> dict:
    """Write ``folder/project/`` (a ``kind`` project of the build in ``folder``); return its report entry."""
    if kind != "cmake":
        write_hosted_project(folder, Path(folder) / PROJECT_DIR, profile, kind)
        log.info("project: %s in %s", kind, Path(folder) / PROJECT_DIR)
        return {"kind": kind, "board": profile.get("device", {}).get("board"), "folder": PROJECT_DIR}
    b = project_chip(profile)
    memory = profile.get("memory", {})
    stack_bytes = b.stack_bytes or DEFAULT_STACK_BYTES
    dest = write_cmake_project(folder, b, Path(folder) / PROJECT_DIR, target_id=profile["id"],
                               flash_bytes=memory["flash_bytes"], ram_bytes=memory["ram_bytes"],
                               stack_bytes=stack_bytes)
    log.info("project: %s for %s in %s", kind, b.chip, dest)
    return {"kind": kind, "chip": b.chip, "folder": PROJECT_DIR, "qemu_device": f"qemu-{b.machine}" if b.machine
            else None, "build": "cmake -B build project && cmake --build build"}


def chip_image(folder: Path, profile: dict, board_name: str, *, build: bool) -> Path:
    """The image ``edgec flash`` programs onto a real chip (or its QEMU model): the CMake project's
    ELF (HEX for the micro:bit's USB drive), built into ``folder/intermediate/firmware`` unless only
    printing the command (``build=False``: the path it would have, nothing written)."""
    b = chip(board_name)
    if b is None:
        raise InputError(f"'{board_name}' is not a chip edgec builds firmware for (known: {', '.join(CHIPS)})",
                         stage="flash")
    out = Path(folder) / "intermediate" / "firmware"
    suffix = ".hex" if board_name == "nrf51822" else ".elf"
    if not build:
        return out / "build" / f"firmware{suffix}"
    memory = profile.get("memory", {})
    image = build_with_cmake(folder, board_name, flash_bytes=memory["flash_bytes"], ram_bytes=memory["ram_bytes"],
                             out=out, target_id=profile["id"])
    return image.elf.with_suffix(suffix)
