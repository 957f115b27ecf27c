"""Verification on a host whose int8 arithmetic differs from the target's (a VNNI target on AVX2).

The AVX2 host is forced with ``ONEDNN_MAX_CPU_ISA=AVX2``, which OpenVINO's oneDNN honours (see
test_int8_saturation.py) and edgec's host detection follows; each compile runs in its own process
because oneDNN reads the variable once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import DIGITS_CALIBRATION, DIGITS_EVAL, DIGITS_MODEL, ROOT

pytestmark = pytest.mark.toolchain


def _edgec(*args, cap: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    if cap:
        env["ONEDNN_MAX_CPU_ISA"] = cap
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "edgec", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=900)


def test_vnni_target_on_an_avx2_host_verifies_a_twin_and_says_so(tmp_path):
    common = ["compile", DIGITS_MODEL, "-t", "intel-cpu", "--calibration", DIGITS_CALIBRATION, "--eval", DIGITS_EVAL]
    forced = _edgec(*common, "-o", tmp_path / "avx2", cap="AVX2")
    assert forced.returncode == 0, forced.stderr
    assert "can saturate the int8 dot products that the target (avx512_vnni)" in forced.stderr
    folder = tmp_path / "avx2" / "intel-cpu"
    report = json.loads((folder / "report.json").read_text())
    section = report["int8_arithmetic"]
    assert section["host_isa"] == "avx2" and section["target_isa"] == "avx512_vnni"
    assert not section["host_reproduces"] and section["verified"] == "intermediate/host_twin/model.xml"
    assert report["verification"]["verified_artifact"] == section["verified"]
    shipped = section["shipped_on_host"]
    assert 0 <= shipped["top1_agreement"] <= 1 and "host-limited" in shipped["note"]
    assert report["openvino"]["overflow_fix"] == "disable"  # the shipped artifact is still the VNNI one
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["host"] == {"host_isa": "avx2", "target_isa": "avx512_vnni", "host_reproduces": False}

    verified = _edgec("verify", folder, cap="AVX2")
    assert verified.returncode == 0, verified.stderr
    assert json.loads((folder / "verify.json").read_text())["int8_arithmetic"]["verified"] == section["verified"]

