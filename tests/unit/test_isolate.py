"""edgec's worker process (edgec/core/isolate.py): a native abort is an error, Python errors pass through."""

from __future__ import annotations

import os

import pytest

from edgec.core import isolate


def test_abort_in_the_worker_is_a_native_crash_and_the_next_call_gets_a_new_worker():
    with pytest.raises(isolate.NativeCrash) as crash:
        isolate.call(os.abort, stage="slim", what="the thing")
    assert crash.value.signal_name == "SIGABRT" and crash.value.exit_code == 3
    assert str(crash.value).startswith("[slim] the thing crashed (SIGABRT) in its worker process")
    crash.value.target, crash.value.model = "cortex-m4", "m.h5"
    assert str(crash.value).startswith("[slim / cortex-m4] ") and str(crash.value).endswith("(model m.h5)")
    assert isolate.call(os.getpid, stage="x", what="y") != os.getpid()  # a fresh worker, not this process


def test_python_errors_in_the_worker_are_raised_unchanged():
    with pytest.raises(ValueError, match="invalid literal"):
        isolate.call(int, "x", stage="x", what="y")
    assert isolate.call(divmod, 7, 2, stage="x", what="y") == (3, 1)  # the same worker still serves
