"""Stream inputs to edgec firmware on QEMU or a real board and collect outputs and counts."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from edgec.core.errors import InputError
from edgec.device.firmware.boards import board
from edgec.device.firmware.build import FirmwareImage
from edgec.device.firmware.build import build_firmware
from edgec.device.firmware.projects import build_with_cmake
from edgec.device.firmware.protocol import Device, DeviceError, DeviceInfo, Inference
from edgec.device.firmware.qemu import ICOUNT_SHIFT, QemuSession
from edgec.device.firmware.samples import parse_self_check

log = logging.getLogger(__name__)


def instructions(ticks: int, info: DeviceInfo, *, icount_shift: int = ICOUNT_SHIFT) -> int:
    """Convert counter ticks under QEMU ``-icount shift=N`` into guest instructions.

    Each instruction advances virtual time by 2**N ns and the counter runs at
    ``info.counter_hz``, so the result is exact to one counter tick (40 instructions on the
    25 MHz mps2 boards). On a real board the ticks are core cycles; do not convert them.
    """
    return round(ticks * 1_000_000_000 / (info.counter_hz * (1 << icount_shift)))


# How long the first INFO request waits before it is sent again while QEMU boots the firmware.
BOOT_PROBE_S = 1.0


def await_boot(device: Device, session: QemuSession, timeout: float) -> DeviceInfo:
    """Ask QEMU's firmware for INFO until it answers (within ``timeout`` s) and return the answer.

    QEMU's STM32 USART model (netduinoplus2) drops the bytes that arrive while the firmware has not yet
    turned its receiver on, and the host's first request may arrive that early when the host is busy:
    a request that goes unanswered for BOOT_PROBE_S is sent again. Only line faults are retried;
    QEMU exiting or an error reply ends it at once.
    """
    deadline = time.monotonic() + timeout
    saved, device.timeout = device.timeout, BOOT_PROBE_S
    try:
        while True:
            try:
                return device.info()
            except DeviceError as e:
                if not e.transient or session.exit_code() is not None or time.monotonic() > deadline:
                    raise
                log.debug("%s: no INFO reply yet (%s); asking again", device.url, e.reason)
                device.resync()
    finally:
        device.timeout = saved


def _check_inputs(inputs: list[bytes], info: DeviceInfo) -> None:
    for i, data in enumerate(inputs):
        if len(data) != info.input_bytes:
            raise InputError(f"input {i} has {len(data)} bytes; the firmware's model takes {info.input_bytes}",
                             stage="device")


def _attempt(device: Device, what: str, call, retries: int, link: dict):
    """``call()`` with up to ``retries`` more attempts after a transient line fault, resynchronizing in
    between; the final error names the port, ``what`` was being done and what happened."""
    for attempt in range(retries + 1):
        try:
            return call()
        except DeviceError as e:
            error = e
            if not e.transient or attempt == retries:
                break
            log.info("%s: %s: %s; resynchronizing and asking again", device.url, what, e.reason)
            link["retries"] += 1
            try:
                device.resync()
            except DeviceError as lost:
                error = lost
                break
            finally:
                link["reconnects"] = device.reconnects
    tries = f" (after {attempt + 1} attempts)" if attempt else ""
    raise DeviceError(f"{device.url}: {what}: {error.reason}{tries}", status=error.status,
                      detail=error.detail) from None


def _stream(device: Device, inputs: list[bytes], *, qemu: bool, retries: int = 0,
            link: dict | None = None) -> list[Inference]:
    link = {"retries": 0, "reconnects": 0} if link is None else link
    link.setdefault("retries", 0)
    link.setdefault("reconnects", 0)
    info = _attempt(device, "INFO request before the first sample", device.info, retries, link)
    _check_inputs(inputs, info)
    results = []
    for i, data in enumerate(inputs):
        r = _attempt(device, f"sample {i} of {len(inputs)}", lambda d=data: device.infer(d), retries, link)
        count = instructions(r.ticks, info) if qemu else r.ticks
        results.append(Inference(output=r.output, ticks=count))
    if device.self_check is not None:  # printed at boot; a board opened after its reset shows none
        link["self_check"] = device.self_check
    return results


def run_on_device(target: FirmwareImage | Path | str, inputs: list[bytes], *, board: str | None = None,
                  timeout: float = 60.0, retries: int = 3, link: dict | None = None) -> list[Inference]:
    """Run each input on the device and return ``[(output_bytes, count), ...]`` in order.

    ``target`` is a :class:`FirmwareImage` (or an ELF path plus ``board``), run under QEMU for
    the duration of the call; or a port / pyserial URL (``/dev/ttyACM0``,
    ``socket://127.0.0.1:5555``) of a board already running the firmware. ``count`` is the
    instruction count under QEMU (``-icount shift=0``, exact to one timer tick) and the SysTick
    core-cycle count on a real board. ``timeout`` bounds each reply; on a port, after a line fault
    (see :mod:`edgec.device.firmware.protocol`) a sample is asked for again up to ``retries`` times, and
    ``link`` (a dict, when given) counts the ``retries`` and ``reconnects``, and gets the line the
    firmware printed at boot as ``self_check`` (:func:`edgec.device.firmware.samples.parse_self_check`).
    """
    if isinstance(target, FirmwareImage) or (isinstance(target, Path) and target.suffix == ".elf"):
        elf = target.elf if isinstance(target, FirmwareImage) else target
        machine = target.board if isinstance(target, FirmwareImage) else board
        if machine is None:
            raise InputError("run_on_device: an ELF path needs board=", stage="device")
        with QemuSession(elf, machine) as session, Device(session.url, timeout=timeout) as device:
            try:  # a local emulator's line has no noise: a fault there is a crash, reported at once
                await_boot(device, session, timeout)
                results = _stream(device, inputs, qemu=True, link=link)
                # QEMU's UART log holds the boot line even when it came before the host connected.
                check = parse_self_check(session.uart_output())
                if link is not None and check is not None:
                    link["self_check"] = check
                return results
            except DeviceError as e:
                if session.exit_code() is not None:
                    raise DeviceError(f"QEMU stopped (exit code {session.exit_code()}): {session.output()}",
                                      status=e.status) from None
                raise
    with Device(str(target), timeout=timeout) as device:
        return _stream(device, inputs, qemu=False, retries=retries, link=link)


def run_target_on_qemu(c_dir: Path, target: dict, inputs: list[bytes], *, work: Path, device: str | None = None,
                       timeout: float = 60.0, cflags: tuple[str, ...] = (), link: dict | None = None
                       ) -> tuple[FirmwareImage, list[Inference]]:
    """Build the generated C in ``c_dir`` for a resolved target profile and run ``inputs`` under QEMU.

    The board is ``device`` ("qemu-mps2-an386") or the profile's ``device.qemu_machine``; the
    linker limits are the profile's ``memory.flash_bytes`` and ``memory.ram_bytes``. The
    firmware is written to ``work``. Returns the image (its footprint) and the results of
    :func:`run_on_device`; ``link`` (a dict, when given) gets the firmware's ``self_check``.
    """
    machine = device or target.get("device", {}).get("qemu_machine")
    if not machine:
        raise InputError(f"target '{target.get('id')}' names no QEMU machine (device.qemu_machine); "
                         "pass --device qemu-mps2-an386 or another emulated board", stage="device")
    memory = target.get("memory", {})
    if board(machine).chip:  # a real chip's model: build the project a user would, with cmake, from scratch
        image = build_with_cmake(Path(c_dir), machine, flash_bytes=memory["flash_bytes"],
                                 ram_bytes=memory["ram_bytes"], out=Path(work), target_id=target.get("id", ""),
                                 cflags=cflags)
        return image, run_on_device(image, inputs, timeout=timeout, link=link)
    image = build_firmware(Path(c_dir), machine, flash_bytes=memory["flash_bytes"], ram_bytes=memory["ram_bytes"],
                           out=Path(work), cflags=cflags)
    return image, run_on_device(image, inputs, timeout=timeout, link=link)
