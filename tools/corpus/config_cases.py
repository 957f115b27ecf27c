"""Malformed recipes (``--recipe``) and target profiles (a copy of ``targets/``, one profile broken)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from . import Case, Run
from .sources import ROOT

# --- recipes: each is the whole file (TOML text or raw bytes) -------------------------------------

RECIPES = {
    "not_toml": "prune = \n",
    "binary": bytes(range(256)),
    "utf16": "prune = 0.5\n".encode("utf-16"),
    "deeply_nested_array": "prune_layers = " + "[" * 50_000 + "]" * 50_000 + "\n",
    "deeply_nested_table": "prune = 0.5\n" + "x = " + "{a = " * 5_000 + "1" + "}" * 5_000 + "\n",
    "unknown_key": "prunning = 0.5\n",
    "table_instead_of_value": "[prune]\nvalue = 0.5\n",
    "prune_text": "prune = \"half\"\n",
    "prune_bool": "prune = true\n",
    "prune_above_one": "prune = 1.5\n",
    "prune_negative": "prune = -0.1\n",
    "prune_nan": "prune = nan\n",
    "prune_inf": "prune = inf\n",
    "prune_structure_unknown": "prune_structure = \"3:4\"\n",
    "prune_schedule_unknown": "prune_schedule = \"cosine\"\n",
    "prune_layers_a_string": "prune_layers = \"conv1\"\n",
    "prune_layers_numbers": "prune_layers = [1, 2]\n",
    "clusters_float": "clusters = 2.5\n",
    "clusters_one": "clusters = 1\n",
    "clusters_huge": "clusters = 9223372036854775807\n",
    "cluster_counts_a_list": "clusters = 16\ncluster_counts = [1, 2]\n",
    "cluster_counts_text": "clusters = 16\ncluster_counts = {conv1 = \"four\"}\n",
    "cluster_counts_one": "clusters = 16\ncluster_counts = {conv1 = 1}\n",
    "cluster_counts_without_clusters": "cluster_counts = {conv1 = 4}\n",
    "cluster_bits_above_eight": "cluster_bits = 9.0\n",
    "cluster_bits_nan": "cluster_bits = nan\n",
    "low_rank_above_one": "low_rank = 2.0\n",
    "finetune_epochs_negative": "finetune_epochs = -1\n",
    "batch_size_zero": "batch_size = 0\n",
    "learning_rate_zero": "learning_rate = 0.0\n",
    "learning_rate_inf": "finetune_epochs = 1\nlearning_rate = inf\n",
    "learning_rate_nan": "finetune_epochs = 1\nlearning_rate = nan\n",
    "temperature_negative": "temperature = -1.0\n",
    "temperature_inf": "distill = true\nfinetune_epochs = 1\ntemperature = inf\n",
    "qat_unknown": "qat = \"magic\"\n",
    "seed_negative": "clusters = 16\nseed = -1\n",
    "seed_huge": "clusters = 16\nseed = 9223372036854775807\n",
    "two_four_with_other_sparsity": "prune_structure = \"2:4\"\nprune = 0.3\n",
    "duplicate_key": "prune = 0.5\nprune = 0.6\n",
}


def _recipe(content: str | bytes):
    def build(folder, rng):
        path = folder / "edgec.toml"
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return Run(recipe=path)
    return build


def _recipe_fifo(folder, rng):
    path = folder / "edgec.toml"
    os.mkfifo(path)
    return Run(recipe=path)


# --- target profiles: a copy of targets/ with one profile replaced ---------------------------------

M4 = (ROOT / "targets" / "cortex-m4.toml").read_text()

PROFILES = {  # the text of targets/bad.toml, compiled with --target bad
    "not_toml": "extends = \"mcu-base\"\ndescription = \n",
    "not_utf8": b"extends = \"mcu-base\"\ndescription = \"\xff\xfe\"\n",
    "deeply_nested": "extends = \"cortex-m4\"\nx = " + "[" * 50_000 + "]" * 50_000 + "\n",
    "unknown_key": M4 + "\nturbo = true\n",
    "unknown_nested_key": M4.replace("[cpu]\n", "[cpu]\nghz = 3\n"),
    "wrong_type": M4.replace("clock_mhz = 64", "clock_mhz = \"fast\""),
    "bool_for_int": M4.replace("clock_mhz = 64", "clock_mhz = true"),
    "table_is_a_value": "extends = \"mcu-base\"\ndescription = \"x\"\nmemory = 5\n",
    "extends_missing": M4.replace("mcu-base", "mcu-nowhere"),
    "extends_itself": M4.replace("mcu-base", "bad"),
    "extends_not_a_string": M4.replace("\"mcu-base\"", "7"),
    "id_mismatch": "id = \"cortex-m4\"\n" + M4,
    "no_format": "description = \"no format\"\n",
    "format_unknown": "format = \"fpga\"\n" + M4,
    "flash_negative": M4.replace("flash_bytes = 1048576", "flash_bytes = -1048576"),
    "ram_zero": M4.replace("ram_bytes = 262144", "ram_bytes = 0"),
    "reserved_over_flash": M4.replace("[memory]\n", "[memory]\nflash_reserved_bytes = 99999999\n"),
    "arena_margin_negative": M4.replace("[memory]\n", "[memory]\narena_margin_fraction = -0.5\n"),
    "arena_margin_nan": M4.replace("[memory]\n", "[memory]\narena_margin_fraction = nan\n"),
    "clock_negative": M4.replace("clock_mhz = 64", "clock_mhz = -64"),
    "scheme_unknown": M4 + "\n[quantization]\nscheme = \"int4\"\n",
    "io_dtype_unknown": M4 + "\n[quantization]\nio_dtype = \"int3\"\n",
    "calibration_method_unknown": M4 + "\n[quantization]\ncalibration_method = \"vibes\"\n",
    "stem_unknown": M4 + "\n[quantization]\nstem = \"sideways\"\n",
    "min_agreement_above_one": M4 + "\n[verification]\nmin_top1_agreement = 1.5\n",
    "min_cosine_nan": M4 + "\n[verification]\nmin_cosine = nan\n",
    "max_samples_zero": M4 + "\n[verification]\nmax_samples = 0\n",
    "operators_not_strings": M4 + "\n[operators]\nallowed = [1, 2]\n",
    "cross_check_not_strings": M4 + "\n[verification]\ncross_check = [{runtime = \"tflm\"}]\n",
    "threads_zero": M4 + "threads = 0\n",
}


def _targets(text: str | bytes | None = None, setup=None):
    def build(folder, rng):
        root = folder / "targets"
        shutil.copytree(ROOT / "targets", root)
        if text is not None:
            (root / "bad.toml").write_bytes(text.encode() if isinstance(text, str) else text)
        if setup is not None:
            setup(root)
        return Run(target="bad", targets_dir=root, calibration="random")
    return build


def _loop(root: Path) -> None:
    (root / "bad.toml").write_text(M4.replace("mcu-base", "worse"))
    (root / "worse.toml").write_text(M4.replace("mcu-base", "bad"))


def _named(target: str):
    def build(folder, rng):
        return Run(target=target, calibration="random")
    return build


def cases() -> list[Case]:
    """All recipe and target-profile cases."""
    out = [Case(f"recipe_{name}", _recipe(text)) for name, text in RECIPES.items()]
    out.append(Case("recipe_fifo", _recipe_fifo))
    out += [Case(f"target_{name}", _targets(text)) for name, text in PROFILES.items()]
    out += [Case("target_extends_loop", _targets(setup=_loop)),
            Case("target_file_is_a_fifo", _targets(setup=lambda root: os.mkfifo(root / "bad.toml"))),
            Case("target_file_is_a_folder", _targets(setup=lambda root: (root / "bad.toml").mkdir()))]
    out += [Case(f"target_id_{name}", _named(value)) for name, value in {
        "path_traversal": "../targets/cortex-m4", "absolute": "/etc/passwd", "empty": "",
        "base_profile": "mcu-base", "unknown": "cortex-m9", "nul": "cortex-m4\x00"}.items()]
    return out
