"""Fuzz the calibration readers (edgec.core.calibration_load, edgec.core.calibration) for the digits model's input.

The first byte picks the form (.npz, .npy, .csv, a one-image folder); the rest is the file.
"""

from __future__ import annotations

import shutil

from harness import MAX_INPUT, SCRATCH, expect_refusal, run, scratch_file

INPUTS = {"image": ((8, 8, 1), "float32")}
FORMS = ("data.npz", "data.npy", "data.csv", "images/0/a.png")


def read_all(spec) -> None:
    from edgec.core.calibration_load import open_dataset, split

    dataset = open_dataset(spec, INPUTS)
    dataset.validate()
    _ = dataset.labels
    if len(dataset) >= 2:
        split(dataset)


def test_one_input(data: bytes) -> None:
    if not data or len(data) > MAX_INPUT:
        return
    form = FORMS[data[0] % len(FORMS)]
    if form.startswith("images/"):
        shutil.rmtree(SCRATCH / "images", ignore_errors=True)
        (SCRATCH / "images" / "0").mkdir(parents=True)
        scratch_file(form, data[1:])
        expect_refusal(read_all, SCRATCH / "images")
    else:
        expect_refusal(read_all, scratch_file(form, data[1:]))


if __name__ == "__main__":
    run(test_one_input, ["edgec.core.calibration_load", "edgec.core.calibration"])
