"""Verification that fits each output (edgec/core/metrics.py) on real compiles: a reconstruction model by
SNR/cosine, every output of a multi-output model in the Keras model's order."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

pytestmark = pytest.mark.toolchain


def _anomaly_detection_autoencoder(path):
    """MLPerf Tiny's AD model: 640 in, Dense 128 x4, Dense 8, Dense 128 x4 (BN + ReLU each), Dense 640."""
    from edgec.core.tf import keras

    k = keras()
    k.utils.set_random_seed(0)
    x = inputs = k.Input((640,), name="features")
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = k.layers.ReLU()(k.layers.BatchNormalization()(k.layers.Dense(units)(x)))
    model = k.Model(inputs, k.layers.Dense(640)(x))
    data = np.random.RandomState(0).normal(0, 1, (264, 640)).astype(np.float32)
    model.compile("adam", "mse")
    model.fit(data[:200], data[:200], epochs=2, batch_size=32, verbose=0)  # BN statistics that are not 0/1
    model.save(path)
    return data[200:]


def test_anomaly_detection_autoencoder_verifies_on_snr_and_cosine(run_cli, tmp_path):
    calib = _anomaly_detection_autoencoder(tmp_path / "ad.h5")
    np.savez(tmp_path / "calib.npz", features=calib)
    code, out, err = run_cli("compile", tmp_path / "ad.h5", "-t", "cortex-m4", "--calibration", tmp_path / "calib.npz",
                             "-o", tmp_path / "out")
    assert code == 0, err
    ver = json.loads((tmp_path / "out" / "cortex-m4" / "report.json").read_text())["verification"]
    (recon,) = ver["outputs"]
    assert recon["kind"] == ver["output_kind"] == "regression" and recon["shape"] == [640]
    assert recon["snr_db"] == ver["snr_db"] >= 20.0 and recon["cosine"] >= 0.98 and recon["max_abs_err"] > 0
    assert ver["top1_agreement"] is None and "not a classifier" in ver["top1_note"] and ver["passed"]
    assert "SNR" in out
    code, out, err = run_cli("verify", tmp_path / "out" / "cortex-m4")  # the verify command judges it alike
    again = json.loads((tmp_path / "out" / "cortex-m4" / "verify.json").read_text())
    assert code == 0 and again["snr_db"] == ver["snr_db"] and f"SNR {ver['snr_db']:.1f} dB" in out, err
    code, _, err = run_cli("compile", tmp_path / "ad.h5", "-t", "cortex-m4", "--calibration", tmp_path / "calib.npz",
                           "-o", tmp_path / "drop", "--max-accuracy-drop", "0.01")
    assert code == 2 and "--max-accuracy-drop measures a top-1 drop" in err.strip().splitlines()[-1]


def test_every_output_of_a_multi_output_model_is_verified_in_keras_order(run_cli, tmp_path):
    """The converter orders outputs by name (a_box before z_probs); verification pairs them by signature."""
    from edgec.core.tf import keras

    k = keras()
    k.utils.set_random_seed(0)
    x = k.Input((16,), name="x")
    h = k.layers.Dense(32, activation="relu")(x)
    model = k.Model(x, [k.layers.Dense(5, activation="softmax", name="z_probs")(h), k.layers.Dense(3, name="a_box")(h)])
    model.save(tmp_path / "two.h5")
    np.savez(tmp_path / "calib.npz", x=np.random.RandomState(0).normal(0, 1, (80, 16)).astype(np.float32))
    code, _, err = run_cli("compile", tmp_path / "two.h5", "-t", "cortex-m4", "--calibration", tmp_path / "calib.npz",
                           "-o", tmp_path / "out")
    assert code == 0, err
    ver = json.loads((tmp_path / "out" / "cortex-m4" / "report.json").read_text())["verification"]
    probs, box = ver["outputs"]
    assert (probs["name"], probs["kind"], probs["shape"]) == ("z_probs", "classifier", [5])
    assert (box["name"], box["kind"], box["shape"]) == ("a_box", "regression", [3])
    assert probs["top1_agreement"] >= 0.9 and "top1_agreement" not in box
    assert box["snr_db"] >= 20 and box["cosine"] >= 0.98 and ver["top1_agreement"] == probs["top1_agreement"]
    assert all(len(c["snr_db"]) == 2 and min(c["snr_db"]) > 30 for c in ver["cross_check"].values())
    page = (tmp_path / "out" / "cortex-m4" / "report.html").read_text()
    rows = re.findall(r"<tr>(.*?)</tr>", page, re.S)  # the per-output rows of the verification table
    assert any("<td>z_probs</td>" in r and "<td>classifier</td>" in r for r in rows), page
    assert any("<td>a_box</td>" in r and "<td>regression</td>" in r for r in rows), page
