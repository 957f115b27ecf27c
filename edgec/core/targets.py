"""Target profiles: TOML values in ``targets/``, resolved through ``extends``, checked strictly.

A profile is data. Every key it may hold is listed in :data:`SCHEMA`; an unknown key is a
configuration error, so that a typo cannot silently fall back to a default.
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path
from typing import Any

from edgec.core.errors import GateError, InputError
from edgec.core.formats import FORMATS
from edgec.core.resources import data_dir

# key -> type, or a nested table. A profile may omit any key; `resolve` fills defaults from `extends`.
SCHEMA: dict[str, Any] = {
    "id": str,
    "description": str,
    "extends": str,
    "abstract": bool,  # a base profile that only others extend; hidden from `edgec targets`
    "format": str,  # tflm | litert | openvino | onnx | c
    # isa (x86 only): the instruction set the target's int8 arithmetic assumes, one of ISAS
    "cpu": {"core": str, "arch": str, "isa": str, "clock_mhz": int, "fpu": bool, "dsp": bool, "mve": bool},
    "memory": {
        "flash_bytes": int,
        "ram_bytes": int,
        # Kept free for the application, the runtime's code and its stack; not available to the model.
        "flash_reserved_bytes": int,
        "ram_reserved_bytes": int,
        # Added to the arena measured on the 64-bit host before it is reserved on the device.
        "arena_margin_fraction": float,
        "arena_margin_bytes": int,
    },
    "quantization": {
        "scheme": str,  # int8 | fp16 | fp32
        "per_channel": bool,
        "io_dtype": str,  # int8 | uint8 | float32
        "calibration_method": str,  # minmax | entropy | percentile (ONNX Runtime quantize_static)
        "activation_dtype": str,  # ONNX QDQ activations: uint8 (x86 U8S8 kernels) | int8 (TensorRT)
        # NNCF: disable | first_layer | enable; derived from cpu.isa when absent (see int8_arithmetic)
        "overflow_fix": str,
        "int16x8": bool,  # int16-activation kernels exist: --max-accuracy-drop may ship a 16x8 model
        "stem": str,  # int8 | float | auto: the convolutions reading the input in float (edgec/quantize/stem.py)
    },
    "operators": {"allowed": list},
    "verification": {
        "runtime": str,
        "cross_check": list,
        "min_top1_agreement": float,
        "max_top1_drop": float,
        "min_cosine": float,
        # Non-classifier outputs (regression, reconstruction, embedding; edgec/core/metrics.py).
        "min_snr_db": float,
        "max_abs_err": float,
        "max_samples": int,
    },
    "device": {
        "qemu_machine": str, "board": str, "device_string": str, "harness": str,
        # Device harness (edgec/device/harness/generate.py): inference threads, the Android GPU delegate's fp16
        # variant, ONNX Runtime execution providers in order, a TensorRT trtexec script (Jetson).
        "threads": int, "gpu_delegate": bool, "providers": list, "trtexec": bool,
    },
}

_META_KEYS = {"extends", "abstract"}

# x86 int8 arithmetic. AVX2 (and AVX-512 without VNNI) multiplies u8 x s8 with VPMADDUBSW, which adds
# two products into a *saturating* int16: 255 * 127 * 2 = 64,770 > 32,767, so full 8-bit weights can
# clip. VNNI (VPDPBUSD) accumulates in int32 and never does. ONNX Runtime's fixes are 7-bit weights
# (quantize_static reduce_range: 255 * 64 * 2 = 32,640 fits) or uint8 weights (U8U8), NNCF's is its
# "overflow fix" (7-bit weights). "any" is for artifacts that must be right on whatever CPU runs them.
VNNI_ISAS = ("avx512_vnni", "avx_vnni")
ISAS = (*VNNI_ISAS, "avx2", "any")
OVERFLOW_FIXES = ("disable", "first_layer", "enable")


def _targets_dir(directory: Path | None) -> Path:
    return directory if directory is not None else data_dir("targets")


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise InputError(f"{path}: not valid TOML: {e}", stage="targets") from None


def _check(table: dict, schema: dict, where: str) -> None:
    for key, value in table.items():
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise InputError(f"{where}: unknown key '{key}' (known: {known})", stage="targets")
        kind = schema[key]
        if isinstance(kind, dict):
            if not isinstance(value, dict):
                raise InputError(f"{where}: '{key}' must be a table", stage="targets")
            _check(value, kind, f"{where}.{key}")
        elif kind is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InputError(f"{where}: '{key}' must be {kind.__name__}, got {value!r}", stage="targets")


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def available(directory: Path | None = None) -> list[str]:
    """Ids of all profiles in the targets folder, abstract ones included, sorted."""
    return sorted(p.stem for p in _targets_dir(directory).glob("*.toml") if p.is_file())


def resolve(target_id: str, directory: Path | None = None, _seen: tuple = ()) -> dict[str, Any]:
    """Load profile ``target_id``, apply its ``extends`` chain, validate, and return it.

    Raises :class:`InputError` for an unknown id, an unknown key, a wrong type or an ``extends`` loop.
    """
    folder = _targets_dir(directory)
    path = folder / f"{target_id}.toml"
    if not _ID.fullmatch(target_id) or not path.is_file():
        names = ", ".join(t for t in available(directory) if not _is_abstract(t, folder))
        raise InputError(f"unknown target '{target_id}' (available: {names})", stage="targets")
    if target_id in _seen:
        raise InputError(f"'extends' loop: {' -> '.join(_seen + (target_id,))}", stage="targets")
    raw = _read(path)
    _check(raw, SCHEMA, f"{path.name}")
    if raw.get("id", target_id) != target_id:
        raise InputError(f"{path.name}: id '{raw['id']}' does not match the file name", stage="targets")
    profile: dict[str, Any] = {}
    if "extends" in raw:
        profile = resolve(raw["extends"], directory, _seen + (target_id,))
        profile.pop("abstract", None)
    profile = _merge(profile, raw)
    profile["id"] = target_id
    profile.pop("extends", None)
    if not profile.get("abstract"):
        _require_complete(profile, path.name)
        _check_values(profile, path.name)
    _check_isa(profile, path.name)
    return profile


def _check_isa(profile: dict, where: str) -> None:
    isa = profile.get("cpu", {}).get("isa")
    if isa is not None and isa not in ISAS:
        raise InputError(f"{where}: cpu.isa '{isa}' is not one of {', '.join(ISAS)}", stage="targets")
    fix = profile.get("quantization", {}).get("overflow_fix")
    if fix is not None and fix not in OVERFLOW_FIXES:
        raise InputError(f"{where}: quantization.overflow_fix '{fix}' is not one of {', '.join(OVERFLOW_FIXES)}",
                         stage="targets")
    # "disable" on a CPU without VNNI is exactly the saturation bug the isa key exists to prevent.
    if fix == "disable" and isa in ("avx2", "any"):
        raise InputError(f"{where}: quantization.overflow_fix 'disable' needs a VNNI CPU, but cpu.isa is "
                         f"'{isa}' (use 'enable' or 'first_layer', or leave it out)", stage="targets")


def int8_arithmetic(profile: dict) -> dict[str, Any]:
    """How this target's int8 models are quantized so that its CPU computes them exactly.

    ``isa`` is the profile's ``cpu.isa`` (None: not an x86 target; ARM dot products, TensorRT and GPUs
    accumulate in int32 and are treated like VNNI). ONNX Runtime: "avx2" keeps the fast u8 x s8
    kernels with 7-bit weights (``reduce_range``); "any" uses uint8 weights instead (U8U8: MLAS widens
    both to 16 bits before multiplying, exact on every CPU, at full 8-bit precision but slower: see
    the README). NNCF: an explicit ``quantization.overflow_fix`` wins ("first_layer" is NNCF's own
    default, a bet that only the first layer sees inputs large enough to clip), otherwise "enable"
    (7-bit weights in every layer) follows from a non-VNNI isa, as edgec cannot know which layers clip.
    ``saturation_safe``: no x86 CPU saturates on the resulting artifact.
    """
    isa = profile.get("cpu", {}).get("isa")
    exact = isa not in ("avx2", "any")
    fix = profile.get("quantization", {}).get("overflow_fix") or ("disable" if exact else "enable")
    safe = fix == "enable" if profile.get("format") == "openvino" else not exact
    return {"isa": isa, "saturation_safe": safe, "weight_dtype": "uint8" if isa == "any" else "int8",
            "reduce_range": isa == "avx2", "overflow_fix": fix}


def _is_abstract(target_id: str, folder: Path) -> bool:
    return bool(_read(folder / f"{target_id}.toml").get("abstract", False))


def _require_complete(profile: dict, where: str) -> None:
    for key in ("description", "format"):
        if key not in profile:
            raise InputError(f"{where}: missing '{key}' (after extends)", stage="targets")


# Allowed values of the enumerated keys, and (low, high) ranges of the numbers, of a resolved profile.
CHOICES = {
    "format": tuple(FORMATS),
    "quantization.scheme": ("int8", "fp16", "fp32"),
    "quantization.io_dtype": ("int8", "uint8", "float32"),
    "quantization.calibration_method": ("minmax", "entropy", "percentile"),
    "quantization.activation_dtype": ("uint8", "int8"),
}
RANGES = {
    "cpu.clock_mhz": (1, 100_000), "memory.flash_bytes": (1, 2**40), "memory.ram_bytes": (1, 2**40),
    "memory.flash_reserved_bytes": (0, 2**40), "memory.ram_reserved_bytes": (0, 2**40),
    "memory.arena_margin_fraction": (0.0, 10.0), "memory.arena_margin_bytes": (0, 2**40),
    "verification.min_top1_agreement": (0.0, 1.0), "verification.max_top1_drop": (0.0, 1.0),
    "verification.min_cosine": (-1.0, 1.0), "verification.max_samples": (1, 10**7),
    "device.threads": (1, 1024),
}
_LISTS = ("operators.allowed", "verification.cross_check", "device.providers")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _check_values(profile: dict, where: str) -> None:
    """Enumerations, ranges (NaN is out of every range), lists of strings, budgets left after reserves."""
    def get(dotted: str):
        table, _, key = dotted.rpartition(".")
        return (profile.get(table, {}) if table else profile).get(key)

    for key, allowed in CHOICES.items():
        if get(key) is not None and get(key) not in allowed:
            raise InputError(f"{where}: '{key}' = {get(key)!r}; use one of {', '.join(allowed)}", stage="targets")
    for key, (low, high) in RANGES.items():
        value = get(key)
        if value is not None and not low <= value <= high:
            raise InputError(f"{where}: '{key}' = {value!r} is outside {low}..{high}", stage="targets")
    for key in _LISTS:
        if get(key) is not None and not all(isinstance(v, str) for v in get(key)):
            raise InputError(f"{where}: '{key}' must be a list of strings", stage="targets")
    flash, ram = model_budget(profile)
    if (flash is not None and flash <= 0) or (ram is not None and ram <= 0):
        raise InputError(f"{where}: the reserved memory leaves nothing for the model", stage="targets")


def listing(directory: Path | None = None) -> list[dict[str, Any]]:
    """All concrete (non-abstract) profiles, resolved, in id order."""
    folder = _targets_dir(directory)
    return [resolve(t, directory) for t in available(directory) if not _is_abstract(t, folder)]


def model_budget(profile: dict) -> tuple[int | None, int | None]:
    """Flash and RAM left for the model (bytes) after the profile's reserves, or None if unbounded."""
    mem = profile.get("memory", {})
    flash = mem.get("flash_bytes")
    ram = mem.get("ram_bytes")
    if flash is not None:
        flash -= mem.get("flash_reserved_bytes", 0)
    if ram is not None:
        ram -= mem.get("ram_reserved_bytes", 0)
    return flash, ram


def check_budget(*, flash_bytes: int, ram_bytes: int, profile: dict) -> None:
    """Fail with a :class:`GateError` saying by how much the model is over flash or RAM, and what to try."""
    flash_budget, ram_budget = model_budget(profile)
    problems = []
    if flash_budget is not None and flash_bytes > flash_budget:
        problems.append(f"flash: model needs {flash_bytes} B, {flash_bytes - flash_budget} B over the "
                        f"{flash_budget} B available")
    if ram_budget is not None and ram_bytes > ram_budget:
        problems.append(f"RAM: arena needs {ram_bytes} B, {ram_bytes - ram_budget} B over the "
                        f"{ram_budget} B available")
    if problems:
        raise GateError("; ".join(problems) + ". Try fewer channels or smaller inputs, --prune and "
                        "--clusters (LUT compression), or a bigger target", stage="budget",
                        target=profile["id"])


def with_backend(profile: dict, backend: str | None) -> dict:
    """``--backend c``: a TFLite Micro target built with edgec's generated C, checked bit-exact vs TFLM."""
    if backend in (None, profile["format"]):
        return profile
    if backend == "c" and profile["format"] == "tflm":
        verification = {**profile.get("verification", {}), "runtime": "c", "cross_check": ["tflm"]}
        # the generated C has int8 kernels only
        quantization = {**profile.get("quantization", {}), "int16x8": False}
        return {**profile, "format": "c", "verification": verification, "quantization": quantization}
    raise InputError(f"--backend {backend} does not apply to target '{profile['id']}' (format "
                     f"{profile['format']})", stage="compile", target=profile["id"])
