"""Recovery fine-tuning after pruning/clustering: supervised, distilled, or quantization-aware.

With labels, ordinary fine-tuning (sparse categorical cross-entropy). Without labels (the usual case:
calibration samples only), knowledge distillation from the float model: the student learns the
teacher's temperature-softened distribution, ``T^2 * KL(softmax(z_t/T) || softmax(z_s/T))`` (Hinton
et al.). Models ending in a softmax give probabilities; their logits are recovered as ``log(p)``,
which equals the logits up to a constant and so gives the same softened distribution. With labels
and a ``label_weight`` w in (0, 1), both: ``(1 - w) * distillation + w * cross-entropy``.

Options a longer recovery needs (ResNet-8 on all of CIFAR-10): a cosine-decaying learning rate, and
image augmentation (random shifts of up to 1/8 of the side, edge-padded, and horizontal flips),
drawn anew every epoch with the teacher's targets recomputed on the augmented images.

Training goes through ``model.fit`` so TF-MOT's wrappers behave as documented (pruning masks follow
the :func:`edgec.compress.prune.callbacks` step; clustering wrappers train the centroids). Seeded; a ``rich``
progress bar shows the batches.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from edgec.compress.prune import tfmot
from edgec.core.errors import InputError
from edgec.core.tf import keras, seed_everything, tensorflow

log = logging.getLogger(__name__)

QAT_MODES = ("plain", "prune_preserve", "cluster_preserve", "pcqat")


def _is_probability(y: np.ndarray) -> bool:
    return bool(y.ndim == 2 and np.all(y >= 0) and np.allclose(y.sum(axis=1), 1.0, atol=1e-3))


def _softened(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def _logits(y: np.ndarray, probabilities: bool) -> np.ndarray:
    return np.log(np.clip(y, 1e-7, 1.0)) if probabilities else y


def distillation_loss(temperature: float, probabilities: bool):
    """Keras loss: ``y_true`` are the teacher's softened probabilities, ``y_pred`` the student output."""
    tf = tensorflow()

    def loss(y_true, y_pred):
        logits = tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1.0)) if probabilities else y_pred
        log_student = tf.nn.log_softmax(logits / temperature, axis=-1)
        kl = tf.reduce_sum(y_true * (tf.math.log(tf.clip_by_value(y_true, 1e-12, 1.0)) - log_student), axis=-1)
        return kl * temperature ** 2

    return loss


def mixed_loss(temperature: float, probabilities: bool, label_weight: float):
    """Keras loss for distillation plus hard labels: ``y_true`` is the teacher's softened
    probabilities with the integer label appended as one more column."""
    tf = tensorflow()
    distill = distillation_loss(temperature, probabilities)
    cross_entropy = keras().losses.SparseCategoricalCrossentropy(from_logits=not probabilities,
                                                                 reduction="none")

    def loss(y_true, y_pred):
        soft, label = y_true[:, :-1], tf.cast(y_true[:, -1], tf.int32)
        return (1.0 - label_weight) * distill(soft, y_pred) + label_weight * cross_entropy(label, y_pred)

    return loss


def augmentable(x) -> str | None:
    """Why ``x`` cannot take image augmentation (None when it can: one NHWC array of 8x8 or more)."""
    if isinstance(x, dict):
        if len(x) != 1:
            return f"the model has {len(x)} inputs; augmentation takes one image input"
        x = next(iter(x.values()))
    shape = np.shape(x)
    if len(shape) != 4 or shape[1] < 8 or shape[2] < 8:
        return f"the input is {list(shape[1:])} per sample, not an image (height, width >= 8, channels)"
    return None


def require_augmentable(x, augment: str, stage: str) -> None:
    """Raise :class:`InputError` (exit 2) when ``augment`` is set and ``x`` is no image input."""
    why = augmentable(x) if augment != "none" else None
    if why is not None:
        raise InputError(f"augment = {augment!r}: {why}; use augment = \"none\"", stage=stage)


def augment_images(x: np.ndarray, rng: np.random.Generator, *, flip: bool) -> np.ndarray:
    """Random shifts of up to 1/8 of each side (edge padding: no black borders the model never saw)
    and, with ``flip``, random horizontal flips; one draw per image from ``rng``."""
    n, h, w = x.shape[:3]
    ph, pw = max(1, h // 8), max(1, w // 8)
    padded = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)), mode="edge")
    dy, dx = rng.integers(0, 2 * ph + 1, n), rng.integers(0, 2 * pw + 1, n)
    out = np.empty_like(x)
    for i in range(n):
        out[i] = padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    if flip:
        flipped = rng.random(n) < 0.5
        out[flipped] = out[flipped, :, ::-1]
    return out


def _progress_callback(epochs: int, steps: int, label: str):
    """A Keras callback driving a ``rich`` progress bar over all batches."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    class RichProgress(keras().callbacks.Callback):
        # One bar over all epochs, also when they run as one ``fit`` call each (augmentation).
        def on_train_begin(self, logs=None):
            if getattr(self, "bar", None) is not None:
                return
            self.bar = Progress(TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.fields[loss]}"),
                                TimeRemainingColumn(), transient=True, console=Console(stderr=True))
            self.task = self.bar.add_task(label, total=epochs * steps, loss="")
            self.done = 0
            self.bar.start()

        def on_train_batch_end(self, batch, logs=None):
            self.done += 1
            self.bar.update(self.task, advance=1, loss=f"loss {float((logs or {}).get('loss', 0.0)):.4f}")

        def on_train_end(self, logs=None):
            if self.done >= epochs * steps:
                self.bar.stop()

    return RichProgress()


def _as_inputs(x):
    """Training inputs as Keras takes them: one array, or a dict by input name for several inputs."""
    if isinstance(x, dict):
        if len(x) == 1:
            return np.asarray(next(iter(x.values())), np.float32)
        return {k: np.asarray(v, np.float32) for k, v in x.items()}
    return np.asarray(x, np.float32)


def _head(inputs, n: int):
    """The first ``n`` samples of one input array or of each input of a dict."""
    return {a: b[:n] for a, b in inputs.items()} if isinstance(inputs, dict) else inputs[:n]


def finetune(model, *, x, y: np.ndarray | None = None, teacher=None, epochs: int = 3, batch_size: int = 32,
             learning_rate: float = 1e-3, temperature: float = 4.0, seed: int = 0,
             callbacks: list | None = None, label_weight: float = 1.0, lr_schedule: str = "constant",
             augment: str = "none") -> tuple[object, dict]:
    """Fine-tune ``model`` in place and return it with a report.

    With ``y`` (integer class labels) and ``label_weight`` 1: supervised. Without ``y``: distillation
    from ``teacher`` (required then) at ``temperature``. With ``y`` and ``label_weight`` in (0, 1):
    both, weighted. ``lr_schedule`` is ``constant`` or ``cosine`` (to zero over all steps);
    ``augment`` is ``none``, ``shift`` or ``shift-flip`` (see :func:`augment_images`). ``callbacks``
    are extra Keras callbacks (e.g. the pruning step). The report holds the mode, epochs, samples,
    final loss and seconds.
    """
    if epochs <= 0:
        return model, {"mode": "none", "epochs": 0}
    inputs = _as_inputs(x)
    n = len(next(iter(inputs.values()))) if isinstance(inputs, dict) else len(inputs)
    if n == 0:
        raise InputError("fine-tuning needs at least one training sample", stage="finetune")
    if len(model.outputs) != 1:
        raise InputError("fine-tuning supports single-output models; disable it (finetune_epochs = 0)",
                         stage="finetune")
    require_augmentable(inputs, augment, "finetune")
    seed_everything(seed)
    k = keras()
    if y is not None and label_weight >= 1.0:
        mode, labels = "supervised", np.asarray(y)
        loss = k.losses.SparseCategoricalCrossentropy(from_logits=not _is_probability(
            model.predict(_head(inputs, 8), verbose=0)))
    else:
        if teacher is None:
            raise InputError("distillation without labels needs the float model as teacher", stage="finetune")
        mode, labels = ("distillation", None) if y is None else ("distillation+labels", np.asarray(y))
        # Decided once, so the loss and every epoch's targets read the teacher's output alike.
        probabilities = _is_probability(np.asarray(teacher.predict(_head(inputs, 256), verbose=0), np.float32))
        loss = (distillation_loss(temperature, probabilities) if labels is None
                else mixed_loss(temperature, probabilities, label_weight))

    def targets(batch_inputs):
        if mode == "supervised":
            return labels
        out = np.asarray(teacher.predict(batch_inputs, batch_size=256, verbose=0), np.float32)
        soft = _softened(_logits(out, probabilities), temperature)
        return soft if labels is None else np.concatenate([soft, labels.reshape(-1, 1).astype(np.float32)], 1)

    steps = -(-n // batch_size)
    rate = (k.optimizers.schedules.CosineDecay(learning_rate, decay_steps=epochs * steps)
            if lr_schedule == "cosine" else learning_rate)
    model.compile(optimizer=k.optimizers.Adam(rate), loss=loss)
    all_callbacks = list(callbacks or []) + [_progress_callback(epochs, steps, f"finetune ({mode})")]
    start = time.monotonic()
    if augment == "none":
        history = model.fit(inputs, targets(inputs), epochs=epochs, batch_size=batch_size, shuffle=True,
                            verbose=0, callbacks=all_callbacks)
        losses = history.history["loss"]
    else:
        # A fresh draw each epoch, the teacher's targets computed on it; one optimizer (and learning
        # rate schedule) across the epochs' fit calls.
        rng, losses = np.random.default_rng(seed), []
        for epoch in range(epochs):
            x_epoch = augment_images(inputs, rng, flip=augment == "shift-flip")
            history = model.fit(x_epoch, targets(x_epoch), initial_epoch=epoch, epochs=epoch + 1,
                                batch_size=batch_size, shuffle=True, verbose=0, callbacks=all_callbacks)
            losses += history.history["loss"]
    report = {"mode": mode, "epochs": epochs, "samples": n, "batch_size": batch_size,
              "learning_rate": learning_rate, "final_loss": round(float(losses[-1]), 6),
              "seconds": round(time.monotonic() - start, 3)}
    if lr_schedule != "constant":
        report["lr_schedule"] = lr_schedule
    if augment != "none":
        report["augment"] = augment
    if mode != "supervised":
        report["temperature"] = temperature
    if mode == "distillation+labels":
        report["label_weight"] = label_weight
    log.info("finetune: %s, %d epochs on %d samples, loss %.4f", mode, epochs, n, report["final_loss"])
    return model, report


def quantize_aware(model, *, mode: str = "plain"):
    """Wrap ``model`` for quantization-aware training with TF-MOT.

    ``mode``: ``plain`` (``quantize_model``), ``prune_preserve`` (sparsity-preserving QAT),
    ``cluster_preserve`` (cluster-preserving QAT) or ``pcqat`` (sparsity- and cluster-preserving).
    Pass a stripped model. Train the result with :func:`finetune`, then convert it with the TFLite
    converter (``Optimize.DEFAULT``, int8) as usual: QAT only makes the weights robust to int8.
    """
    q = tfmot().quantization.keras
    if mode not in QAT_MODES:
        raise InputError(f"unknown QAT mode {mode!r}; use one of {', '.join(QAT_MODES)}", stage="finetune")
    if mode == "plain":
        return q.quantize_model(model)
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (
        default_8bit_cluster_preserve_quantize_scheme as cqat)
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.prune_preserve import (
        default_8bit_prune_preserve_quantize_scheme as pqat)

    schemes = {
        "prune_preserve": lambda: pqat.Default8BitPrunePreserveQuantizeScheme(),
        "cluster_preserve": lambda: _cluster_preserve_scheme(cqat, preserve_sparsity=False),
        "pcqat": lambda: _cluster_preserve_scheme(cqat, preserve_sparsity=True),
    }
    annotated = q.quantize_annotate_model(model)
    return q.quantize_apply(annotated, schemes[mode]())


def _cluster_preserve_scheme(cqat, *, preserve_sparsity: bool):
    """``Default8BitClusterPreserveQuantizeScheme`` with one weight quantizer per layer.

    TF-MOT 0.8's registry shares one quantizer object per config type among all layers, and the
    first layer without zero weights (e.g. an unpruned first layer) switches sparsity preservation
    off for every later layer: PCQAT then silently loses the pruned zeros (measured on the digits
    model: fc1 went from 50% to 0% sparsity). Re-creating the quantizers for each layer avoids it.
    """
    from tensorflow_model_optimization.python.core.quantization.keras.collab_opts.cluster_preserve import (
        cluster_preserve_quantize_registry as registry)

    class PerLayerRegistry(registry.Default8bitClusterPreserveQuantizeRegistry):
        def get_quantize_config(self, layer):
            registry.ClusterPreserveQuantizeRegistry.__init__(self, preserve_sparsity)
            return super().get_quantize_config(layer)

    class Scheme(cqat.Default8BitClusterPreserveQuantizeScheme):
        def get_quantize_registry(self):
            return PerLayerRegistry(self.preserve_sparsity)

    return Scheme(preserve_sparsity=preserve_sparsity)
