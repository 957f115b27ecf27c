"""The compression recipe: every optimize-stage setting, from ``edgec.toml`` and/or the command line.

A recipe file is flat TOML with the keys of :class:`Recipe` (unknown keys, wrong types and values out
of range are an :class:`InputError`); command-line flags of the same meaning override it::

    prune = 0.5                 # --prune 0.5
    prune_structure = "2:4"     # --prune-structure 2:4
    clusters = 16               # --clusters 16
    cluster_counts = {conv2d_7 = 4, "Dense" = 32}   # per-layer numbers of clusters (recipe only)
    cluster_bits = 2.5          # or: counts per layer by measured sensitivity, 2.5 bits/weight on average
    int4 = ["conv2d_3", "Dense"]  # --int4-weights ...: int4 weights for these layers (TFLite's INT4 type)
    int4 = ["auto"]             # or: int4 as a choice of the cluster_bits knapsack (needs cluster_bits)
    low_rank = 0.95             # --low-rank 0.95  (retained singular-value energy)
    finetune_epochs = 5         # --finetune-epochs 5
    distill = true              # --distill
    label_weight = 0.5          # with distill and labelled samples: half distillation, half labels
    lr_schedule = "cosine"      # learning rate decaying to zero over the fine-tuning
    augment = "shift-flip"      # image inputs: random shifts and horizontal flips, new each epoch
    output_kind = "regression"  # verify every output by SNR/cosine (default: inferred per output)
    output_kinds = {recon = "regression", label = "classifier"}   # or per output name

No TensorFlow import here: ``edgec --help`` and ``--print-recipe`` stay instant.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from edgec.core.errors import InputError

PRUNE_STRUCTURES = ("unstructured", "2:4")
PRUNE_SCHEDULES = ("constant", "polynomial")
OUTPUT_KINDS = ("classifier", "regression")  # edgec.core.metrics.KINDS (no NumPy import here)
LR_SCHEDULES = ("constant", "cosine")
AUGMENTS = ("none", "shift", "shift-flip")
QAT_CHOICES = ("none", "auto", "plain", "prune_preserve", "cluster_preserve", "pcqat")


@dataclass
class Recipe:
    """All optimize-stage settings with their defaults (everything off except fusion and LUT)."""

    fuse: bool = True                       # fold batch norms / activations first
    prune: float = 0.0                      # target sparsity, 0 = no pruning
    prune_structure: str = "unstructured"   # or "2:4"
    prune_schedule: str = "constant"        # or "polynomial" (0 -> prune over the fine-tuning steps)
    prune_layers: list[str] | None = None   # names, layer types or glob patterns; None = all but first/last
    keep_first_last: bool = True            # keep the first and last prunable layers dense by default
    clusters: int = 0                       # weight clusters, 0 = no clustering
    cluster_per_channel: bool = False       # per output channel (Conv2D)
    cluster_layers: list[str] | None = None
    cluster_counts: dict[str, int] | None = None  # per-layer numbers of clusters: {conv2d_7 = 8, "Dense" = 16}
    cluster_bits: float = 0.0               # average LUT bits per weight; counts chosen per layer, 0 = off
    int4: list[str] | None = None           # int4 weights: layer names/types/globs, or ["auto"]
    low_rank: float = 0.0                   # retained energy for SVD factorization, 0 = off
    low_rank_layers: list[str] | None = None
    finetune_epochs: int = 0                # recovery fine-tuning epochs, 0 = none
    batch_size: int = 32
    learning_rate: float = 1e-3
    distill: bool = False                   # distill from the float model even when labels exist
    temperature: float = 4.0                # distillation temperature
    label_weight: float = 0.0               # with distill and labels: weight of the labels' cross-entropy
    lr_schedule: str = "constant"           # or "cosine" (decays to zero over the fine-tuning steps)
    augment: str = "none"                   # image inputs: "shift" or "shift-flip", drawn anew each epoch
    qat: str = "none"                       # none | auto | plain | prune_preserve | cluster_preserve | pcqat
    lut: bool = True                        # TFLite Micro LUT compression of clustered weights
    output_kind: str | None = None          # classifier | regression for every output; None = inferred
    output_kinds: dict[str, str] | None = None  # by output name: {recon = "regression"}
    seed: int = 0

    def validate(self) -> "Recipe":
        """Check types and ranges; raise :class:`InputError` naming the key and what is allowed."""
        for f in fields(self):
            _check_type(f.name, getattr(self, f.name), f.type)
            if f.type == "float":  # TOML has nan and inf; no setting means either
                _require(math.isfinite(getattr(self, f.name)), f.name, getattr(self, f.name), "a finite number")
        _require(0 <= self.seed < 2**32, "seed", self.seed, "0..2**32-1")
        _require(0.0 <= self.prune < 1.0, "prune", self.prune, "a sparsity in [0, 1)")
        _require(self.prune_structure in PRUNE_STRUCTURES, "prune_structure", self.prune_structure,
                 " or ".join(PRUNE_STRUCTURES))
        _require(self.prune_schedule in PRUNE_SCHEDULES, "prune_schedule", self.prune_schedule,
                 " or ".join(PRUNE_SCHEDULES))
        _require(self.clusters == 0 or 2 <= self.clusters <= 256, "clusters", self.clusters, "0 (off) or 2..256")
        for selector, n in (self.cluster_counts or {}).items():
            _require(2 <= n <= 256, "cluster_counts", {selector: n}, "2..256 clusters per selected layer")
        _require(self.cluster_bits == 0 or 1.0 <= self.cluster_bits <= 8.0, "cluster_bits", self.cluster_bits,
                 "0 (off) or an average of 1..8 bits per weight")
        _require(not self.cluster_counts or self.clustering, "cluster_counts", self.cluster_counts,
                 "it with clusters > 0 or cluster_bits (the number for the layers it does not name)")
        _require(self.int4 is None or "auto" not in self.int4 or (self.int4 == ["auto"] and self.cluster_bits > 0),
                 "int4", self.int4, '["auto"] with cluster_bits (the budget it chooses within), or layer names')
        _require(self.int4 is None or not self.pruning, "int4", self.int4, "unset when pruning")
        _require(not (self.int4 and self.qat != "none"), "int4", self.int4, "unset with qat (int4 recovery "
                 "trains on the 4-bit grid itself)")
        _require(0.0 <= self.low_rank <= 1.0, "low_rank", self.low_rank, "a retained energy in (0, 1], 0 = off")
        _require(self.finetune_epochs >= 0, "finetune_epochs", self.finetune_epochs, "0 or more")
        _require(self.batch_size >= 1, "batch_size", self.batch_size, "1 or more")
        _require(self.learning_rate > 0, "learning_rate", self.learning_rate, "a positive number")
        _require(self.temperature > 0, "temperature", self.temperature, "a positive number")
        _require(0.0 <= self.label_weight < 1.0, "label_weight", self.label_weight,
                 "a weight in [0, 1) (without distill, labels alone are used)")
        _require(self.lr_schedule in LR_SCHEDULES, "lr_schedule", self.lr_schedule, " or ".join(LR_SCHEDULES))
        _require(self.augment in AUGMENTS, "augment", self.augment, " or ".join(AUGMENTS))
        _require(self.prune_structure != "2:4" or self.prune in (0.0, 0.5), "prune", self.prune,
                 "0.5 (or unset) with prune_structure 2:4, which keeps 2 of every 4 weights")
        _require(self.qat in QAT_CHOICES, "qat", self.qat, ", ".join(QAT_CHOICES))
        for kind in [self.output_kind, *(self.output_kinds or {}).values()]:
            _require(kind is None or kind in OUTPUT_KINDS, "output_kind", kind, " or ".join(OUTPUT_KINDS))
        return self

    @property
    def clustering(self) -> bool:
        """Whether the recipe clusters (a number of clusters, or an average bit budget)."""
        return self.clusters > 0 or self.cluster_bits > 0

    @property
    def pruning(self) -> bool:
        """Whether the recipe prunes (a sparsity, or 2:4 structure)."""
        return self.prune > 0 or self.prune_structure == "2:4"

    def to_dict(self) -> dict:
        """The resolved settings (for ``manifest.json``'s recipe)."""
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        """The resolved recipe as an ``edgec.toml`` that loads back to the same recipe."""
        lines = ["# edgec compression recipe (resolved)"]
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                empty = _UNSET.get(f.name) or ("{}  (default: the clusters key for every layer)"
                                                if f.type.startswith("dict") else "[]  (default: chosen automatically)")
                lines.append(f"# {f.name} = {empty}")
            else:
                lines.append(f"{f.name} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"


# How an unset key shows in ``--print-recipe`` where the list/table wording does not fit.
_UNSET = {"output_kind": '"regression"  (default: inferred per output; or "classifier")',
          "output_kinds": "{}  (default: output_kind, else inferred, for every output)"}

_TYPES = {"bool": (bool,), "float": (int, float), "int": (int,), "str": (str,),
          "list[str] | None": (list, type(None)), "dict[str, int] | None": (dict, type(None)),
          "str | None": (str, type(None)), "dict[str, str] | None": (dict, type(None))}


def _check_type(name: str, value, type_name: str) -> None:
    allowed = _TYPES[type_name]
    ok = isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)
    if ok and isinstance(value, list):
        ok = all(isinstance(v, str) for v in value)
    if ok and isinstance(value, dict):
        of = str if type_name.startswith("dict[str, str]") else int
        ok = all(isinstance(k, str) and isinstance(v, of) and not isinstance(v, bool) for k, v in value.items())
    if not ok:
        raise InputError(f"recipe key {name!r} must be {type_name.replace(' | None', '')}, got {value!r}",
                         stage="recipe")


def _require(ok: bool, name: str, value, allowed: str) -> None:
    if not ok:
        raise InputError(f"recipe key {name!r} = {value!r} is not allowed; use {allowed}", stage="recipe")


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table; keys quoted, as layer globs need
        return "{" + ", ".join(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def from_dict(data: dict, *, base: Recipe | None = None, source: str = "recipe") -> Recipe:
    """A recipe from ``data`` over ``base`` (default: the defaults); unknown keys are an error."""
    known = {f.name for f in fields(Recipe)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(unknown)} in {source}; known keys: {', '.join(sorted(known))}",
                         stage="recipe")
    recipe = dataclasses.replace(base or Recipe(), **data)
    if isinstance(recipe.low_rank, int) or isinstance(recipe.prune, int):
        recipe = dataclasses.replace(recipe, low_rank=float(recipe.low_rank), prune=float(recipe.prune))
    return recipe.validate()


def load(path: str | Path) -> Recipe:
    """Read an ``edgec.toml`` recipe file."""
    path = Path(path)
    if path.exists() and not path.is_file() and not path.is_dir():  # a FIFO would block the read
        raise InputError(f"recipe file {path} cannot be read: not a regular file", stage="recipe")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"recipe file {path} does not exist", stage="recipe") from None
    except OSError as e:
        raise InputError(f"recipe file {path} cannot be read: {e.strerror}", stage="recipe") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise InputError(f"recipe file {path} is not valid TOML: {e}", stage="recipe") from None
    return from_dict(data, source=str(path))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the compression flags; each overrides the recipe key of the same name when given."""
    g = parser.add_argument_group("compression (override the --recipe file)")
    g.add_argument("--prune", type=float, metavar="S", help="prune to sparsity S (e.g. 0.5)")
    g.add_argument("--prune-structure", choices=PRUNE_STRUCTURES, help="unstructured or 2:4")
    g.add_argument("--clusters", type=int, metavar="N", help="cluster weights to N values")
    g.add_argument("--int4-weights", dest="int4", nargs="+", metavar="LAYER",
                   help="int4 weights for these layers (names, types, globs), or 'auto' (needs cluster_bits)")
    g.add_argument("--low-rank", type=float, metavar="E", help="SVD-factorize Dense/1x1 conv keeping energy E")
    g.add_argument("--finetune-epochs", type=int, metavar="N", help="recovery fine-tuning epochs")
    g.add_argument("--distill", action="store_true", default=None,
                   help="fine-tune by distillation from the float model (needs no labels)")
    g.add_argument("--print-recipe", action="store_true", help="print the resolved recipe as TOML and exit")


_FLAGS = ("prune", "prune_structure", "clusters", "int4", "low_rank", "finetune_epochs", "distill")


def from_args(args: argparse.Namespace, recipe_path: str | Path | None) -> Recipe:
    """The recipe file (if any) with the command-line flags that were given laid over it."""
    base = load(recipe_path) if recipe_path else Recipe()
    given = {name: getattr(args, name) for name in _FLAGS if getattr(args, name, None) is not None}
    return from_dict(given, base=base, source="command-line flags")
