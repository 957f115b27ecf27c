"""The one way into TensorFlow: Keras 2 (``tf_keras``) first, so TF-MOT works.

TF-MOT 0.8 needs Keras 2; TensorFlow 2.21 defaults to Keras 3 unless ``TF_USE_LEGACY_KERAS=1`` is set
before the first import. Importing TensorFlow anywhere else risks getting Keras 3, so every module
that needs it calls :func:`tensorflow` / :func:`keras` here, lazily, which keeps ``edgec --help`` fast.
"""

from __future__ import annotations

import contextlib
import os
from functools import cache


def _quiet_environment() -> None:
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    # TensorFlow's C++ logging goes to fd 2 and drowns edgec's one-line errors.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # oneDNN reorders float sums: not reproducible
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")  # no accelerator: skip the CUDA probe and its error


@contextlib.contextmanager
def _stderr_silenced():
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@cache
def tensorflow():
    """Return the ``tensorflow`` module, imported with Keras 2 selected."""
    _quiet_environment()
    with _stderr_silenced():  # absl prints a banner to fd 2 at import, before any log level applies
        import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    return tf


@cache
def keras():
    """Return ``tf_keras`` (Keras 2), the Keras that TF-MOT and the TFLite converter expect."""
    tensorflow()
    import tf_keras

    return tf_keras


@cache
def keras3():
    """Return Keras 3 (the ``keras`` package), for reading files Keras 3 wrote.

    ``TF_USE_LEGACY_KERAS=1`` only redirects ``tf.keras``; ``import keras`` still gives Keras 3, a
    separate package that can live in the same process as ``tf_keras``. TensorFlow is imported first
    so that the environment above is set before either Keras sees it.
    """
    tensorflow()
    import keras as keras_3

    return keras_3


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and TensorFlow and make TF ops deterministic."""
    import random

    import numpy as np

    tf = tensorflow()
    random.seed(seed)
    np.random.seed(seed)
    tf.random.set_seed(seed)
    keras().utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except (AttributeError, RuntimeError):  # older TF, or already-initialized context
        pass
