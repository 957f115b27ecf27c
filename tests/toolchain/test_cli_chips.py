"""From `edgec compile --backend c --project cmake` to firmware for a real chip, verified bit-exact on
QEMU's model of the same chip: STM32F405 (netduinoplus2) and nRF51822 (micro:bit v1, 16 KB RAM).

Real cmake, arm-none-eabi-gcc and qemu-system-arm; the digits example and MLPerf Tiny's KWS model.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from tests.conftest import DIGITS_CALIBRATION, DIGITS_EVAL, DIGITS_MODEL, MLPERF, needs_mlperf

pytestmark = [pytest.mark.toolchain,
              pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("cmake") is None
                                 or shutil.which("qemu-system-arm") is None,
                                 reason="arm-none-eabi-gcc / cmake / qemu-system-arm missing: run `make toolchains`")]

DEVICES = {"stm32f405": "qemu-netduinoplus2", "nrf51822": "qemu-microbit"}
SAMPLES = 100  # of the 500 held-out digits: the M0 runs ~7.9 M instructions per inference


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    from edgec.cli import main

    out = tmp_path_factory.mktemp("chips")
    assert main(["compile", str(DIGITS_MODEL), "-t", "stm32f405", "-t", "nrf51822", "--backend", "c",
                 "--project", "cmake", "--calibration", str(DIGITS_CALIBRATION), "--eval", str(DIGITS_EVAL),
                 "-o", str(out)]) == 0
    data = np.load(DIGITS_EVAL)
    np.savez(out / "eval.npz", image=data["image"][:SAMPLES], label=data["label"][:SAMPLES])
    return out


@pytest.mark.parametrize("target", list(DEVICES))
def test_cmake_project_verifies_bit_exact_over_uart_on_the_chips_qemu_model(run_cli, build, target):
    code, out, err = run_cli("verify", build / target, "--device", DEVICES[target], "--eval", build / "eval.npz")
    assert code == 0, err
    result = json.loads((build / target / "verify.json").read_text())
    assert result["device"] == DEVICES[target] and result["samples"] == SAMPLES
    assert result["bit_exact"] is True and result["mismatched_samples"] == [] and result["passed"] is True
    assert result["artifact_top1"] >= 0.95
    # The project bundles held-out samples; the firmware ran them at boot and said so on its UART.
    report = json.loads((build / target / "report.json").read_text())
    n = report["project"]["self_check_samples"]
    assert n == 4 and (build / target / "project" / "model" / "edgec_samples.c").is_file()
    assert result["self_check"]["line"] == f"edgec self-check: {n}/{n} bit-exact" and result["self_check"]["passed"]
    counts = result["instructions_per_inference"]
    assert 0 < counts["min"] <= counts["p50"] <= counts["max"] and result["per_mac"] > 0
    # Built by cmake from the project in a clean folder; the whole image within the chip's memories.
    firmware = result["firmware"]
    assert firmware["elf"] == "intermediate/firmware/build/firmware.elf"
    profile_ram = {"stm32f405": 128 << 10, "nrf51822": 16 << 10}[target]
    assert firmware["data"] + firmware["bss"] <= profile_ram
    report = json.loads((build / target / "report.json").read_text())
    assert report["project"]["kind"] == "cmake" and report["project"]["qemu_device"] == DEVICES[target]


def test_the_compiled_project_builds_as_a_user_would_into_the_image_verify_ran(run_cli, build, tmp_path):
    code, _, err = run_cli("verify", build / "nrf51822", "--device", "qemu-microbit", "--eval", build / "eval.npz")
    assert code == 0, err
    project = shutil.copytree(build / "nrf51822" / "project", tmp_path / "project")
    subprocess.run(["cmake", "-B", "build"], cwd=project, check=True, capture_output=True)
    subprocess.run(["cmake", "--build", "build"], cwd=project, check=True, capture_output=True)
    built = build / "nrf51822" / "intermediate" / "firmware" / "build"
    for name in ("firmware.elf", "firmware.hex", "firmware.bin"):
        assert (project / "build" / name).read_bytes() == (built / name).read_bytes(), name


def test_microbit_ram_holds_the_digits_arena_with_room_to_spare(build):
    report = json.loads((build / "nrf51822" / "report.json").read_text())
    assert report["memory"]["arena_bytes"] <= report["memory"]["ram_budget_bytes"] <= 16 << 10


def test_flash_builds_the_project_image_and_dry_run_prints_the_tool_command(run_cli, build):
    code, out, err = run_cli("flash", build / "stm32f405", "--dry-run")
    assert code == 0, err
    assert out.startswith("openocd -f interface/stlink.cfg -f target/stm32f4x.cfg")
    assert "intermediate/firmware/build/firmware.elf verify reset exit" in out
    code, out, err = run_cli("flash", build / "nrf51822", "--port", "/nonexistent/MICROBIT")
    assert code == 2 and "no micro:bit drive at /nonexistent/MICROBIT" in err
    assert (build / "nrf51822" / "intermediate" / "firmware" / "build" / "firmware.hex").is_file()


def test_project_needs_the_c_backend_and_a_chip(run_cli, tmp_path):
    for extra, words in ((["-t", "stm32f405"], "add --backend c"),
                         (["-t", "cortex-m55", "--backend", "c"], "no board edgec writes firmware projects for")):
        code, _, err = run_cli("compile", DIGITS_MODEL, *extra, "--project", "cmake", "--calibration",
                               DIGITS_CALIBRATION, "-o", tmp_path)
        assert code == 2 and err.count("\n") == 1 and words in err, err
        assert not any(tmp_path.iterdir())  # refused before any work


@pytest.mark.slow
@needs_mlperf
def test_mlperf_keyword_spotting_verifies_bit_exact_on_qemu_netduinoplus2(run_cli, tmp_path):
    code, _, err = run_cli("compile", MLPERF / "kws_ref_model", "-t", "stm32f405", "--backend", "c",
                           "--calibration", "random", "-o", tmp_path)
    assert code == 0, err
    code, _, err = run_cli("verify", tmp_path / "stm32f405", "--device", "qemu-netduinoplus2")
    assert code == 0, err
    result = json.loads((tmp_path / "stm32f405" / "verify.json").read_text())
    assert result["bit_exact"] is True and result["samples"] == 64 and result["mismatched_samples"] == []
    # DS-CNN's 2.7 M multiply-accumulates with the DSP kernels: above one instruction each (SMLAD
    # does two, the loads and requantization add more; 1.6 measured), below the portable C's 4.6.
    assert 1 * 2_656_000 < result["instructions_per_inference"]["p50"] < 3 * 2_656_000
