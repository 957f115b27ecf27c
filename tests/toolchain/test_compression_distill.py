"""Recovery fine-tuning: distillation on unlabeled samples wins back accuracy lost to pruning."""

from __future__ import annotations

import numpy as np
import pytest

from compression_support import digits_data, digits_model, int8_tflite, tflm_top1

pytestmark = pytest.mark.toolchain


def _pruned(sparsity: float):
    from edgec.compress import prune
    from edgec.compress.fuse import fuse
    from edgec.core.tf import seed_everything

    seed_everything(0)
    fused, _ = fuse(digits_model())
    wrapped, names = prune.prune(fused, sparsity=sparsity, keep_first_last=False)
    prune.apply_masks(wrapped)
    return wrapped, names


def test_distillation_without_labels_recovers_accuracy_lost_by_pruning():
    from edgec.compress import finetune
    from edgec.compress import prune

    d = digits_data()
    float_top1 = np.mean(digits_model().predict(d["eval_x"], verbose=0).argmax(1) == d["eval_y"])
    wrapped, names = _pruned(0.8)
    pruned_top1 = np.mean(prune.strip(wrapped).predict(d["eval_x"], verbose=0).argmax(1) == d["eval_y"])
    assert pruned_top1 < float_top1 - 0.3  # one-shot 80% pruning breaks the model
    # Only the unlabeled calibration images: no label reaches the student.
    student, report = finetune.finetune(wrapped, x=d["cal_x"], teacher=digits_model(), epochs=10, seed=0,
                                        callbacks=prune.callbacks())
    assert report["mode"] == "distillation" and report["temperature"] > 1
    stripped = prune.strip(student)
    assert min(prune.kernel_sparsity(stripped, names).values()) >= 0.79  # the masks held
    artifact_top1 = np.mean(tflm_top1(int8_tflite(stripped, d["cal_x"]), d["eval_x"]) == d["eval_y"])
    assert artifact_top1 >= float_top1 - 0.03, (float_top1, pruned_top1, artifact_top1)


def test_supervised_finetuning_is_used_when_labels_are_given_and_is_seeded():
    from edgec.compress import finetune
    from edgec.compress import prune

    d = digits_data()
    results = []
    for _ in range(2):
        wrapped, _ = _pruned(0.8)
        model, report = finetune.finetune(wrapped, x=d["cal_x"][:128], y=d["cal_y"][:128], epochs=2, seed=3,
                                          callbacks=prune.callbacks())
        results.append((report["mode"], report["final_loss"], prune.strip(model).get_weights()[2].sum()))
    assert results[0][0] == "supervised" and results[0] == results[1]


def test_distillation_without_a_teacher_is_an_input_error():
    from edgec.compress import finetune
    from edgec.core.errors import InputError

    with pytest.raises(InputError, match="teacher"):
        finetune.finetune(digits_model(), x=digits_data()["cal_x"][:8], epochs=1)
