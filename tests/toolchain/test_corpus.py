"""The malformed-input corpus (tools/corpus): every case refused in one line, nothing written to OUT."""

from __future__ import annotations

import signal

import pytest

from tests.conftest import MLPERF
from tools.corpus import Case, all_cases, tflite_cases

pytestmark = pytest.mark.toolchain

CASES = all_cases()
# A case that has not been refused after this long is a hang (a FIFO read, a decompression bomb).
CASE_SECONDS = 60


class Hang(BaseException):
    """Raised by the alarm; a BaseException so that no ``except Exception`` in edgec turns it into exit 2."""


def _timeout(signum, frame):
    raise Hang(f"no verdict within {CASE_SECONDS} s")


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 200, len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_malformed_input_is_refused_cleanly(case: Case, run_cli, tmp_path, monkeypatch):
    assert MLPERF.is_dir(), f"the MLPerf Tiny models (a source of the corpus) are missing at {MLPERF}"
    run = case.generate(tmp_path / "in")
    if run.targets_dir is not None:
        from edgec.core import targets

        monkeypatch.setattr(targets, "_targets_dir", lambda directory: run.targets_dir)
    out = tmp_path / "out"
    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(CASE_SECONDS)
    try:
        code, _, err = run_cli(*run.argv(out))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    line = err.strip()
    assert code in case.codes, f"exit {code}: {err}"
    assert line.startswith("edgec: error:") and "\n" not in line and "Traceback" not in line, err
    for word in case.words:
        assert word in line, line
    # Nothing in OUT, hidden temporary target folders (.cortex-m4.xxxx) included.
    assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.iterdir())
    for path in run.sentinels:
        assert not path.exists(), f"{path} was created: the input ran code"


@pytest.mark.parametrize("make", [make for _, make in tflite_cases.cases()], ids=[n for n, _ in tflite_cases.cases()])
def test_malformed_tflite_is_refused_by_the_parser(make):
    from edgec.core import tflite_model
    from edgec.core.errors import InputError

    with pytest.raises(InputError) as refused:
        model = tflite_model.parse(make())
        tflite_model.macs(model)
    assert refused.value.exit_code == 2 and "\n" not in str(refused.value)
