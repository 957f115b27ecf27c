"""LUT compression of clustered weights: smaller, decoded values identical, bit-exact in TFLite Micro."""

from __future__ import annotations

import numpy as np
import pytest

from compression_support import digits_data, digits_model, int8_tflite, quantize_inputs

pytestmark = pytest.mark.toolchain


@pytest.fixture(scope="module")
def artifacts():
    from edgec.compress import cluster
    from edgec.compress import prune
    from edgec.compress.fuse import fuse
    from edgec.core.tf import seed_everything

    seed_everything(0)
    fused, _ = fuse(digits_model())
    wrapped, _ = prune.prune(fused, sparsity=0.5)
    prune.apply_masks(wrapped)
    clustered, _ = cluster.cluster(prune.strip(wrapped), clusters=8, preserve_sparsity=True)
    cal = digits_data()["cal_x"]
    return {"plain": int8_tflite(fused, cal), "clustered": int8_tflite(cluster.strip(clustered), cal)}


def test_lut_compression_shrinks_clustered_model_and_is_bit_exact_in_tflm(artifacts):
    from edgec.compress import lut
    from edgec.report.artifact_stats import stats

    before = artifacts["clustered"]
    samples = quantize_inputs(before, digits_data()["eval_x"][:40])
    after, report = lut.compress(before, samples)
    assert report["bit_exact_samples"] == 40 and report["bytes_after"] == len(after) < len(before)
    kept = {t["name"].split("/")[-2]: t for t in report["tensors"] if t["kept"]}
    assert set(kept) == {"conv2", "fc1"} and all(t["bits"] == 3 for t in kept.values())  # 8 clusters
    # Small tensors (conv1, dwconv, probs) would grow the file: left alone, with the reason.
    assert all("grows" in t["reason"] for t in report["tensors"] if not t["kept"])
    # The decoded weights in the compressed file are exactly the uncompressed int8 weights.
    rows_before, rows_after = stats(before)["layers"], stats(after)["layers"]
    assert [r["lut_compressed"] for r in rows_after] == [False, True, False, True, False]
    for a, b in zip(rows_before, rows_after):
        for key in ("sparsity", "unique_values_max_per_channel"):
            assert a[key] == b[key], (a["name"], key)
    assert stats(after)["bytes"]["lut_tables_bytes"] > 0


def test_unclustered_weights_are_left_uncompressed(artifacts):
    from edgec.compress import lut

    plain = artifacts["plain"]
    out, report = lut.compress(plain, quantize_inputs(plain, digits_data()["eval_x"][:2]))
    assert out == plain and report["bytes_after"] == report["bytes_before"]
    assert all(not t["kept"] for t in report["tensors"])


def test_outputs_that_differ_in_tflm_fail_the_bit_exact_gate(artifacts):
    from edgec.compress import lut
    from edgec.core.errors import GateError

    samples = quantize_inputs(artifacts["plain"], digits_data()["eval_x"][:20])
    with pytest.raises(GateError, match="differs") as err:
        lut.check_bit_exact(artifacts["plain"], artifacts["clustered"], samples)
    assert err.value.exit_code == 1


def test_decode_lut_inverts_the_tflm_packing():
    from tflite_micro.tensorflow.lite.micro.compression import lut as tflm_lut
    from tflite_micro.tensorflow.lite.micro.compression.decode import DecodeCommonMetadata, DecodeType

    from edgec.report.artifact_stats import decode_lut

    rng = np.random.default_rng(0)
    w = rng.choice(np.array([-90, -3, 0, 7, 55], np.int8), size=(6, 5))
    c = tflm_lut.compress_array(w, 0)
    stride = max(len(t) for t in c.lookup_tables)
    anc = tflm_lut.LutAncillaryData(bitwidth=3, axis=0, value_table_stride=stride,
                                    value_tables=tflm_lut.pack_lookup_tables(c.lookup_tables, stride))
    blob = DecodeCommonMetadata(decode_type=DecodeType.LUT, user_data=anc.to_user_data()).to_bytes() + anc.to_bytes()
    encoded = np.frombuffer(tflm_lut.pack_indices(c.indices, 3), np.uint8)
    assert np.array_equal(decode_lut(encoded, np.frombuffer(blob, np.uint8), w.shape, np.int8), w)


def test_decoded_weights_cost_arena_and_a_budget_keeps_the_biggest_uncompressed(artifacts):
    from edgec.compress import lut

    model = artifacts["clustered"]
    samples = quantize_inputs(model, digits_data()["eval_x"][:10])
    _, free = lut.compress(model, samples)
    # DECODE materializes fc1's 65,536 int8 weights in the arena: measured, not assumed.
    assert free["arena_bytes_after"] >= free["arena_bytes_before"] + 48 * 1024
    budget = free["arena_bytes_before"] + 32 * 1024  # room for conv2's 18,432 decoded bytes, not fc1's
    out, report = lut.compress(model, samples, arena_budget=budget)
    kept = {t["name"].split("/")[-2] for t in report["tensors"] if t["kept"]}
    assert kept == {"conv2"} and report["arena_bytes_after"] <= budget and len(out) < len(model)
    assert report["bit_exact_samples"] == 10
