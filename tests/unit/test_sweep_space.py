"""The sweep's search space and trade-off: expansion, validation, Pareto front, best trial (no Ray, no TF)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgec.core.errors import InputError
from edgec.sweep import front as sweep_front
from edgec.sweep import run as sweep
from edgec.sweep import space as sweep_space


def test_grid_expands_every_combination_in_file_order_with_fixed_keys():
    space = sweep_space.parse({"space": {"prune": [0.0, 0.5], "clusters": [0, 4, 16]},
                               "fixed": {"finetune_epochs": 2}, "search": "grid"})
    trials = space.expand()
    assert [(t.settings["prune"], t.settings["clusters"]) for t in trials] == \
        list(itertools.product([0.0, 0.5], [0, 4, 16]))
    assert all(t.settings["finetune_epochs"] == 2 for t in trials)
    assert len({t.id for t in trials}) == 6
    assert [t.id for t in space.expand(trials=4)] == [t.id for t in trials[:4]]


def test_trial_ids_depend_on_settings_only_so_reruns_find_their_results():
    a = sweep_space.make_trial({"prune": 0.5, "clusters": 4})
    b = sweep_space.make_trial({"clusters": 4, "prune": 0.5})
    c = sweep_space.make_trial({"clusters": 8, "prune": 0.5})
    assert a.id == b.id != c.id


def test_random_search_is_seeded_and_draws_inside_the_ranges():
    data = {"search": "random", "seed": 3, "trials": 20,
            "space": {"learning_rate": {"min": 1e-5, "max": 1e-3, "log": True}, "clusters": [4, 8, 16],
                      "finetune_epochs": {"min": 1, "max": 5, "int": True}}}
    first, again = sweep_space.parse(data).expand(), sweep_space.parse(data).expand()
    assert [t.settings for t in first] == [t.settings for t in again]
    other = sweep_space.parse({**data, "seed": 4}).expand()
    assert [t.settings for t in first] != [t.settings for t in other]
    for t in first:
        assert 1e-5 <= t.settings["learning_rate"] <= 1e-3
        assert t.settings["clusters"] in (4, 8, 16)
        assert isinstance(t.settings["finetune_epochs"], int) and 1 <= t.settings["finetune_epochs"] <= 5


def test_flags_are_split_from_recipe_keys():
    trial = sweep_space.make_trial({"clusters": 4, "backend": "c"})
    assert trial.recipe == {"clusters": 4} and trial.flags == {"backend": "c"}


@pytest.mark.parametrize("data, words", [
    ({"space": {"prnue": [0.5]}}, "unknown key 'prnue'"),
    ({"space": {"prune": []}}, "has no values"),
    ({"space": {"backend": ["cmsis"]}}, "takes tflm or c"),
    ({"space": {"prune": {"min": 0.1, "max": 0.5}}}, "ranges need search"),
    ({"search": "bayes", "space": {"prune": [0.5]}}, "not one of grid, random"),
    ({"space": {}}, "needs a [space] table"),
    ({"space": {"prune": [0.5]}, "fixed": {"prune": 0.1}}, "both in [space] and [fixed]"),
    ({"space": {"prune": [0.5]}, "extra": 1}, "unknown key(s) extra"),
    ({"search": "random", "space": {"learning_rate": {"min": 0, "max": 1, "log": True}}}, "> 0 with log"),
])
def test_bad_spaces_are_refused_with_the_key_named(data, words):
    with pytest.raises(InputError) as e:
        sweep_space.parse(data)
    assert words in str(e.value)


def test_random_search_without_a_trial_count_is_refused():
    space = sweep_space.parse({"search": "random", "space": {"clusters": [4, 8]}})
    with pytest.raises(InputError, match="number of trials"):
        space.expand()


def test_invalid_recipes_are_found_before_anything_runs():
    trials = sweep_space.parse({"space": {"prune_structure": ["2:4"], "prune": [0.5, 0.7]}}).expand()
    bad = sweep_space.validate(trials)
    assert list(bad) == [trials[1].id] and "prune" in bad[trials[1].id]


def _trial(i, flash, acc, ram=1000, status="ok", latency=None):
    return {"id": f"t{i}", "recipe": {}, "flags": {}, "status": status,
            "metrics": {"flash_bytes": flash, "ram_bytes": ram, "accuracy": acc, "accuracy_drop": 0.99 - acc,
                        "latency": latency}}


def test_pareto_front_matches_brute_force_on_random_points():
    rng = np.random.default_rng(0)
    for _ in range(50):
        pts = [_trial(i, int(rng.integers(1, 20)), float(rng.integers(80, 100)) / 100, int(rng.integers(1, 5)))
               for i in range(12)]
        front = set(sweep_front.pareto(pts))

        def dominated(t):
            a = t["metrics"]
            return any(o["metrics"]["flash_bytes"] <= a["flash_bytes"] and o["metrics"]["ram_bytes"] <= a["ram_bytes"]
                       and o["metrics"]["accuracy"] >= a["accuracy"] and
                       (o["metrics"]["flash_bytes"], o["metrics"]["ram_bytes"], -o["metrics"]["accuracy"])
                       != (a["flash_bytes"], a["ram_bytes"], -a["accuracy"]) for o in pts)
        assert front == {t["id"] for t in pts if not dominated(t)}


def test_latency_is_an_objective_only_when_every_trial_measured_it():
    pts = [_trial(0, 10, 0.9, latency=5.0), _trial(1, 10, 0.9, latency=3.0)]
    assert sweep_front.pareto(pts) == ["t1"]
    pts[1]["metrics"]["latency"] = None
    assert set(sweep_front.pareto(pts)) == {"t0", "t1"}


def test_best_is_the_most_accurate_passing_trial_within_constraints():
    pts = [_trial(0, 100, 0.99), _trial(1, 50, 0.98), _trial(2, 30, 0.98), _trial(3, 20, 0.999, status="gate"),
           _trial(4, 10, 0.90)]
    assert sweep_front.best(pts)[0]["id"] == "t0"
    assert sweep_front.best(pts, max_flash=60)[0]["id"] == "t2"  # tie on accuracy: the smaller one
    assert sweep_front.best(pts, max_flash=60, max_accuracy_drop=0.005)[0] is None
    assert "meets the constraints" in sweep_front.best(pts, max_flash=5)[1]


def test_page_draws_the_front_and_lists_every_trial():
    pts = [_trial(0, 100, 0.99), _trial(1, 50, 0.98), _trial(2, 80, 0.95)]
    sweep = {"model": "m.keras", "target": "cortex-m4", "engine": {"name": "ray", "version": "2"},
             "trials": pts, "pareto": sweep_front.pareto(pts), "best": pts[0], "best_reason": ""}
    html = sweep_front.page(sweep)
    assert html.count("<circle") == 3 and html.count('fill="#d9480f"') == 2
    assert "<polyline" in html and all(t["id"] in html for t in pts)


def _report(**verification) -> dict:
    return {"verification": verification, "size": {"flash_bytes": 900}, "memory": {"arena_bytes": 300}}


def test_trial_accuracy_is_the_metric_edgec_verifies_each_kind_of_output_with():
    labelled = sweep._metrics(_report(output_kind="classifier", artifact_top1=0.95, reference_top1=0.97,
                                      top1_agreement=0.98, snr_db=20.0))
    assert (labelled["accuracy"], labelled["accuracy_metric"]) == (0.95, "top1")
    assert labelled["accuracy_drop"] == pytest.approx(0.02) and labelled["ram_bytes"] == 300
    unlabelled = sweep._metrics(_report(output_kind="classifier", top1_agreement=0.98, snr_db=20.0))
    assert (unlabelled["accuracy"], unlabelled["accuracy_metric"]) == (0.98, "top1_agreement")
    assert unlabelled["accuracy_drop"] == pytest.approx(0.02)
    # A regression or autoencoder: top-1 of 640 reconstructed values means nothing; its SNR does.
    recon = sweep._metrics(_report(output_kind="regression", top1_agreement=None, snr_db=31.25, cosine=0.999))
    assert (recon["accuracy"], recon["accuracy_metric"], recon["accuracy_drop"]) == (31.25, "snr_db", None)


def test_an_snr_sweep_is_plotted_in_db_and_refuses_a_top1_drop_constraint():
    pts = [_trial(0, 100, 30.0), _trial(1, 50, 12.5)]
    for t in pts:
        t["metrics"].update(accuracy_metric="snr_db", accuracy_drop=None)
    result = {"model": "ae.keras", "target": "cortex-m4", "engine": {"name": "ray", "version": "2"},
              "trials": pts, "pareto": sweep_front.pareto(pts), "best": pts[0], "best_reason": ""}
    page = sweep_front.page(result)
    assert "SNR vs float (dB)" in page and "accuracy (%)" not in page
    assert "30.0 dB" in page and "12.5 dB" in page and "%" not in sweep_front.format_accuracy(pts[1]["metrics"])
    assert set(result["pareto"]) == {"t0", "t1"} and sweep_front.best(pts)[0]["id"] == "t0"
    chosen, why = sweep_front.best(pts, max_accuracy_drop=0.01)
    assert chosen is None and "applies to classifiers" in why


def test_only_a_loopback_address_is_kept_on_the_loopback():
    assert all(sweep._loopback(a) for a in ("ray://127.0.0.1:10001", "127.0.0.1:6379", "localhost:6379",
                                            "ray://[::1]:10001", "127.0.0.2:6379"))
    assert not any(sweep._loopback(a) for a in ("ray://head.example:10001", "10.0.0.5:6379", "192.0.2.2:6379"))
