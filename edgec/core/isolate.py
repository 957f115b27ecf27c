"""Run native toolchain calls in a child process, so that an abort kills the child, not edgec.

The TFLite Micro interpreter (``tflite-micro``'s C++ reference kernels) aborts the whole process on
some models: a ``TFLITE_CHECK`` in a kernel's ``Prepare`` calls ``abort()`` with no message and no
Python exception (e.g. a SOFTMAX input scale below 2^-26, see :mod:`edgec.quantize.softmax_scale`). Run
in-process, that is exit 134 and a half-built output folder. Here such calls run in one long-lived
worker process (a fresh ``python``, not a fork of a process that holds TensorFlow's threads). A
worker that dies becomes a :class:`NativeCrash` naming the stage, the signal and what ran;
the next call starts a fresh worker.

One worker is reused for every call of this process, because starting one costs about half a second
(Python, NumPy and the ``tflite-micro`` extension), and the test suite and a compile run the
interpreter many times. Arguments and results travel pickled over a pipe (models and sample batches
of a few MB: milliseconds). Python exceptions raised in the worker are re-raised here unchanged.
"""

from __future__ import annotations

import atexit
import signal
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from pathlib import Path

from edgec.core.errors import ToolchainError


class NativeCrash(ToolchainError):
    """A native toolchain died by a signal (or exited) inside its worker process (exit 3).

    ``signal_name`` is e.g. ``"SIGABRT"``; ``model`` is filled in by the pipeline with the model being
    compiled, so that the one-line message names it.
    """

    def __init__(self, message: str, *, stage: str | None = None, target: str | None = None,
                 signal_name: str | None = None, model: str | None = None):
        super().__init__(message, stage=stage, target=target)
        self.signal_name = signal_name
        self.model = model

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} (model {self.model})" if self.model else text


def _serve(fd: int) -> None:
    """The worker's loop: call each ``(fn, args, kwargs)`` received, send back the result or the error."""
    import resource

    # An abort is reported as an error; a core file of it would only litter the user's folder.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    conn = Connection(fd)
    while True:
        try:
            fn, args, kwargs = conn.recv()
        except (EOFError, KeyboardInterrupt):  # the parent went away, or Ctrl-C reached the whole group
            return
        try:
            conn.send(("ok", fn(*args, **kwargs)))
        except Exception as e:  # noqa: BLE001 - every Python error goes back to the caller as it is
            try:
                conn.send(("error", e))
            except Exception:  # noqa: BLE001 - an error that cannot be pickled: send its text
                conn.send(("error", RuntimeError(f"{type(e).__name__}: {e}")))


class _Worker:
    """``python -c`` running :func:`_serve` over a socket pair.

    Not ``multiprocessing``'s "spawn": it re-imports the parent's main script in the child, so a user
    script calling ``edgec.compile`` without an ``if __name__ == "__main__"`` guard would run again in
    the worker. This child imports only edgec (from the same folder as this process's edgec).
    """

    def __init__(self):
        ours, theirs = socket.socketpair()
        package_root = str(Path(__file__).resolve().parents[2])  # the folder holding edgec/
        code = (f"import sys; sys.path.insert(0, {package_root!r}); "
                f"from edgec.core.isolate import _serve; _serve({theirs.fileno()})")
        self.process = subprocess.Popen([sys.executable, "-c", code], pass_fds=(theirs.fileno(),),
                                        stdin=subprocess.DEVNULL)
        theirs.close()
        self.conn = Connection(ours.detach())

    @property
    def exitcode(self) -> int | None:
        return self.process.poll()

    def close(self) -> None:
        self.conn.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


_lock = threading.Lock()
_worker: _Worker | None = None


def _signal_name(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return signal.Signals(-exitcode).name
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def call(fn, *args, stage: str, what: str, **kwargs):
    """``fn(*args, **kwargs)`` in the worker process; :class:`NativeCrash` if the worker dies doing it.

    ``fn`` must be a module-level function (it is pickled by name), its arguments and result picklable.
    ``what`` names what ran, for the message (e.g. "TFLite Micro interpreter on the slimmed model").
    """
    global _worker
    with _lock:
        if _worker is None or _worker.exitcode is not None:
            _worker = _Worker()
        worker = _worker
        try:
            worker.conn.send((fn, args, kwargs))
            status, value = worker.conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            name = _signal_name(worker.process.wait())
            _worker = None
            raise NativeCrash(f"{what} crashed ({name}) in its worker process; the native toolchain "
                              "aborted without a Python error", stage=stage, signal_name=name) from None
        except BaseException:  # Ctrl-C, SIGTERM mid-call: the pipe is out of step, start afresh next time
            worker.kill()
            _worker = None
            raise
    if status == "error":
        raise value
    return value


def shutdown() -> None:
    """Stop the worker (also done at exit)."""
    global _worker
    with _lock:
        if _worker is not None:
            _worker.close()
            _worker = None


atexit.register(shutdown)
