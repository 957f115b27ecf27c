"""Progress display for long steps: a rich spinner on a terminal, silence elsewhere (CI logs, pipes)."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

log = logging.getLogger("edgec")


@contextlib.contextmanager
def status(message: str) -> Iterator[None]:
    """Show ``message`` with a spinner while the block runs (only when stderr is a terminal)."""
    log.info(message)
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield
