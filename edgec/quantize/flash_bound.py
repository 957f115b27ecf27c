"""Refuse a model that cannot fit a microcontroller's flash before quantizing it.

Quantizing, converting and verifying a ResNet-50 for a 1 MB part takes minutes and ends in a budget
failure that was certain from the start: int8 stores every element of every kernel in at least one
byte. That count is a lower bound of the flash the model needs, so when it alone exceeds the
budget the compile stops at once with the numbers. Compression stages that change what is stored
(LUT clustering, low-rank factorization) are not bounded this way; the check is skipped for them.
"""

from __future__ import annotations

from edgec.core.errors import GateError
from edgec.core.formats import FLASH_FORMATS
from edgec.core.targets import model_budget


def kernel_bytes(keras_model) -> int:
    """Bytes the int8 kernels of ``keras_model`` take at least: one per element of every weight of rank >= 2.

    Biases and batch-norm vectors (rank 1) are left out: batch norm is folded into the kernels, so
    counting it could overstate the bound.
    """
    weights = getattr(keras_model, "weights", None) or []  # a Keras-less SavedModel has none: bound 0
    return sum(int(w.shape.num_elements()) for w in weights if len(w.shape) >= 2)


def check(profiles: list[dict], keras_model) -> None:
    """Raise :class:`GateError` (exit 1, nothing written) when every target is a flash target that
    cannot hold the int8 kernels. With one target that can, the compile goes on and each target's
    report says whether it fits (a multi-target compile still builds the targets that fit)."""
    if keras_model is None or not profiles:
        return
    needed, over = kernel_bytes(keras_model), []
    for profile in profiles:
        flash_budget, _ = model_budget(profile)
        if profile["format"] not in FLASH_FORMATS or flash_budget is None or needed <= flash_budget:
            return
        over.append((profile["id"], flash_budget))
    target, flash_budget = over[0]
    raise GateError(f"flash: the int8 weights alone need at least {needed} B, {needed - flash_budget} B "
                    f"over the {flash_budget} B available (refused before quantizing). Try fewer "
                    "channels or smaller inputs, --clusters (LUT compression) or --low-rank, or a "
                    "bigger target", stage="budget", target=target)
