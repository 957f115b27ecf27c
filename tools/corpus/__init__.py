"""The malformed-input corpus: cases generated in code from real files by a seeded mutator.

A :class:`Case` is a name and a builder. The builder writes the mutated input(s) into a folder and
returns a :class:`Run`: the ``edgec compile`` arguments that feed them in (plus, for target profiles,
the folder edgec reads profiles from). Every case must be refused with exit 2 (3 where a toolchain
rejects what passed edgec's checks), one ``edgec: error:`` line, and nothing written to OUT.

Nothing generated is committed: the sources are the repository's example model and calibration set,
the MLPerf Tiny models in ``../shared``, and an ONNX model built in code; ``SEED`` fixes every flip.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .sources import DIGITS_CALIBRATION, DIGITS_MODEL

SEED = 20261202


@dataclass
class Run:
    """What a case feeds to ``edgec compile`` (defaults: the bundled model, its calibration set)."""

    model: Path | str = DIGITS_MODEL
    calibration: Path | str | None = DIGITS_CALIBRATION
    eval: Path | str | None = None
    recipe: Path | None = None
    target: str = "cortex-m4"
    targets_dir: Path | None = None  # a folder of target profiles edgec reads instead of its own
    extra: tuple[str, ...] = ()
    sentinels: tuple[Path, ...] = ()  # files that must not exist afterwards (a pickle's payload)

    def argv(self, out: Path) -> list[str]:
        """The command line for this run, writing into ``out``."""
        args = ["compile", str(self.model), "--target", self.target, "-o", str(out), *self.extra]
        for flag, value in (("--calibration", self.calibration), ("--eval", self.eval),
                            ("--recipe", self.recipe)):
            if value is not None:
                args += [flag, str(value)]
        return args


@dataclass
class Case:
    """One named malformed input: ``build(folder, rng) -> Run``; ``codes`` are the accepted exits."""

    name: str
    build: Callable[[Path, random.Random], Run]
    codes: tuple[int, ...] = (2,)
    words: tuple[str, ...] = field(default_factory=tuple)  # expected in the error line

    def generate(self, folder: Path) -> Run:
        """Write this case's inputs into ``folder`` (created) and return its run; seeded by name."""
        folder.mkdir(parents=True, exist_ok=True)
        return self.build(folder, random.Random(f"{SEED}:{self.name}"))


def all_cases() -> list[Case]:
    """Every case of every family, names unique."""
    from . import config_cases, data_cases, keras_cases, onnx_cases

    cases = [*keras_cases.cases(), *onnx_cases.cases(), *data_cases.cases(), *config_cases.cases()]
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    return cases
