"""Target profiles: resolution through `extends`, strict keys, the CLI listing."""

from __future__ import annotations

import pytest

from edgec.core import targets
from edgec.core.errors import InputError

REQUIRED = ["cortex-m0plus", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55", "esp32-s3"]


@pytest.mark.parametrize("target_id", REQUIRED)
def test_required_microcontroller_targets_resolve_with_budgets_and_operators(target_id):
    p = targets.resolve(target_id)
    assert p["format"] == "tflm"
    assert p["memory"]["flash_bytes"] > 0 and p["memory"]["ram_bytes"] > 0
    assert p["cpu"]["clock_mhz"] > 0
    assert "CONV_2D" in p["operators"]["allowed"]
    assert p["quantization"] == {"scheme": "int8", "per_channel": True, "io_dtype": "int8", "int16x8": True}
    assert targets.with_backend(p, "c")["quantization"]["int16x8"] is False  # the generated C is int8-only
    assert 0 < p["verification"]["min_top1_agreement"] <= 1


def test_base_profile_is_hidden_from_listing():
    ids = [p["id"] for p in targets.listing()]
    assert "mcu-base" not in ids
    assert set(REQUIRED) <= set(ids)


def _write(folder, name, text):
    (folder / f"{name}.toml").write_text(text)


def test_unknown_target_key_is_a_config_error(tmp_path):
    _write(tmp_path, "board", 'description = "x"\nformat = "tflm"\nflash_size = 3\n')
    with pytest.raises(InputError, match="unknown key 'flash_size'"):
        targets.resolve("board", tmp_path)


def test_unknown_nested_key_names_its_table(tmp_path):
    _write(tmp_path, "board", 'description = "x"\nformat = "tflm"\n[memory]\nflash = 3\n')
    with pytest.raises(InputError, match=r"board.toml.memory: unknown key 'flash'"):
        targets.resolve("board", tmp_path)


def test_wrong_type_is_a_config_error(tmp_path):
    _write(tmp_path, "board", 'description = "x"\nformat = "tflm"\n[memory]\nflash_bytes = "1MB"\n')
    with pytest.raises(InputError, match="'flash_bytes' must be int"):
        targets.resolve("board", tmp_path)


def test_extends_merges_tables_and_child_wins(tmp_path):
    _write(tmp_path, "base", 'abstract = true\ndescription = "b"\nformat = "tflm"\n[memory]\nflash_bytes = 10\nram_bytes = 5\n')
    _write(tmp_path, "child", 'extends = "base"\ndescription = "c"\n[memory]\nram_bytes = 7\n')
    p = targets.resolve("child", tmp_path)
    assert p["memory"] == {"flash_bytes": 10, "ram_bytes": 7}
    assert "abstract" not in p and "extends" not in p


def test_extends_loop_is_refused(tmp_path):
    _write(tmp_path, "a", 'extends = "b"\n')
    _write(tmp_path, "b", 'extends = "a"\n')
    with pytest.raises(InputError, match="'extends' loop"):
        targets.resolve("a", tmp_path)


def test_unknown_target_lists_the_available_ones():
    with pytest.raises(InputError, match=r"unknown target 'cortex-m9'.*cortex-m4"):
        targets.resolve("cortex-m9")


def test_model_budget_subtracts_reserves():
    p = targets.resolve("cortex-m4")
    flash, ram = targets.model_budget(p)
    assert flash == p["memory"]["flash_bytes"] - p["memory"]["flash_reserved_bytes"]
    assert ram == p["memory"]["ram_bytes"] - p["memory"]["ram_reserved_bytes"]


def test_cli_targets_table_and_one_resolved(run_cli):
    code, out, _ = run_cli("targets")
    assert code == 0
    for t in REQUIRED:
        assert t in out
    code, out, _ = run_cli("targets", "cortex-m7")
    assert code == 0 and '"clock_mhz": 216' in out


def test_cli_unknown_target_exits_2_with_one_line(run_cli):
    code, out, err = run_cli("targets", "nope")
    assert code == 2
    assert err.strip().count("\n") == 0 and "unknown target 'nope'" in err
