"""`edgec verify OUT/ID --port socket://...` against the firmware on QEMU: the pyserial code a real
board uses, on a clean line, then through a proxy that injects line faults: noise, a device that
stops answering, QEMU killed mid-stream, a board reset mid-stream (QEMU's own system_reset)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time

import numpy as np
import pytest

from tests.conftest import DIGITS_CALIBRATION, DIGITS_EVAL, DIGITS_MODEL, assert_refused

pytestmark = [pytest.mark.toolchain,
              pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                                 reason="arm-none-eabi-gcc / qemu-system-arm missing: run `make toolchains`")]

SAMPLES = 40
BOARD = "mps2-an386"


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """A generated-C digits build for cortex-m4 (40 evaluation samples) and its firmware ELF."""
    from edgec.core import targets
    from edgec.cli import main
    from edgec.device.firmware import build_firmware

    tmp = tmp_path_factory.mktemp("port")
    data = np.load(DIGITS_EVAL)
    np.savez(tmp / "eval.npz", **{k: v[:SAMPLES] for k, v in data.items()})
    assert main(["compile", str(DIGITS_MODEL), "-t", "cortex-m4", "--backend", "c", "--calibration",
                 str(DIGITS_CALIBRATION), "--eval", str(tmp / "eval.npz"), "-o", str(tmp / "out")]) == 0
    memory = targets.resolve("cortex-m4")["memory"]
    image = build_firmware(tmp / "out" / "cortex-m4", BOARD, flash_bytes=memory["flash_bytes"],
                           ram_bytes=memory["ram_bytes"], out=tmp / "firmware")
    return tmp / "out" / "cortex-m4", image.elf


class Qemu:
    """qemu-system-arm running the firmware, UART0 on a local TCP port (as edgec.device.firmware.qemu
    starts it), and QMP on a unix socket so that a test can reset the board."""

    def __init__(self, elf, tmp_path):
        from edgec.device.firmware.qemu import qemu_command

        listener = socket.create_server(("127.0.0.1", 0))
        self.port = listener.getsockname()[1]
        self.qmp = str(tmp_path / "qmp.sock")
        cmd = qemu_command(elf, BOARD, serial="chardev:uart0")
        cmd[1:1] = ["-chardev", f"socket,id=uart0,fd={listener.fileno()},server=on,wait=off,nodelay=on",
                    "-qmp", f"unix:{self.qmp},server=on,wait=off"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, pass_fds=(listener.fileno(),))
        listener.close()

    def reset(self) -> None:
        """QMP system_reset: the board restarts its firmware, the UART connection stays."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.qmp)
            f = s.makefile("rw")
            f.readline()  # greeting
            for command in ("qmp_capabilities", "system_reset"):
                f.write(json.dumps({"execute": command}) + "\n")
                f.flush()
                while "return" not in json.loads(f.readline()):
                    pass  # events (RESET) come before the command's return

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def qemu(build, tmp_path):
    q = Qemu(build[1], tmp_path)
    yield q
    q.stop()


class Line:
    """A TCP proxy between pyserial and QEMU's UART. ``fault(direction, position, chunk)`` returns the
    bytes to forward ("down" = to the device, "up" = to the host; ``position`` counts bytes so far)."""

    def __init__(self, upstream_port: int, fault):
        self.upstream, self.fault = upstream_port, fault
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"socket://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sent = {"down": 0, "up": 0}
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                device = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                self.listener.close()  # QEMU is gone: so is the port
                return
            for src, dst, direction in ((client, device, "down"), (device, client, "up")):
                threading.Thread(target=self._pump, args=(src, dst, direction), daemon=True).start()

    def _pump(self, src, dst, direction) -> None:
        src.settimeout(None)
        while True:
            try:
                chunk = src.recv(1)  # byte by byte: faults land at exact positions
            except OSError:
                chunk = b""
            if not chunk:
                for s in (src, dst):
                    s.close()
                if direction == "up":  # the device side closed: nobody listens any more
                    self.listener.close()
                return
            out = self.fault(direction, self.sent[direction], chunk)
            self.sent[direction] += 1
            try:
                dst.sendall(out)
            except OSError:
                return


def _verify(run_cli, folder, url, *extra):
    start = time.monotonic()
    result = run_cli("verify", folder, "--port", url, *extra)
    return result, time.monotonic() - start


def _verify_json(folder):
    return json.loads((folder / "verify.json").read_text())


def test_verify_port_on_qemu_is_bit_exact_on_every_sample(run_cli, build, qemu):
    folder, _ = build
    (code, out, err), _ = _verify(run_cli, folder, f"socket://127.0.0.1:{qemu.port}")
    assert code == 0, err
    result = _verify_json(folder)
    assert result["bit_exact"] is True and result["samples"] == SAMPLES and result["mismatched_samples"] == []
    assert result["device"] == f"socket://127.0.0.1:{qemu.port}" and result["link"] == {"retries": 0, "reconnects": 0}
    assert result["cycles_per_inference"]["min"] > 0
    # a board's counts are its cycles: per MAC and milliseconds come from their median, no model
    assert result["cycle_model"]["name"] == "measured (SysTick core cycles)"
    assert result["cycles_per_mac"] == result["per_mac"] and result["ms_at_clock"] > 0


def _noise(direction, position, chunk):
    # Flipped bits inside frames (CRC failures both ways) and garbage between and inside frames.
    flips = {"down": (500, 1700), "up": (150, 700)}[direction]
    garbage = {"down": (1100,), "up": (420, 1000)}[direction]
    if position in flips:
        chunk = bytes([chunk[0] ^ 0x24])
    if position in garbage:
        chunk = bytes([0xED, 0x9E, 0x13, 0x00, 0xFF, 0x5A, 0x42]) + chunk
    return chunk


def test_noise_on_the_line_is_survived_by_resync_and_retry_and_stays_bit_exact(run_cli, build, qemu):
    folder, _ = build
    line = Line(qemu.port, _noise)
    (code, out, err), seconds = _verify(run_cli, folder, line.url, "--timeout", "2")
    assert code == 0, err
    result = _verify_json(folder)
    assert result["bit_exact"] is True and result["samples"] == SAMPLES
    assert result["link"]["retries"] >= 3 and "repeated after line faults" in out  # the faults did land
    assert line.sent["down"] > 1700 and line.sent["up"] > 1000
    assert seconds < 60


def test_a_device_that_stops_answering_fails_in_bounded_time_naming_port_and_sample(run_cli, build, qemu):
    folder, _ = build
    line = Line(qemu.port, lambda d, pos, chunk: b"" if d == "up" and pos >= 400 else chunk)
    (code, _, err), seconds = _verify(run_cli, folder, line.url, "--timeout", "1", "--retries", "2")
    assert_refused((code, "", err), 3, f"[device] {line.url}: sample ", "no complete reply within 1 s",
                   "(after 3 attempts)")
    assert seconds < 20


def test_qemu_killed_mid_stream_is_a_clear_error_not_a_hang(run_cli, build, qemu):
    folder, _ = build

    def kill_at_400(direction, position, chunk):
        if direction == "up" and position == 400:
            qemu.stop()
        return chunk

    line = Line(qemu.port, kill_at_400)
    (code, _, err), seconds = _verify(run_cli, folder, line.url, "--timeout", "1")
    assert_refused((code, "", err), 3, f"[device] {line.url}: sample ", " of 40: ",
                   "connection lost and reopening it failed for 1 s")
    assert seconds < 20


def test_a_board_reset_mid_stream_is_recovered_by_asking_again(run_cli, build, qemu):
    folder, _ = build
    resets = []

    def reset_at_400(direction, position, chunk):
        if direction == "up" and position == 400:
            threading.Thread(target=lambda: resets.append(qemu.reset())).start()
            return b""  # the rest of this reply is lost with the reset
        return b"" if direction == "up" and 400 < position < 420 else chunk

    line = Line(qemu.port, reset_at_400)
    (code, out, err), _ = _verify(run_cli, folder, line.url, "--timeout", "2")
    assert code == 0, err
    assert resets == [None]
    result = _verify_json(folder)
    assert result["bit_exact"] is True and result["samples"] == SAMPLES and result["link"]["retries"] >= 1


def test_bad_timeout_and_retries_are_refused(run_cli, build):
    folder, _ = build
    assert_refused(run_cli("verify", folder, "--port", "socket://127.0.0.1:9", "--timeout", "0"), 2, "--timeout")
    assert_refused(run_cli("verify", folder, "--port", "socket://127.0.0.1:9", "--retries", "-1"), 2, "--retries")
