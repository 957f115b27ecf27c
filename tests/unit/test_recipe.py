"""The edgec.toml recipe: defaults, strict loading, CLI flags of the same meaning, round trip."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from edgec.compress import recipe
from edgec.core.errors import InputError


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    recipe.add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_compress_nothing_but_fuse():
    r = recipe.Recipe().validate()
    assert r.fuse and not r.pruning and r.clusters == 0 and r.low_rank == 0 and r.finetune_epochs == 0


def test_recipe_file_is_loaded_and_flags_override_it(tmp_path):
    path = tmp_path / "edgec.toml"
    path.write_text('prune = 0.5\nclusters = 16\nprune_layers = ["fc*"]\ntemperature = 2\n')
    r = recipe.from_args(_parse(["--clusters", "8", "--distill"]), path)
    assert (r.prune, r.clusters, r.prune_layers, r.distill, r.temperature) == (0.5, 8, ["fc*"], True, 2)


def test_flags_alone_have_the_same_meaning_as_recipe_keys(tmp_path):
    argv = ["--prune", "0.5", "--prune-structure", "2:4", "--clusters", "16", "--low-rank", "0.95",
            "--finetune-epochs", "3", "--distill"]
    from_flags = recipe.from_args(_parse(argv), None)
    path = tmp_path / "edgec.toml"
    path.write_text('prune = 0.5\nprune_structure = "2:4"\nclusters = 16\nlow_rank = 0.95\n'
                    "finetune_epochs = 3\ndistill = true\n")
    assert from_flags == recipe.load(path)


def test_int4_flag_is_the_int4_recipe_key(tmp_path):
    path = tmp_path / "edgec.toml"
    path.write_text('int4 = ["conv2d_3", "Dense"]\n')
    assert recipe.from_args(_parse(["--int4-weights", "conv2d_3", "Dense"]), None) == recipe.load(path)
    with pytest.raises(InputError, match="with cluster_bits"):
        recipe.from_args(_parse(["--int4-weights", "auto"]), None)
    assert recipe.from_dict({"int4": ["auto"], "cluster_bits": 2.85}).int4 == ["auto"]


def test_printed_recipe_loads_back_to_the_same_recipe(tmp_path):
    r = recipe.from_dict({"prune": 0.7, "cluster_layers": ["Dense", "conv2"], "qat": "pcqat", "low_rank": 1,
                          "clusters": 4, "cluster_counts": {"conv2d_7": 8, "fc*": 16}, "cluster_bits": 2.5})
    path = tmp_path / "printed.toml"
    path.write_text(r.to_toml())
    assert recipe.load(path) == r and "prune = 0.7" in r.to_toml()
    int4 = recipe.from_dict({"int4": ["auto"], "cluster_bits": 2.85})
    path.write_text(int4.to_toml())
    assert recipe.load(path) == int4 and 'int4 = ["auto"]' in int4.to_toml()


@pytest.mark.parametrize("text, message", [
    ("prnue = 0.5\n", "unknown key"),
    ("prune = 1.5\n", "'prune' = 1.5 is not allowed"),
    ('prune = "half"\n', "'prune' must be float"),
    ("clusters = 1\n", "'clusters' = 1"),
    ('prune_structure = "4:8"\n', "2:4"),
    ("distill = 1\n", "'distill' must be bool"),
    ("prune_layers = [1, 2]\n", "'prune_layers' must be list"),
    ("prune = \n", "not valid TOML"),
    ("clusters = 4\ncluster_counts = {conv2 = 1}\n", "'cluster_counts' = {'conv2': 1}"),
    ("clusters = 4\ncluster_counts = {conv2 = true}\n", "'cluster_counts' must be dict"),
    ("cluster_counts = {conv2 = 8}\n", "with clusters > 0 or cluster_bits"),
    ("cluster_bits = 0.5\n", "'cluster_bits' = 0.5 is not allowed; use 0 \\(off\\) or an average of 1..8"),
    ('int4 = ["auto"]\n', "'int4' = \\['auto'\\] is not allowed; use \\[\"auto\"\\] with cluster_bits"),
    ('int4 = ["auto", "conv2"]\ncluster_bits = 3\n', "'int4'"),
    ('int4 = ["conv2"]\nprune = 0.5\n', "unset when pruning"),
    ("label_weight = 1.0\n", "'label_weight' = 1.0 is not allowed; use a weight in \\[0, 1\\)"),
    ('lr_schedule = "step"\n', "'lr_schedule' = 'step' is not allowed; use constant or cosine"),
    ('augment = "mixup"\n', "'augment' = 'mixup' is not allowed; use none or shift or shift-flip"),
])
def test_bad_recipe_is_a_one_line_input_error(tmp_path, text, message):
    path = tmp_path / "edgec.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as err:
        recipe.load(path)
    assert err.value.exit_code == 2 and "\n" not in str(err.value)


def test_recovery_schedule_keys_load_and_print_back(tmp_path):
    r = recipe.from_dict({"finetune_epochs": 10, "distill": True, "label_weight": 0.5, "lr_schedule": "cosine",
                          "augment": "shift-flip"})
    path = tmp_path / "printed.toml"
    path.write_text(r.to_toml())
    assert recipe.load(path) == r and 'augment = "shift-flip"' in r.to_toml()


def test_augmentation_shifts_and_flips_each_image_within_an_eighth_and_is_seeded():
    from edgec.compress.finetune import augment_images, augmentable

    x = np.arange(2 * 16 * 16 * 3, dtype=np.float32).reshape(2, 16, 16, 3)
    x = np.repeat(x[:1], 64, axis=0)  # one image, 64 draws
    a = augment_images(x, np.random.default_rng(7), flip=True)
    assert a.shape == x.shape and np.array_equal(a, augment_images(x, np.random.default_rng(7), flip=True))
    # Every output is the image shifted by at most 2 pixels (16 / 8), edge-padded, maybe mirrored.
    padded = np.pad(x[0], ((2, 2), (2, 2), (0, 0)), mode="edge")
    windows = {(dy, dx, f) for dy in range(5) for dx in range(5) for f in (False, True)}
    found = set()
    for img in a:
        match = [(dy, dx, f) for dy, dx, f in windows
                 if np.array_equal(img, (padded[dy:dy + 16, dx:dx + 16])[:, ::-1] if f else padded[dy:dy + 16, dx:dx + 16])]
        assert match, "an augmented image that is no shifted or mirrored copy"
        found.add(match[0])
    assert len(found) > 10 and any(f for _, _, f in found) and any(not f for _, _, f in found)
    unflipped = augment_images(x, np.random.default_rng(7), flip=False)
    assert all(any(np.array_equal(img, padded[dy:dy + 16, dx:dx + 16]) for dy in range(5) for dx in range(5))
               for img in unflipped)
    assert augmentable(x) is None
    assert "not an image" in augmentable(np.zeros((4, 640), np.float32))
    assert "2 inputs" in augmentable({"a": x, "b": x})


def test_missing_recipe_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        recipe.from_args(_parse([]), tmp_path / "nope.toml")


def test_bad_flag_value_is_an_input_error():
    with pytest.raises(InputError, match="clusters"):
        recipe.from_args(_parse(["--clusters", "1000"]), None)
