"""Compile and link firmware with arm-none-eabi-gcc; read its footprint with arm-none-eabi-size.

The linker script puts FLASH and RAM in the board's real memories with the target's budgets as
their lengths, so an over-budget model fails here, at link time, with a GateError that says by
how many bytes and what to try.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from edgec.core.errors import GateError, InputError, ToolchainError
from edgec.device.firmware.boards import Board, board, link_regions

log = logging.getLogger(__name__)

GCC = "arm-none-eabi-gcc"
SIZE = "arm-none-eabi-size"
# Common to every board; each board adds its UART and counter (Board.sources).
FIRMWARE_SOURCES = ("startup.c", "main.c", "frame.c", "crc32.c")
DEFAULT_STACK_BYTES = 8192
# -fno-schedule-insns: GCC's pre-allocation scheduler interleaves the SIMD multiply-accumulate
# loops of the generated C until they spill registers; without it the kernels run 4-8% fewer
# instructions on M4 and M55 (measured with tools/cbackend_check.py). -O3 measured no faster.
BASE_CFLAGS = (
    "-mthumb", "-std=c99", "-O2", "-fno-schedule-insns", "-g", "-Wall", "-ffunction-sections",
    "-fdata-sections", "-fno-common",
)
LDFLAGS = ("-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections")
_OVERFLOW = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")
_INSTALL_HINT = "install it with `make toolchains` (Debian: gcc-arm-none-eabi libnewlib-arm-none-eabi)"


@dataclass(frozen=True)
class FirmwareImage:
    """A linked firmware ELF and its footprint (bytes, from arm-none-eabi-size)."""

    elf: Path
    board: str  # QEMU machine, e.g. "mps2-an386"
    text: int
    data: int
    bss: int
    flash_budget_bytes: int
    ram_budget_bytes: int
    stack_bytes: int

    @property
    def flash_bytes(self) -> int:
        """Bytes in flash: code, constants and the initial values of .data."""
        return self.text + self.data

    @property
    def ram_bytes(self) -> int:
        """Bytes of static RAM: .data + .bss (the arena), including the reserved stack."""
        return self.data + self.bss


def firmware_source_dir() -> Path:
    """Return the folder of the shipped firmware C sources and linker template."""
    return Path(str(resources.files("edgec.device.firmware") / "src"))


def render_linker_script(b: Board, *, flash_bytes: int, ram_bytes: int, stack_bytes: int) -> str:
    """Return the linker script for board ``b`` with the target budgets as region lengths."""
    flash, ram = link_regions(b, flash_bytes=flash_bytes, ram_bytes=ram_bytes)
    vectors_memory = ""
    if b.vectors is not None:
        vectors_memory = f"  VECTORS (rx) : ORIGIN = {b.vectors.origin:#010x}, LENGTH = {b.vectors.size:#x}\n"
    template = Template((firmware_source_dir() / "linker.ld.in").read_text())
    return template.substitute(
        board=b.machine, vectors_memory=vectors_memory,
        vectors_region="VECTORS" if b.vectors is not None else "FLASH",
        flash_origin=f"{flash.origin:#010x}", flash_length=f"{flash.size:#x}",
        ram_origin=f"{ram.origin:#010x}", ram_length=f"{ram.size:#x}", stack_bytes=f"{stack_bytes:#x}",
    )


def require_tool(name: str) -> str:
    """The path of toolchain program ``name``; ToolchainError with the install hint when missing."""
    path = shutil.which(name)
    if path is None:
        raise ToolchainError(f"{name} not found; {_INSTALL_HINT}", stage="firmware")
    return path


def check_model_dir(c_dir: Path) -> list[Path]:
    """The C sources of a generated-C model folder, after checking model.h defines what the firmware needs."""
    if not (c_dir / "model.h").is_file() or not (c_dir / "model.c").is_file():
        raise InputError(f"{c_dir}: no model.c/model.h (the output of the c format) to build firmware from",
                         stage="firmware")
    header = (c_dir / "model.h").read_text(errors="replace")
    missing = [m for m in ("EDGEC_INPUT_BYTES", "EDGEC_OUTPUT_BYTES", "EDGEC_ARENA_BYTES") if m not in header]
    if missing:
        raise InputError(f"{c_dir / 'model.h'} does not define {', '.join(missing)}", stage="firmware")
    return sorted(c_dir.glob("*.c"))


def gate_message(b: Board, stderr: str, *, flash_bytes: int, ram_bytes: int, stack_bytes: int) -> str | None:
    """The budget refusal for a link that overflowed FLASH/RAM (from the linker's stderr), or None."""
    overflows = {m.group(1): int(m.group(2)) for m in _OVERFLOW.finditer(stderr)}
    if not overflows:
        return None
    parts = []
    if "FLASH" in overflows or "VECTORS" in overflows:
        n = overflows.get("FLASH", 0) + overflows.get("VECTORS", 0)
        parts.append(f"flash overflowed by {n} bytes (budget {flash_bytes} B for code, weights and "
                     "constants); try --prune/--clusters, a smaller model, or a target with more flash")
    if "RAM" in overflows:
        parts.append(f"RAM overflowed by {overflows['RAM']} bytes (budget {ram_bytes} B for the arena, "
                     f"static data and {stack_bytes} B of stack); try a smaller input or narrower layers, "
                     "or a target with more RAM")
    return f"model does not fit {b.core} at link time: " + "; ".join(parts)


def elf_size(elf: Path) -> tuple[int, int, int]:
    """(text, data, bss) bytes of an ELF, from arm-none-eabi-size -A."""
    out = subprocess.run([require_tool(SIZE), "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    sections = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[0].startswith(".") and fields[1].isdigit():
            sections[fields[0]] = int(fields[1])
    text = sum(sections.get(s, 0) for s in (".boot2", ".vectors", ".text", ".init_array", ".ARM.extab", ".ARM.exidx"))
    data = sections.get(".data", 0)
    bss = sections.get(".bss", 0) + sections.get(".stack", 0)
    return text, data, bss


def build_firmware(c_dir: Path, board_name: str, *, flash_bytes: int, ram_bytes: int, out: Path,
                   stack_bytes: int | None = None, cflags: tuple[str, ...] = ()) -> FirmwareImage:
    """Compile the generated C in ``c_dir`` with edgec's firmware for ``board_name`` and link it.

    ``flash_bytes``/``ram_bytes`` are the target profile's budgets (memory.flash_bytes,
    memory.ram_bytes): they become the linker's region lengths. Writes ``out/firmware.elf``,
    ``firmware.map`` and ``linker.ld``. Raises GateError when the image does not fit,
    ToolchainError when the compiler fails, InputError for a bad ``c_dir`` or board.
    """
    b = board(board_name)
    stack_bytes = stack_bytes or b.stack_bytes or DEFAULT_STACK_BYTES
    c_dir, out = Path(c_dir), Path(out)
    model_sources = check_model_dir(c_dir)
    gcc = require_tool(GCC)
    out.mkdir(parents=True, exist_ok=True)
    script = out / "linker.ld"
    script.write_text(render_linker_script(b, flash_bytes=flash_bytes, ram_bytes=ram_bytes, stack_bytes=stack_bytes))
    src = firmware_source_dir()
    elf = out / "firmware.elf"
    defines = (f"-DEDGEC_UART_BASE={b.uart_base:#010x}u", f"-DEDGEC_UART_RX_IRQ={b.uart_rx_irq}u",
               f"-DEDGEC_NUM_IRQ={b.num_irq}", f"-DEDGEC_COUNTER_HZ={b.counter_hz}u", *b.defines)
    cmd = [gcc, *b.cflags, *BASE_CFLAGS, *cflags, *defines, f"-I{c_dir}", f"-I{src}",
           *[str(src / f) for f in (*FIRMWARE_SOURCES, *b.sources)], *[str(p) for p in model_sources],
           f"-T{script}", *LDFLAGS, f"-Wl,-Map={out / 'firmware.map'}", "-o", str(elf)]
    log.debug("firmware: %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        gate = gate_message(b, proc.stderr, flash_bytes=flash_bytes, ram_bytes=ram_bytes, stack_bytes=stack_bytes)
        if gate is not None:
            raise GateError(gate, stage="firmware", target=b.machine)
        errors = [line for line in proc.stderr.splitlines() if "error" in line.lower()] or proc.stderr.splitlines()
        raise ToolchainError(f"{GCC} failed: {' | '.join(errors[:3])}", stage="firmware", target=b.machine)
    text, data, bss = elf_size(elf)
    log.info("firmware %s: text %d B, data %d B, bss %d B (incl. %d B stack)", b.machine, text, data, bss, stack_bytes)
    return FirmwareImage(elf=elf, board=b.machine, text=text, data=data, bss=bss, flash_budget_bytes=flash_bytes,
                         ram_budget_bytes=ram_bytes, stack_bytes=stack_bytes)
