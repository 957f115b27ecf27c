"""The description of a board firmware is built for: its memory map, UART, counter and sources.

Its own module so that the board tables (``boards``, ``boards_chips``) can both use it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    """A range of the board's memory map."""

    origin: int
    size: int


@dataclass(frozen=True)
class Board:
    """One QEMU machine and how to build firmware for it."""

    machine: str  # qemu-system-arm -M <machine>
    core: str  # the target profile's cpu.core
    cflags: tuple[str, ...]  # -mcpu / -mfpu / -mfloat-abi
    flash: Region  # where code and constants go
    ram: Region  # where data, bss (the arena) and the stack go
    vectors: Region | None  # a separate region for the vector table, when the reset vector is
    # fetched outside `flash`
    uart_base: int  # CMSDK APB UART0
    uart_rx_irq: int  # NVIC line of UART0's receive interrupt
    num_irq: int  # external interrupts in the vector table
    counter_hz: int  # SysTick clock (the board's processor clock)
    # Real chips (boards_chips.py): the chip's name, its UART/counter/clock sources in src/ (besides
    # startup, main, frame and crc32), extra -D flags (UART pins), and a stack that fits its RAM.
    chip: str = ""
    sources: tuple[str, ...] = ("uart_cmsdk.c", "counter.c")
    defines: tuple[str, ...] = ()
    stack_bytes: int | None = None
