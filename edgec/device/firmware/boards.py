"""The QEMU machines edgec firmware runs on: CPU flags, memory map, UART, counter clock.

Facts about QEMU 7.2's models (``info mtree`` of each machine, and hw/arm/mps2.c, mps2-tz.c):

- mps2-an386 (Cortex-M4) and mps2-an500 (Cortex-M7): 4 MB SSRAM1 at 0x0 (the CPU fetches its
  reset vector there), 4 MB SSRAM2/3 at 0x20000000, CMSDK UART0 at 0x40004000 with its receive
  interrupt on IRQ 0, 25 MHz system clock.
- mps2-an505 (Cortex-M33, IoTKit, TrustZone): the CPU starts in the Secure state with its
  vector table at 0x10000000, the Secure alias of 4 MB SSRAM1; SSRAM2/3 (2 + 2 MB) at
  0x38000000 (Secure alias); UART0 at 0x50200000 (Secure alias), receive on IRQ 32 (expansion
  IRQ 0), 20 MHz.
- mps3-an547 (Cortex-M55, SSE-300): Secure reset vector at 0x00000000 in the 512 KB ITCM; code
  runs from the 2 MB SRAM (Secure alias 0x11000000), data in the 4 MB ISRAM (Secure alias
  0x31000000); UART0 at 0x59303000 (Secure alias), receive on IRQ 33, SysTick at 32 MHz.

The target profile's flash and RAM budgets cap these regions (see :func:`link_regions`).
"""

from __future__ import annotations

import logging

from edgec.core.errors import InputError
from edgec.device.firmware.board_types import Board, Region
from edgec.device.firmware.boards_chips import QEMU_CHIP_BOARDS

log = logging.getLogger(__name__)


BOARDS: dict[str, Board] = {
    "mps2-an386": Board(
        machine="mps2-an386",
        core="cortex-m4",
        cflags=("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
        flash=Region(0x00000000, 0x00400000),
        ram=Region(0x20000000, 0x00400000),
        vectors=None,
        uart_base=0x40004000,
        uart_rx_irq=0,
        num_irq=32,
        counter_hz=25_000_000,
    ),
    "mps2-an500": Board(
        machine="mps2-an500",
        core="cortex-m7",
        cflags=("-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard"),
        flash=Region(0x00000000, 0x00400000),
        ram=Region(0x20000000, 0x00400000),
        vectors=None,
        uart_base=0x40004000,
        uart_rx_irq=0,
        num_irq=32,
        counter_hz=25_000_000,
    ),
    "mps2-an505": Board(
        machine="mps2-an505",
        core="cortex-m33",
        cflags=("-mcpu=cortex-m33", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"),
        flash=Region(0x10000000, 0x00400000),
        ram=Region(0x38000000, 0x00400000),
        vectors=None,
        uart_base=0x50200000,
        uart_rx_irq=32,
        num_irq=92,
        counter_hz=20_000_000,
    ),
    "mps3-an547": Board(
        machine="mps3-an547",
        core="cortex-m55",
        cflags=("-mcpu=cortex-m55", "-mfloat-abi=hard"),
        flash=Region(0x11000000, 0x00200000),
        ram=Region(0x31000000, 0x00400000),
        vectors=Region(0x00000000, 0x00000200),
        uart_base=0x59303000,
        uart_rx_irq=33,
        num_irq=96,
        counter_hz=32_000_000,
    ),
}

# QEMU's models of real chips: netduinoplus2 (STM32F405) and microbit (nRF51822).
BOARDS.update(QEMU_CHIP_BOARDS)

# The name a user passes to `--device` / `--board`: "qemu-" + the machine.
QEMU_PREFIX = "qemu-"


def board(name: str) -> Board:
    """Return the board called ``name`` ("mps2-an386" or "qemu-mps2-an386"); InputError if unknown."""
    key = name[len(QEMU_PREFIX):] if name.startswith(QEMU_PREFIX) else name
    if key not in BOARDS:
        known = ", ".join(QEMU_PREFIX + k for k in BOARDS)
        raise InputError(f"unknown QEMU board '{name}' (known: {known})", stage="firmware")
    return BOARDS[key]


def board_for_core(core: str) -> Board:
    """Return the QEMU board that emulates the target core ``core`` (e.g. "cortex-m4")."""
    for b in BOARDS.values():
        if b.core == core:
            return b
    known = ", ".join(sorted(b.core for b in BOARDS.values()))
    raise InputError(f"no QEMU board emulates core '{core}' (emulated: {known})", stage="firmware")


def link_regions(b: Board, *, flash_bytes: int, ram_bytes: int) -> tuple[Region, Region]:
    """Return the FLASH and RAM regions to link into: the board's memories, as long as the budget.

    A budget larger than the board's memory is capped at the memory (with a warning): the
    emulator cannot hold more. A separate vector region counts against the flash budget.
    """
    if flash_bytes <= 0 or ram_bytes <= 0:
        raise InputError(f"flash and RAM budgets must be positive, got {flash_bytes} and {ram_bytes}",
                         stage="firmware")
    flash_len = flash_bytes - (b.vectors.size if b.vectors else 0)
    if flash_len > b.flash.size:
        log.warning("%s: flash budget %d B exceeds the board's %d B; linking against the board's size",
                    b.machine, flash_bytes, b.flash.size)
        flash_len = b.flash.size
    ram_len = ram_bytes
    if ram_len > b.ram.size:
        log.warning("%s: RAM budget %d B exceeds the board's %d B; linking against the board's size",
                    b.machine, ram_bytes, b.ram.size)
        ram_len = b.ram.size
    return Region(b.flash.origin, flash_len), Region(b.ram.origin, ram_len)
