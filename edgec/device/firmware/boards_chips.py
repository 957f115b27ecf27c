"""Real microcontrollers edgec builds firmware for, two of which QEMU 7.2 models closely.

Facts from the vendors' reference manuals, and from QEMU's models where one exists:

- STM32F405/407 (RM0090; Netduino Plus 2, Olimex H405, Adafruit Feather STM32F405): Cortex-M4F,
  1 MB flash at 0x08000000 (aliased at 0, where the core fetches its reset vector), 128 KB SRAM at
  0x20000000 (plus 64 KB CCM at 0x10000000, not used), USART1 at 0x40011000 on IRQ 37, 82 external
  interrupts. QEMU machine ``netduinoplus2`` runs the core (and SysTick) at 168 MHz, the speed
  board_stm32f4.c sets up on the real chip.
- nRF51822 (nRF51 Series Reference Manual v3.0; BBC micro:bit v1): Cortex-M0 at 16 MHz, 256 KB
  flash at 0, 16 KB RAM at 0x20000000, UART0 at 0x40002000 on IRQ 2 (TX P0.24, RX P0.25 to the
  board's USB interface chip), TIMER0 as the counter (no SysTick). QEMU machine ``microbit``.
- nRF52840 (nRF52840 Product Specification v1.7; nRF52840-DK, Arduino Nano 33 BLE): Cortex-M4F at
  64 MHz, 1 MB flash at 0, 256 KB RAM at 0x20000000, UART0 at 0x40002000 on IRQ 2 (DK: TX P0.06,
  RX P0.08, to the J-Link's virtual COM port), 48 external interrupts. No QEMU model: built and
  size-checked only.
- RP2040 (RP2040 datasheet; Raspberry Pi Pico): Cortex-M0+, a 256-byte second-stage bootloader then
  the vector table at 0x10000100 in its 2 MB QSPI flash (execute-in-place), 264 KB SRAM at
  0x20000000, PL011 UART0 at 0x40034000 on IRQ 20 (GPIO0 TX, GPIO1 RX), 26 external interrupts, run
  at 12 MHz from the crystal. No QEMU model: built and size-checked only.
"""

from __future__ import annotations

from edgec.device.firmware.board_types import Board, Region

_M4F = ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")

STM32F405 = Board(
    machine="netduinoplus2", core="cortex-m4", cflags=_M4F,
    flash=Region(0x08000000, 0x00100000), ram=Region(0x20000000, 0x00020000), vectors=None,
    uart_base=0x40011000, uart_rx_irq=37, num_irq=82, counter_hz=168_000_000,
    chip="stm32f405", sources=("board_stm32f4.c", "counter.c"),
)

NRF51822 = Board(
    machine="microbit", core="cortex-m0", cflags=("-mcpu=cortex-m0", "-mfloat-abi=soft"),
    flash=Region(0x00000000, 0x00040000), ram=Region(0x20000000, 0x00004000), vectors=None,
    uart_base=0x40002000, uart_rx_irq=2, num_irq=32, counter_hz=16_000_000,
    chip="nrf51822", sources=("uart_nrf5.c", "counter_nrf51.c"),
    defines=("-DEDGEC_UART_TX_PIN=24", "-DEDGEC_UART_RX_PIN=25"),
    stack_bytes=2048,  # of 16 KB: the digits model's 6.6 KB arena and buffers need the rest
)

NRF52840 = Board(
    machine="", core="cortex-m4", cflags=_M4F,
    flash=Region(0x00000000, 0x00100000), ram=Region(0x20000000, 0x00040000), vectors=None,
    uart_base=0x40002000, uart_rx_irq=2, num_irq=48, counter_hz=64_000_000,
    chip="nrf52840", sources=("uart_nrf5.c", "counter.c"),
    defines=("-DEDGEC_UART_TX_PIN=6", "-DEDGEC_UART_RX_PIN=8"),
)

RP2040 = Board(
    machine="", core="cortex-m0plus", cflags=("-mcpu=cortex-m0plus", "-mfloat-abi=soft"),
    flash=Region(0x10000000, 0x00200000), ram=Region(0x20000000, 0x00042000), vectors=None,
    uart_base=0x40034000, uart_rx_irq=20, num_irq=26, counter_hz=12_000_000,
    chip="rp2040", sources=("boot2_rp2040.S", "board_rp2040.c", "counter.c"),
)

# Keyed by QEMU machine, merged into boards.BOARDS.
QEMU_CHIP_BOARDS: dict[str, Board] = {b.machine: b for b in (STM32F405, NRF51822)}

# Keyed by chip (the name `edgec flash --board` and a target's device.board use).
CHIPS: dict[str, Board] = {b.chip: b for b in (STM32F405, NRF51822, NRF52840, RP2040)}
# The boards people own, by the chip they carry.
CHIP_ALIASES = {"microbit": "nrf51822", "netduinoplus2": "stm32f405", "stm32f407": "stm32f405"}


def chip(name: str) -> Board | None:
    """The real chip called ``name`` ("stm32f405", "nrf51822", "microbit", "qemu-microbit"...), or None."""
    key = name.removeprefix("qemu-")
    return CHIPS.get(CHIP_ALIASES.get(key, key))
