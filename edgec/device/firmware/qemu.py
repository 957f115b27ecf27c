"""Run firmware under qemu-system-arm with UART0 on a local TCP socket.

``-icount shift=0`` makes every guest instruction advance virtual time by exactly 1 ns, so the
board timer read by the firmware counts instructions, the same for the same input on any host.
The listening socket is opened here and handed to QEMU as a file descriptor: no port can be
taken by someone else between choosing and binding it, and tests can run in parallel.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from edgec.core.errors import ToolchainError
from edgec.device.firmware.boards import board

log = logging.getLogger(__name__)

QEMU = "qemu-system-arm"
ICOUNT_SHIFT = 0
_INSTALL_HINT = "install it with `make toolchains` (Debian package qemu-system-arm)"


def qemu_command(elf: Path, board_name: str, *, serial: str, icount_shift: int | None = ICOUNT_SHIFT) -> list[str]:
    """Return the qemu-system-arm command line running ``elf`` on ``board_name`` with UART0 on ``serial``.

    ``serial`` is a QEMU character-device spec for UART0, e.g. ``tcp:127.0.0.1:5555,server=on,wait=off``
    or ``chardev:uart0``. ``icount_shift=None`` leaves ``-icount`` out (the execution log of
    :mod:`edgec.device.firmware.cycles`: under -icount a TB cut short by the instruction budget is
    logged twice).
    """
    b = board(board_name)
    icount = ["-icount", f"shift={icount_shift}"] if icount_shift is not None else []
    return [QEMU, "-M", b.machine, "-display", "none", "-monitor", "none", "-nodefaults",
            *icount, "-serial", serial, "-kernel", str(elf)]


class QemuSession:
    """QEMU running one firmware image, as a context manager that always kills QEMU at exit.

    Inside the ``with`` block, :attr:`url` is the pyserial URL of the board's UART0.
    """

    def __init__(self, elf: Path, board_name: str, *, icount_shift: int | None = ICOUNT_SHIFT,
                 extra_args: tuple[str, ...] = ()):
        """Prepare to run ``elf`` on ``board_name``; QEMU starts on ``__enter__``.

        Readiness is the firmware answering its first request (bounded by the Device's
        timeout); QEMU failing to start is reported here. ``extra_args`` go on QEMU's command line
        (the execution log of :mod:`edgec.device.firmware.cycles`).
        """
        self.elf = Path(elf)
        self.board = board(board_name)
        self.icount_shift = icount_shift
        self.extra_args = tuple(extra_args)
        self.url = ""
        self._proc: subprocess.Popen | None = None
        self._listener: socket.socket | None = None
        self._log = None
        self._uart_dir: tempfile.TemporaryDirectory | None = None
        self._uart_log: Path | None = None

    def uart_output(self) -> bytes:
        """Everything the firmware has written to UART0 so far (QEMU's chardev log), frames included."""
        try:
            return self._uart_log.read_bytes() if self._uart_log is not None else b""
        except FileNotFoundError:
            return b""

    def __enter__(self) -> "QemuSession":
        if shutil.which(QEMU) is None:
            raise ToolchainError(f"{QEMU} not found; {_INSTALL_HINT}", stage="qemu")
        if not self.elf.is_file():
            raise ToolchainError(f"firmware image {self.elf} does not exist", stage="qemu")
        # Everything the firmware writes to its UART, also before the host connects (its boot self-check line).
        self._uart_dir = tempfile.TemporaryDirectory(prefix="edgec-uart-")
        self._uart_log = Path(self._uart_dir.name) / "uart0.log"
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(1)
        port = self._listener.getsockname()[1]
        fd = self._listener.fileno()
        cmd = qemu_command(self.elf, self.board.machine, serial="chardev:uart0", icount_shift=self.icount_shift)
        cmd[1:1] = ["-chardev", f"socket,id=uart0,fd={fd},server=on,wait=off,nodelay=on,logfile={self._uart_log}", *self.extra_args]
        self._log = tempfile.TemporaryFile()
        log.debug("qemu: %s", " ".join(cmd))
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
                                          pass_fds=(fd,))
        except OSError as e:
            self._cleanup()
            raise ToolchainError(f"cannot start {QEMU}: {e}", stage="qemu") from None
        # QEMU now owns the listening socket; ours is only a duplicate.
        self._listener.close()
        self._listener = None
        self.url = f"socket://127.0.0.1:{port}"
        try:
            self._wait_started()
        except BaseException:
            self._cleanup()
            raise
        return self

    def _wait_started(self) -> None:
        """Fail early when QEMU rejects its command line; the firmware's INFO reply proves readiness."""
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ToolchainError(f"{QEMU} exited with code {self._proc.returncode} at start: {self.output()}",
                                     stage="qemu", target=self.board.machine)
            time.sleep(0.05)

    def output(self) -> str:
        """Return the start of what QEMU printed (its first lines name the problem), on one line."""
        if self._log is None:
            return ""
        self._log.seek(0)
        text = self._log.read(4096).decode(errors="replace")
        # The boards always create their Ethernet device; its "no peer" warning is noise.
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and "has no peer" not in ln]
        return " | ".join(lines[:2])[:300]

    def exit_code(self) -> int | None:
        """QEMU's exit code once it has exited (a CPU lockup aborts it), else None."""
        return None if self._proc is None else self._proc.poll()

    def __exit__(self, *exc) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._uart_dir is not None:
            self._uart_dir.cleanup()
            self._uart_dir = None
            self._uart_log = None
