"""Program a board with a firmware image, or print the exact command (``--dry-run``).

Each board has one tool, a plain table: pyOCD for the Nordic parts (builtin target for the
nRF52840; the nRF5340 needs its CMSIS pack: ``pyocd pack install nrf5340``), OpenOCD for the
STM32F746G-DISCO and, through an ST-LINK, the STM32F405 boards, a copy onto its USB drive for the
micro:bit (nRF51822), picotool for the RP2040 (board in BOOTSEL mode), esptool for the ESP32-S3
(a merged ``.bin`` written at 0x0), and QEMU for the emulated boards, whose "flashing" runs the
image with UART0 on a local TCP port that ``edgec verify --port socket://127.0.0.1:PORT`` talks to.
"""

from __future__ import annotations

import getpass
import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgec.core.errors import InputError, ToolchainError
from edgec.device.firmware.boards import BOARDS, QEMU_PREFIX
from edgec.device.firmware.qemu import qemu_command

log = logging.getLogger(__name__)

DEFAULT_QEMU_PORT = 5555


@dataclass(frozen=True)
class FlashTool:
    """A board's programming tool and where to get it."""

    program: str
    install: str  # shown when the program is missing


_PYOCD = FlashTool("pyocd", "pip install pyocd")
_OPENOCD = FlashTool("openocd", "apt-get install openocd")
_PICOTOOL = FlashTool("picotool", "apt-get install picotool")
_ESPTOOL = FlashTool("esptool", "pip install esptool")
_QEMU = FlashTool("qemu-system-arm", "apt-get install qemu-system-arm (or `make toolchains`)")
_COPY = FlashTool("cp", "coreutils")

# The micro:bit's interface chip (DAPLink) shows a USB drive; a HEX file copied onto it is flashed.
MICROBIT_DRIVE = "/media/{user}/MICROBIT"

TOOLS: dict[str, FlashTool] = {
    "nrf52840": _PYOCD,
    "nrf5340": _PYOCD,
    "stm32f746": _OPENOCD,
    "stm32f405": _OPENOCD,
    "nrf51822": _COPY,
    "rp2040": _PICOTOOL,
    "esp32-s3": _ESPTOOL,
    **{QEMU_PREFIX + machine: _QEMU for machine in BOARDS},
}


def _pyocd(target: str, image: Path, port: str | None) -> list[str]:
    probe = ["--uid", port] if port else []
    return ["pyocd", "flash", "--target", target, *probe, str(image)]


def _qemu(board: str, image: Path, port: str | None) -> list[str]:
    tcp = port.rsplit(":", 1)[-1] if port else str(DEFAULT_QEMU_PORT)
    if not tcp.isdigit():
        raise InputError(f"--port for {board} must be a TCP port number (e.g. 5555), got '{port}'", stage="flash")
    return qemu_command(image, board, serial=f"tcp:127.0.0.1:{tcp},server=on,wait=off,nodelay=on")


def flash_command(board: str, image: Path, *, port: str | None = None) -> list[str]:
    """Return the exact command that programs ``image`` onto ``board``.

    ``port`` is the probe's unique id for pyOCD, the serial port for esptool, the TCP port
    for QEMU boards; OpenOCD and picotool find the board themselves.
    """
    image = Path(image)
    if board not in TOOLS:
        raise InputError(f"unknown board '{board}' (known: {', '.join(TOOLS)})", stage="flash")
    if board == "nrf52840":
        return _pyocd("nrf52840", image, port)
    if board == "nrf5340":
        return _pyocd("nrf5340_xxaa", image, port)
    if board == "stm32f746":
        return ["openocd", "-f", "board/stm32f746g-disco.cfg", "-c", f"program {image} verify reset exit"]
    if board == "stm32f405":  # any ST-LINK (Netduino Plus 2 and Feather: an external one on SWD)
        return ["openocd", "-f", "interface/stlink.cfg", "-f", "target/stm32f4x.cfg", "-c",
                f"program {image} verify reset exit"]
    if board == "nrf51822":
        if image.suffix != ".hex":
            raise InputError(f"the micro:bit's USB drive flashes a .hex image, got {image.name}", stage="flash")
        drive = port or MICROBIT_DRIVE.format(user=getpass.getuser())
        return ["cp", str(image), drive.rstrip("/") + "/"]
    if board == "rp2040":
        return ["picotool", "load", "--verify", "--execute", str(image)]
    if board == "esp32-s3":
        if image.suffix != ".bin":
            raise InputError(f"esptool writes a .bin image (idf.py merge-bin), got {image.name}", stage="flash")
        serial_port = ["--port", port] if port else []
        return ["esptool", "--chip", "esp32s3", *serial_port, "write-flash", "0x0", str(image)]
    return _qemu(board, image, port)


def flash(board: str, image: Path, port: str | None = None, dry_run: bool = False) -> list[str]:
    """Program ``image`` onto ``board`` with its tool (or with ``dry_run``, only return the command).

    Raises InputError when the image is missing or the tool is not installed (naming the
    package to install), ToolchainError when the tool fails. For QEMU boards this runs the
    image until QEMU exits (Ctrl-C).
    """
    cmd = flash_command(board, image, port=port)
    if dry_run:
        return cmd
    if not Path(image).is_file():
        raise InputError(f"image {image} does not exist", stage="flash")
    if board == "nrf51822" and not Path(cmd[-1]).is_dir():
        raise InputError(f"no micro:bit drive at {cmd[-1]}: plug the board in, or pass --port MOUNT_POINT",
                         stage="flash")
    tool = TOOLS[board]
    if shutil.which(tool.program) is None:
        raise InputError(f"{tool.program} is not installed; it flashes {board}: {tool.install}", stage="flash")
    if board.startswith(QEMU_PREFIX):
        tcp_port = cmd[cmd.index("-serial") + 1].split(":")[2].split(",")[0]
        log.info("running %s until QEMU exits (Ctrl-C); talk to it at socket://127.0.0.1:%s", board, tcp_port)
    proc = subprocess.run(cmd)
    if proc.returncode != 0:
        raise ToolchainError(f"{' '.join(cmd)} exited with code {proc.returncode}", stage="flash", target=board)
    return cmd
