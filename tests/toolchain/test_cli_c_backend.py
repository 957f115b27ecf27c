"""`edgec compile --backend c`, `edgec verify --device qemu-...` and `edgec flash`: the generated-C path
end to end on the real cross compiler and emulator."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import DIGITS_CALIBRATION, DIGITS_EVAL, DIGITS_MODEL

pytestmark = [pytest.mark.toolchain,
              pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                                 reason="arm-none-eabi-gcc / qemu-system-arm missing: run `make toolchains`")]


@pytest.fixture(scope="module")
def c_build(tmp_path_factory):
    from edgec.cli import main

    out = tmp_path_factory.mktemp("cbuild")
    targets = [a for t in ("cortex-m4", "cortex-m55", "cortex-m7", "cortex-m33") for a in ("-t", t)]
    assert main(["compile", str(DIGITS_MODEL), *targets, "--backend", "c",
                 "--calibration", str(DIGITS_CALIBRATION), "--eval", str(DIGITS_EVAL), "-o", str(out)]) == 0
    return out


def test_generated_c_is_bit_exact_with_tflm_on_the_host_and_smaller_in_ram(c_build):
    report = json.loads((c_build / "cortex-m4" / "report.json").read_text())
    assert report["format"] == "c" and report["verification"]["runtime"] == "c"
    assert report["verification"]["cross_check"]["tflm"]["bit_exact"] is True
    assert report["memory"]["arena_bytes"] <= 0.8 * report["memory"]["tflm_arena_bytes"]
    assert (c_build / "cortex-m4" / "model.c").is_file()


@pytest.mark.parametrize("kernels", ["optimized", "portable"])
@pytest.mark.parametrize("target,device", [("cortex-m4", "qemu-mps2-an386"), ("cortex-m55", "qemu-mps3-an547")])
def test_verify_on_emulated_board_is_bit_exact_on_every_held_out_sample(run_cli, c_build, target, device, kernels):
    code, out, err = run_cli("verify", c_build / target, "--device", device,
                             *(["--portable"] if kernels == "portable" else []))
    assert code == 0, err
    result = json.loads((c_build / target / "verify.json").read_text())
    assert result["bit_exact"] is True and result["samples"] == 500 and result["mismatched_samples"] == []
    assert result["artifact_top1"] >= 0.98
    counts = result["instructions_per_inference"]
    assert 0 < counts["min"] <= counts["p50"] <= counts["max"] and result["per_mac"] > 0
    assert result["firmware"]["text"] > 0
    assert result["instructions_per_mac"] == result["per_mac"]
    if target == "cortex-m4":
        _check_cycle_keys(result, c_build / target, core="cortex-m4", clock_hz=64_000_000)
    else:  # no cycle model for the M55: the keys are there, empty
        assert result["cycle_model"] is None and result["cycles_per_inference"] is None


def _check_cycle_keys(result, folder, *, core, clock_hz):
    """verify.json's cycle estimate: the traced run executed what the -icount run counted, every
    instruction costs a cycle or more on the M4 (single issue), and the derived keys agree."""
    counts, model = result["instructions_per_inference"], result["cycle_model"]
    assert model["core"] == core and model["clock_hz"] == clock_hz
    assert model["name"] == {"cortex-m4": "cortex-m4-trm", "cortex-m7": "cortex-m7-single-issue"}[core]
    # The traced sample is the first; the counts of the others differ by a few branches at most.
    assert abs(model["traced_instructions"] - counts["p50"]) <= 0.01 * counts["p50"]
    cycles = result["cycles_per_inference"]
    assert model["traced_instructions"] <= cycles <= 3 * model["traced_instructions"]
    report = json.loads((folder / "report.json").read_text())
    macs = report.get("c_backend", {}).get("macs") or report["model"]["macs"]
    assert result["cycles_per_mac"] == round(cycles / macs, 3)
    assert result["ms_at_clock"] == round(cycles * 1000 / clock_hz, 3)
    if core == "cortex-m4":
        low, high = model["cycles_bounds"]
        assert low < cycles < high


@pytest.mark.parametrize("target,device", [("cortex-m7", "qemu-mps2-an500"), ("cortex-m33", "qemu-mps2-an505")])
def test_verify_on_emulated_m7_and_m33_is_bit_exact(run_cli, c_build, tmp_path, target, device):
    # The other two emulated cores, each built within its own profile's flash and RAM; 100 samples
    # keep it short (the M4 and M55 runs above take all 500).
    import numpy as np

    data = np.load(DIGITS_EVAL)
    np.savez(tmp_path / "eval.npz", image=data["image"][:100], label=data["label"][:100])
    code, out, err = run_cli("verify", c_build / target, "--device", device, "--eval", tmp_path / "eval.npz")
    assert code == 0, err
    result = json.loads((c_build / target / "verify.json").read_text())
    assert result["bit_exact"] is True and result["samples"] == 100 and result["mismatched_samples"] == []
    assert result["device"] == device and 0 < result["instructions_per_inference"]["min"]
    if target == "cortex-m7":
        _check_cycle_keys(result, c_build / target, core="cortex-m7", clock_hz=216_000_000)


def test_verify_device_refuses_a_tflm_build(run_cli, tmp_path):
    from edgec.pipeline import compile as run

    run(DIGITS_MODEL, ["cortex-m4"], calibration=str(DIGITS_CALIBRATION), eval=str(DIGITS_EVAL), out=tmp_path)
    code, _, err = run_cli("verify", tmp_path / "cortex-m4", "--device", "qemu-mps2-an386")
    assert code == 2 and "--backend c" in err


def test_flash_dry_run_prints_the_exact_commands_and_writes_nothing(run_cli, c_build, tmp_path):
    before = sorted(p.relative_to(c_build) for p in (c_build / "cortex-m4").rglob("*"))
    code, out, err = run_cli("flash", c_build / "cortex-m4", "--board", "qemu-mps2-an386", "--dry-run")
    assert code == 0, err
    assert out.startswith("qemu-system-arm") and "-M mps2-an386" in out and "firmware.elf" in out
    assert sorted(p.relative_to(c_build) for p in (c_build / "cortex-m4").rglob("*")) == before
    app = tmp_path / "app.hex"
    app.write_text(":00000001FF\n")
    code, out, err = run_cli("flash", c_build / "cortex-m4", "--board", "nrf52840", "--image", app, "--dry-run")
    assert code == 0, err
    assert out.startswith("pyocd flash") and "app.hex" in out
    # Without --image, the nRF52840 image is the CMake project edgec writes for the chip.
    code, out, err = run_cli("flash", c_build / "cortex-m4", "--board", "nrf52840", "--dry-run")
    assert code == 0, err
    assert out.startswith("pyocd flash --target nrf52840") and "intermediate/firmware/build/firmware.elf" in out


def test_verify_on_the_host_reruns_the_generated_c(run_cli, c_build):
    code, out, err = run_cli("verify", c_build / "cortex-m4")
    assert code == 0, err
    result = json.loads((c_build / "cortex-m4" / "verify.json").read_text())
    assert result["runtime"] == "c" and result["samples"] == 500 and result["device"] == "host"
