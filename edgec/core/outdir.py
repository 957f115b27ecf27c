"""The output folder OUT: one writer at a time, and no temporary folder outlives its process.

Each target folder is built in a hidden temporary sibling ``.TARGET.PID-xxxxxxxx`` and renamed
into place when complete (:func:`edgec.core.build_state.atomic_folder`). A process killed outright (SIGKILL,
the OOM killer, a native abort) cannot remove its temporary folder, so the next compile into the
same OUT does: under OUT's lock, a temporary folder whose owning process is gone is stale.

The lock is ``flock`` on OUT itself (a directory can be flock'ed on Linux and macOS): no lock
file is left in OUT, and the operating system releases the lock when its holder dies, however it
dies. A second compile into a locked OUT is refused at once (exit 2) rather than queued: it says
which process holds OUT, and the user decides whether to wait or pick another ``-o``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from edgec.core.errors import InputError

log = logging.getLogger(__name__)

# .cortex-m4.1234-k2j3h4g5 (a build in progress) and .cortex-m4.old-1234 (the folder it replaces).
TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.(?:old-(?P<old>\d+)|(?P<pid>\d+)-[a-z0-9_]{8})$")
# Before the pid was in the name: .cortex-m4.k2j3h4g5 (mkdtemp's 8 characters only).
LEGACY_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}$")


def temp_prefix(target: str) -> str:
    """The name prefix of a temporary folder for ``target`` owned by this process."""
    return f".{target}.{os.getpid()}-"


def owner(path: Path) -> int | None:
    """The pid that owns temporary folder ``path`` (None for a legacy name or a non-temporary name)."""
    m = TEMP_NAME.match(Path(path).name)
    if not m:
        return None
    return int(m.group("old") or m.group("pid"))


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a zombie counts as gone: it can no longer write)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, and not ours to judge
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): os.kill said it exists


def stale_temp_folders(out: Path) -> list[Path]:
    """Temporary folders in ``out`` whose owner is gone (call it while holding OUT's lock).

    A legacy name (no pid) counts only when it holds edgec's ``intermediate/`` subfolder: under
    the lock no live edgec is writing it, and the check keeps other hidden folders safe.
    """
    found = []
    for p in sorted(Path(out).iterdir()) if Path(out).is_dir() else []:
        if not p.is_dir() or p.is_symlink():
            continue
        pid = owner(p)
        if pid is not None:
            if pid != os.getpid() and not pid_alive(pid):
                found.append(p)
        elif LEGACY_TEMP_NAME.match(p.name) and (p / "intermediate").is_dir():
            found.append(p)
    return found


def remove_stale(out: Path) -> list[Path]:
    """Remove the stale temporary folders of ``out``; return what was removed."""
    removed = stale_temp_folders(out)
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    return removed


def _holders(out: Path) -> str:
    pids = sorted({pid for p in Path(out).iterdir() if (pid := owner(p)) is not None and pid_alive(pid)})
    return f" (pid {', '.join(map(str, pids))})" if pids else ""


def _busy(out: Path) -> InputError:
    return InputError(f"{out} is being written by another edgec compile or sweep{_holders(out)}; wait for it to finish "
                      "or pass another -o", stage="output")


def check_free(out: Path) -> None:
    """Refuse at once when another compile holds ``out`` (before any work; creates nothing)."""
    out = Path(out)
    if not out.is_dir():
        return
    with contextlib.suppress(OSError):
        fd = os.open(out, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(out) from None
        finally:
            os.close(fd)  # closing releases a lock taken here


@contextlib.contextmanager
def locked(out: Path) -> Iterator[list[Path]]:
    """Hold the lock on ``out`` (created if needed) for the block; yield the stale folders removed."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(out, os.O_RDONLY)
    except OSError as e:
        raise InputError(f"cannot write the output folder {out}: {e.strerror}", stage="output") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(out) from None
        removed = remove_stale(out)
        if removed:
            log.info("removed %d stale temporary folder(s) of killed runs: %s", len(removed),
                     ", ".join(p.name for p in removed))
        yield removed
    finally:
        os.close(fd)
