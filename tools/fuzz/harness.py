"""What every fuzzing harness shares: a scratch folder, and the rule that only InputError may escape.

A harness feeds fuzzed bytes to one loader. The loader may accept the input or refuse it with
:class:`edgec.core.errors.InputError` (exit 2 on the command line); any other exception is a crash that
atheris reports, with the input saved for a corpus case (``tools/corpus``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SCRATCH = Path(tempfile.mkdtemp(prefix="edgec-fuzz-"))
# Hold fuzzed files in memory-sized pieces; a loader must not be handed a multi-GB input by mistake.
MAX_INPUT = 1 << 20


def scratch_file(name: str, data: bytes) -> Path:
    """Write ``data`` to a fresh file ``name`` in the scratch folder (replacing the last input)."""
    path = SCRATCH / name
    if path.exists() or path.is_symlink():
        path.unlink()
    path.write_bytes(data)
    return path


def expect_refusal(call, *args, **kwargs):
    """Run the loader; an InputError is a correct refusal and is swallowed, anything else escapes."""
    from edgec.core.errors import InputError

    try:
        return call(*args, **kwargs)
    except InputError as e:
        assert "\n" not in str(e), f"multi-line error: {e!r}"
        return None


def run(test_one_input, instrument: list[str]) -> None:
    """Instrument the named modules, then hand control to atheris (libFuzzer flags come from argv)."""
    import atheris

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with atheris.instrument_imports(include=instrument):
        for module in instrument:
            __import__(module)
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
