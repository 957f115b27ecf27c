"""The search space of ``edgec sweep``: a TOML file over the recipe keys, expanded into trials.

A space file names the search, its seed and, under ``[space]``, the values each key may take::

    search = "grid"          # every combination, in file order ("random": `trials` seeded draws)
    seed = 0
    trials = 12              # random search only (the command line's --trials overrides it)

    [space]
    prune = [0.0, 0.5, 0.7]
    clusters = [0, 4, 16]
    learning_rate = {min = 1e-5, max = 1e-3, log = true}   # random search only: a range
    backend = ["tflm", "c"]  # microcontroller targets: TFLite Micro or edgec's generated C

    [fixed]                  # the same in every trial
    finetune_epochs = 10
    distill = true

Keys are those of :class:`edgec.compress.recipe.Recipe` plus ``backend`` and ``stem`` (compile flags).
Every trial is validated as a recipe before anything runs, so a space that can only produce
invalid recipes is refused at once (exit 2). No TensorFlow and no Ray here: pure and fast.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from edgec.core.errors import InputError
from edgec.compress.recipe import Recipe, from_dict
from edgec.quantize.spec import STEM_SETTINGS

SEARCHES = ("grid", "random")
FLAG_KEYS = {"backend": ("tflm", "c"), "stem": STEM_SETTINGS}  # compile flags, not recipe keys
TOP_KEYS = {"search", "seed", "trials", "space", "fixed"}


@dataclass(frozen=True)
class Trial:
    """One point of the space: its settings (recipe keys and flags) and a stable id derived from them."""

    id: str
    settings: dict

    @property
    def recipe(self) -> dict:
        """The recipe keys of this trial (what goes into its ``edgec.toml``)."""
        return {k: v for k, v in self.settings.items() if k not in FLAG_KEYS}

    @property
    def flags(self) -> dict:
        """The compile flags of this trial (``backend``, ``stem``)."""
        return {k: v for k, v in self.settings.items() if k in FLAG_KEYS}


@dataclass(frozen=True)
class Space:
    """A parsed space file: the search kind, its seed, the trial budget, the axes and the fixed keys."""

    search: str
    seed: int
    trials: int | None
    axes: dict
    fixed: dict

    def expand(self, trials: int | None = None) -> list[Trial]:
        """The trials, deterministic for the space and seed: grid order, or seeded random draws (deduplicated)."""
        n = trials if trials is not None else self.trials
        if self.search == "grid":
            keys = list(self.axes)
            points = [dict(zip(keys, combo)) for combo in itertools.product(*(self.axes[k] for k in keys))]
            if n is not None:
                points = points[:n]
        else:
            if n is None:
                raise InputError("a random search needs a number of trials (`trials` in the space or --trials)",
                                 stage="sweep")
            points = _draw(self.axes, n, self.seed)
        out, seen = [], set()
        for point in points:
            trial = make_trial({**self.fixed, **point})
            if trial.id not in seen:
                seen.add(trial.id)
                out.append(trial)
        return out


def make_trial(settings: dict) -> Trial:
    """A trial for ``settings``; its id hashes the canonical settings, so re-runs find their results."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return Trial(id="t" + hashlib.sha256(canonical.encode()).hexdigest()[:10], settings=dict(settings))


def _draw(axes: dict, n: int, seed: int) -> list[dict]:
    """``n`` random points: a choice from each list, a uniform (or log-uniform) value from each range."""
    rng = np.random.default_rng(seed)
    points = []
    for _ in range(n):
        point = {}
        for key, axis in axes.items():
            if isinstance(axis, list):
                point[key] = axis[int(rng.integers(len(axis)))]
            else:
                lo, hi = axis["min"], axis["max"]
                value = math.exp(rng.uniform(math.log(lo), math.log(hi))) if axis.get("log") else rng.uniform(lo, hi)
                point[key] = int(round(value)) if axis.get("int") else float(f"{value:.4g}")
        points.append(point)
    return points


def _check_axis(key: str, axis, search: str) -> None:
    known = {f.name for f in fields(Recipe)} | set(FLAG_KEYS)
    if key not in known:
        raise InputError(f"unknown key '{key}' in the sweep space; known keys: {', '.join(sorted(known))}",
                         stage="sweep")
    if isinstance(axis, list):
        if not axis:
            raise InputError(f"sweep space key '{key}' has no values", stage="sweep")
        if key in FLAG_KEYS and any(v not in FLAG_KEYS[key] for v in axis):
            raise InputError(f"sweep space key '{key}' takes {' or '.join(FLAG_KEYS[key])}, not {axis}", stage="sweep")
        return
    if isinstance(axis, dict) and search == "random" and {"min", "max"} <= set(axis) <= {"min", "max", "log", "int"}:
        lo, hi = axis["min"], axis["max"]
        if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo <= hi) or \
                (axis.get("log") and lo <= 0):
            raise InputError(f"sweep space range for '{key}' needs numbers min <= max (> 0 with log)", stage="sweep")
        return
    raise InputError(f"sweep space key '{key}' must be a list of values"
                     + (" or a {min, max[, log, int]} range" if search == "random" else
                        " (ranges need search = \"random\")"), stage="sweep")


def parse(data: dict, *, source: str = "sweep space") -> Space:
    """A :class:`Space` from parsed TOML; every mistake is an :class:`InputError` naming the key."""
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(unknown)} in {source}; known: {', '.join(sorted(TOP_KEYS))}",
                         stage="sweep")
    search = data.get("search", "grid")
    if search not in SEARCHES:
        raise InputError(f"search '{search}' in {source} is not one of {', '.join(SEARCHES)}", stage="sweep")
    seed, trials = data.get("seed", 0), data.get("trials")
    if not isinstance(seed, int) or (trials is not None and (not isinstance(trials, int) or trials < 1)):
        raise InputError(f"seed must be an integer and trials a positive integer in {source}", stage="sweep")
    axes, fixed = data.get("space", {}), data.get("fixed", {})
    if not isinstance(axes, dict) or not axes or not isinstance(fixed, dict):
        raise InputError(f"{source} needs a [space] table with at least one key", stage="sweep")
    for key, axis in axes.items():
        _check_axis(key, axis, search)
    for key, value in fixed.items():
        _check_axis(key, [value], search)
    overlap = sorted(set(axes) & set(fixed))
    if overlap:
        raise InputError(f"key(s) {', '.join(overlap)} both in [space] and [fixed] of {source}", stage="sweep")
    space = Space(search=search, seed=seed, trials=trials, axes=axes, fixed=fixed)
    return space


def validate(trials: list[Trial]) -> dict[str, str]:
    """Trial id -> why its recipe is invalid, for the trials that cannot run (e.g. 2:4 with prune 0.7)."""
    bad = {}
    for trial in trials:
        try:
            from_dict(trial.recipe, source=f"trial {trial.id}")
        except InputError as e:
            bad[trial.id] = str(e)
    return bad


def load(path: str | Path) -> Space:
    """Read and check a space file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"sweep space {path} does not exist", stage="sweep") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"sweep space {path} cannot be read: {e}", stage="sweep") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"sweep space {path} is not valid TOML: {e}", stage="sweep") from None
    return parse(data, source=str(path))
