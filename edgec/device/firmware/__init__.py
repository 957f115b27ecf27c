"""Firmware for emulated (QEMU) and real Cortex-M boards, and the host side of its serial protocol.

Public entry points:

- :func:`build_firmware` (build.py): generated C + edgec's startup/protocol loop -> linked ELF,
  with the target's flash/RAM budgets as linker limits.
- :func:`run_on_device` (run.py): stream inputs to QEMU or a real board, get outputs and counts.
- :func:`flash` / :func:`flash_command` (flash.py): program a board, or print the exact command.
- :func:`~edgec.device.firmware.projects.write_project` (projects.py, projects_hosted.py): the firmware of a
  ``--backend c`` build as a project for the user's toolchain (CMake for the real chips of
  boards_chips.py, Arduino, PlatformIO, Zephyr, ESP-IDF); :func:`~edgec.device.firmware.projects.build_with_cmake`
  builds the CMake one from a clean folder for ``edgec verify --device qemu-netduinoplus2``.
- :func:`~edgec.device.firmware.samples.write_samples` (samples.py): the held-out samples a project's
  firmware checks itself with at boot (``edgec self-check: 4/4 bit-exact`` on its UART).
"""

from edgec.device.firmware.boards import BOARDS, Board, board, board_for_core
from edgec.device.firmware.build import FirmwareImage, build_firmware
from edgec.device.firmware.flash import flash, flash_command
from edgec.device.firmware.protocol import Device, DeviceError, DeviceInfo, Inference
from edgec.device.firmware.qemu import QemuSession
from edgec.device.firmware.run import run_on_device, run_target_on_qemu

__all__ = [
    "BOARDS", "Board", "board", "board_for_core", "FirmwareImage", "build_firmware", "flash",
    "flash_command", "Device", "DeviceError", "DeviceInfo", "Inference", "QemuSession",
    "run_on_device", "run_target_on_qemu",
]
