"""`edgec flash` commands: the exact tool invocation per board, dry run, missing tools."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.toolchain

ELF = Path("out/cortex-m4/firmware/firmware.elf")


@pytest.mark.parametrize("board, port, expected", [
    ("nrf52840", None, ["pyocd", "flash", "--target", "nrf52840", str(ELF)]),
    ("nrf52840", "0240000034544e45", ["pyocd", "flash", "--target", "nrf52840", "--uid", "0240000034544e45", str(ELF)]),
    ("nrf5340", None, ["pyocd", "flash", "--target", "nrf5340_xxaa", str(ELF)]),
    ("stm32f746", None, ["openocd", "-f", "board/stm32f746g-disco.cfg", "-c", f"program {ELF} verify reset exit"]),
    ("rp2040", None, ["picotool", "load", "--verify", "--execute", str(ELF)]),
])
def test_dry_run_returns_the_exact_flash_command(board, port, expected):
    from edgec.device.firmware import flash

    assert flash(board, ELF, port=port, dry_run=True) == expected


def test_esp32_s3_is_written_with_esptool_at_offset_zero_on_the_given_port():
    from edgec.device.firmware import flash_command

    assert flash_command("esp32-s3", Path("app-merged.bin"), port="/dev/ttyUSB0") == [
        "esptool", "--chip", "esp32s3", "--port", "/dev/ttyUSB0", "write-flash", "0x0", "app-merged.bin"]


def test_esp32_s3_refuses_an_elf_image():
    from edgec.core.errors import InputError
    from edgec.device.firmware import flash_command

    with pytest.raises(InputError, match="esptool writes a .bin image"):
        flash_command("esp32-s3", ELF)


def test_qemu_board_runs_the_image_with_uart0_on_a_local_tcp_port():
    from edgec.device.firmware import flash

    cmd = flash("qemu-mps3-an547", ELF, port="6000", dry_run=True)
    assert cmd[:3] == ["qemu-system-arm", "-M", "mps3-an547"]
    assert cmd[cmd.index("-icount") + 1] == "shift=0"
    assert cmd[cmd.index("-serial") + 1] == "tcp:127.0.0.1:6000,server=on,wait=off,nodelay=on"
    assert cmd[-2:] == ["-kernel", str(ELF)]
    default = flash("qemu-mps2-an386", ELF, dry_run=True)
    assert default[default.index("-serial") + 1].startswith("tcp:127.0.0.1:5555,")


def test_unknown_board_is_an_input_error_listing_the_known_boards():
    from edgec.core.errors import InputError
    from edgec.device.firmware import flash

    with pytest.raises(InputError, match="unknown board 'arduino-uno' .*nrf52840.*qemu-mps2-an386") as e:
        flash("arduino-uno", ELF, dry_run=True)
    assert e.value.exit_code == 2


def test_missing_flash_tool_is_an_input_error_naming_the_package(tmp_path, monkeypatch):
    from edgec.core.errors import InputError
    from edgec.device.firmware import flash

    image = tmp_path / "firmware.elf"
    image.write_bytes(b"\x7fELF")
    monkeypatch.setenv("PATH", str(tmp_path))  # no pyocd, no openocd on this PATH
    with pytest.raises(InputError, match="pyocd is not installed; it flashes nrf52840: pip install pyocd"):
        flash("nrf52840", image)
    with pytest.raises(InputError, match="openocd is not installed.*apt-get install openocd"):
        flash("stm32f746", image)


def test_flashing_a_missing_image_is_an_input_error(tmp_path):
    from edgec.core.errors import InputError
    from edgec.device.firmware import flash

    with pytest.raises(InputError, match="does not exist"):
        flash("nrf52840", tmp_path / "nope.elf")
