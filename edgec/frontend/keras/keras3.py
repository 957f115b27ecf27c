"""Front end for Keras 3 files: scan safely, load in Keras 3, rebuild in ``tf_keras``, check they agree.

TensorFlow 2.21 installs Keras 3, but TF-MOT (pruning, clustering) and the rest of the pipeline need
a ``tf_keras`` (Keras 2) model. ``tf_keras`` cannot read Keras 3 files, so a Keras 3 ``.keras`` or
``.h5`` is handled in four steps:

1. the saved config is scanned before anything is deserialized, against Keras 3's own built-in names
   (Keras 3 records ``module`` and ``registered_name`` for every object); ``compile_config``
   (optimizer, loss, metrics) is skipped, since those are not layers and never reach the pipeline;
2. the file is loaded by Keras 3 itself (:func:`edgec.core.tf.keras3`: ``import keras`` gives Keras 3 as
   a separate package even when ``TF_USE_LEGACY_KERAS=1`` has made ``tf.keras`` mean ``tf_keras``),
   so Keras 3 reads its own weights format and gives the reference model;
3. the architecture is translated to a ``tf_keras`` config (:mod:`edgec.frontend.keras.keras3_config`) and the
   weights are copied layer by layer, by name, with their shapes checked;
4. the pipeline checks that both models give the same outputs on the calibration samples
   (:func:`check_on_calibration`); the first layer whose outputs differ is named in the error.

SavedModels without Keras metadata (what Keras 3's ``model.export()`` writes) hold no layer graph:
their serving signature is wrapped in a one-layer ``tf_keras`` model (:func:`load_savedmodel`),
which the TFLite converter and tf2onnx trace through. Compression stages need Keras layers, so the
pipeline refuses them on such a model (see ``SIGNATURE_LAYER``).
"""

from __future__ import annotations

import json
import logging
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from edgec.core.errors import InputError
from edgec.core.metrics import range_relative_error
from edgec.core.tf import keras, keras3, tensorflow
from edgec.frontend.keras.keras3_config import rebuild

log = logging.getLogger(__name__)

STAGE = "load"
SIGNATURE_LAYER = "saved_model_signature"  # the one layer of a wrapped SavedModel signature
# Rebuilt and original run the same TensorFlow kernels; allow only float rounding differences
# (relative to the output's range), so a wrong weight order or a dropped option cannot pass.
REBUILD_TOLERANCE = 1e-5
# Keras 3 serializes these with a class_name, but they are not layers or objects with code.
_STRUCTURAL = {"Functional", "Sequential", "Model", "DTypePolicy", "FloatDTypePolicy", "function"}


def keras_version(path: Path, kind: str) -> str:
    """The ``keras_version`` a ``.keras`` or ``.h5`` file records ("" when absent or unreadable)."""
    try:
        if kind == "keras":
            with zipfile.ZipFile(path) as z:
                meta = json.loads(z.read("metadata.json"))
                return str(meta.get("keras_version", "")) if isinstance(meta, dict) else ""
        import h5py

        with h5py.File(path, "r") as f:
            value = f.attrs.get("keras_version", "")
            return value.decode() if isinstance(value, bytes) else str(value)
    except (KeyError, zipfile.BadZipFile, OSError, json.JSONDecodeError, UnicodeDecodeError):
        return ""  # the regular loader reports corrupt files with its own message


def is_keras3(path: Path, kind: str) -> bool:
    """Whether a ``.keras`` / ``.h5`` file was written by Keras 3."""
    return kind in ("keras", "h5") and keras_version(path, kind).startswith("3")


def is_plain_savedmodel(path: Path) -> bool:
    """A SavedModel folder that holds no Keras model (e.g. Keras 3 ``model.export()``).

    Keras 2 marks the root object of the graph ``_tf_keras_model`` / ``_tf_keras_network`` /
    ``_tf_keras_sequential`` (older SavedModels have no ``keras_metadata.pb``, so the marker is what
    tells them apart); Keras 3's export archive and plain ``tf.Module`` are ``_generic_user_object``.
    """
    tensorflow()  # the protobuf classes come with TensorFlow
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString((path / "saved_model.pb").read_bytes())
    except (DecodeError, OSError):
        return False  # the regular loader reports unreadable SavedModels with its own message
    if not saved.meta_graphs or not saved.meta_graphs[0].object_graph_def.nodes:
        return False
    root = saved.meta_graphs[0].object_graph_def.nodes[0]
    return not root.user_object.identifier.startswith("_tf_keras")


def _objects(config: Any, layer: str = "?"):
    """Yield (object, enclosing layer name) for every serialized object (a dict with ``class_name``)
    in a config, outside compile_config."""
    if isinstance(config, dict):
        if "class_name" in config and "config" in config:
            inner = config["config"]
            if isinstance(inner, dict) and "name" in inner:
                layer = str(inner["name"])
            yield config, layer
        for key, value in config.items():
            if key != "compile_config":  # optimizer, loss and metrics are not layers
                yield from _objects(value, layer)
    elif isinstance(config, list):
        for value in config:
            yield from _objects(value, layer)


def _builtin_names(keras3) -> set[str]:
    names = set(_STRUCTURAL)
    for module in (keras3.layers, keras3.initializers, keras3.regularizers, keras3.constraints,
                   keras3.activations):
        names |= {n for n in dir(module) if not n.startswith("_")}
    return names


def _keras_op(module: Any, cls: str) -> bool:
    """A Keras 3 operation class (``keras.src.ops.numpy.Add``: ``x + 3.0`` in a functional model).

    Looked up in modules Keras has already imported, so nothing named by the file is imported.
    """
    loaded = sys.modules.get(str(module)) if str(module).startswith("keras.src.ops.") else None
    return loaded is not None and isinstance(getattr(loaded, cls, None), type)


def check_layers(config: dict, path: Path, trust_model: bool) -> None:
    """Refuse Lambda layers and non-built-in classes in a Keras 3 config unless ``trust_model``.

    An object is built-in when Keras 3 exports its class name, its ``module`` (when recorded) is a
    ``keras`` module and it has no ``registered_name`` of its own ("package>Name" marks a registered
    custom class). Activation functions saved as a "function" object must be Keras' own too.
    """
    if trust_model:
        return

    builtin = _builtin_names(keras3())
    for obj, name in _objects(config):
        cls = str(obj["class_name"])
        if cls.startswith("__"):  # "__keras_tensor__", "__tuple__": structure, not code
            continue
        inner = obj["config"]
        if cls == "Lambda":
            raise InputError(f"{path}: layer '{name}' is a Lambda layer, which runs Python code stored in the "
                             "model; refused (pass --trust-model if you trust this file)", stage=STAGE)
        module = obj.get("module")
        keras_module = module is None or module == "keras" or str(module).startswith("keras.")
        registered = obj.get("registered_name")
        own_name = registered in (None, cls) or (cls == "function" and registered == "function")
        known = (cls in builtin and (cls != "function" or str(inner) in builtin)) or _keras_op(module, cls)
        if not (keras_module and own_name and known):
            what = f"custom class '{cls}'" if cls != "function" else f"custom function '{inner}'"
            raise InputError(f"{path}: layer '{name}' uses {what}, not a built-in Keras layer; refused "
                             "(pass --trust-model to load it with its code importable)", stage=STAGE)


def load(path: Path, kind: str, *, trust_model: bool) -> tuple[Any, Any, str]:
    """Load a Keras 3 file; return (rebuilt ``tf_keras`` model, Keras 3 model, Keras version).

    The caller has scanned the config with :func:`check_layers` first.
    """
    version = keras_version(path, kind)
    k3 = keras3()
    try:
        original = k3.saving.load_model(path, compile=False, safe_mode=not trust_model)
    except Exception as e:  # Keras 3 raises many types for files it cannot read
        text = " ".join(str(e).split())[:200]
        raise InputError(f"{path}: Keras {version} cannot load it ({type(e).__name__}: {text})",
                         stage=STAGE) from None
    if type(original).__name__ not in ("Sequential", "Functional"):
        raise InputError(f"{path}: a subclassed Keras 3 model ('{type(original).__name__}') has no layer graph "
                         "to rebuild in tf_keras; build it with keras.Sequential or the functional API, or export "
                         "it to ONNX", stage=STAGE)
    if not getattr(original, "inputs", None):
        raise InputError(f"{path}: the model was saved before it was built (no inputs); give it an Input "
                         "layer or call it once before saving", stage=STAGE)
    config = json.loads(json.dumps(original.get_config(), default=_json_default))
    model = rebuild(type(original).__name__, config, path)
    _copy_weights(original, model, path)
    return model, original, version


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot serialize {type(value).__name__}")


def _copy_weights(source, target, path: Path) -> None:
    """Copy weights from the Keras 3 model to the rebuilt one, layer by layer and by name."""
    for layer in target.layers:
        if not layer.weights:  # nothing to copy (and operations are not layers in Keras 3)
            continue
        try:
            origin = source.get_layer(layer.name)
        except ValueError:
            raise InputError(f"{path}: layer '{layer.name}' of the tf_keras rebuild has no Keras 3 "
                             "counterpart; it cannot be rebuilt", stage=STAGE) from None
        if hasattr(layer, "layers") and hasattr(origin, "layers"):  # a nested model
            _copy_weights(origin, layer, path)
            continue
        weights = [np.asarray(w) for w in origin.get_weights()]
        shapes = [tuple(w.shape) for w in layer.get_weights()]
        if shapes != [w.shape for w in weights]:
            raise InputError(f"{path}: layer '{layer.name}' ({type(origin).__name__}) cannot be rebuilt in "
                             f"tf_keras: its weights have shapes {[w.shape for w in weights]} in Keras 3 and "
                             f"{shapes} in tf_keras", stage=STAGE)
        layer.set_weights(weights)


def check_on_calibration(loaded, calibration, count: int = 64) -> None:
    """:func:`check_rebuild` on the first ``count`` calibration samples (enough to catch a wrong weight
    or option; the rebuild is exact or clearly off); the result goes in the model's report notes."""
    samples = calibration.subset(range(min(count, len(calibration)))).arrays()
    loaded.notes.append(check_rebuild(loaded.keras_model, loaded.keras3_model, samples, loaded.source))


def check_rebuild(rebuilt, original, samples: dict, source: str) -> str:
    """Run both models on ``samples`` (input name -> array); raise naming the first differing layer,
    else return a note for the report."""
    feed = [np.asarray(samples[name]) for name in rebuilt.input_names]
    feed = feed[0] if len(feed) == 1 else feed  # Keras 3 Sequential models take one array, not a list
    ours = _as_list(rebuilt.predict(feed, verbose=0, batch_size=16))
    theirs = _as_list(original.predict(feed, verbose=0, batch_size=16))
    worst = max(range_relative_error(b, a) for a, b in zip(ours, theirs))
    if worst > REBUILD_TOLERANCE:
        layer = _first_differing_layer(rebuilt, original, feed)
        raise InputError(f"{source}: the tf_keras rebuild of this Keras 3 model differs from it on the "
                         f"calibration samples (error {worst:.2e} of the output range), first at layer "
                         f"'{layer}'; this layer cannot be rebuilt in tf_keras: export the model to ONNX "
                         "instead", stage=STAGE)
    count = len(samples[rebuilt.input_names[0]])
    return (f"the tf_keras rebuild's outputs match Keras 3 on {count} calibration samples "
            f"(error {worst:.1e} of the output range)")


def _as_list(outputs) -> list:
    if isinstance(outputs, dict):
        return [np.asarray(outputs[k]) for k in sorted(outputs)]
    return [np.asarray(o) for o in outputs] if isinstance(outputs, (list, tuple)) else [np.asarray(outputs)]


def _first_differing_layer(rebuilt, original, feed) -> str:
    """Name of the first layer (in the rebuilt model's order) whose outputs differ between the two."""
    k2, k3 = keras(), keras3()
    for layer in rebuilt.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        try:
            ours = k2.Model(rebuilt.inputs, layer.output).predict(feed, verbose=0)
            theirs = k3.Model(original.inputs, original.get_layer(layer.name).output).predict(feed, verbose=0)
        except (ValueError, AttributeError, TypeError):  # a layer used twice has no single output
            continue
        if range_relative_error(theirs, ours) > REBUILD_TOLERANCE:
            return layer.name
    return rebuilt.layers[-1].name


def load_savedmodel(path: Path) -> Any:
    """Wrap a SavedModel's serving signature in a ``tf_keras`` model with its inputs and outputs.

    Only the graph is loaded (``tf.saved_model.load`` runs no Python from the folder). The wrapper's
    one layer calls the restored function and tracks its variables, so ``count_params`` counts them
    and the TFLite converter and tf2onnx freeze them like any Keras weights.
    """
    tf, k2 = tensorflow(), keras()
    try:
        restored = tf.saved_model.load(str(path))
    except Exception as e:  # TensorFlow raises many types for unreadable SavedModels
        raise InputError(f"{path}: cannot load the SavedModel ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:200]})", stage=STAGE) from None
    if "serving_default" not in restored.signatures:
        raise InputError(f"{path}: a SavedModel without Keras metadata and without a 'serving_default' "
                         "signature; export it with model.export() or tf.saved_model.save(signatures=...)",
                         stage=STAGE)
    function = restored.signatures["serving_default"]
    _, specs = function.structured_input_signature
    output_names = sorted(function.structured_outputs)
    inputs = [k2.Input(spec.shape[1:], batch_size=None, dtype=spec.dtype, name=name) for name, spec in specs.items()]
    layer = _signature_layer(k2)(function, list(specs), output_names, restored, name=SIGNATURE_LAYER)
    outputs = layer(inputs)
    named = [k2.layers.Activation("linear", name=name)(t) for name, t in zip(output_names, outputs)]
    return k2.Model(inputs, named, name=path.name)


def is_signature_model(model) -> bool:
    """Whether ``model`` is a SavedModel signature wrapped by :func:`load_savedmodel`."""
    return any(layer.name == SIGNATURE_LAYER for layer in getattr(model, "layers", ()))


def refuse_compression(recipe, source: str) -> None:
    """Compression stages need Keras layers; a wrapped SavedModel signature has none to prune or cluster."""
    asked = [flag for flag, on in (("--prune", recipe.pruning), ("--clusters", recipe.clustering),
                                   ("--low-rank", recipe.low_rank > 0),
                                   ("--finetune-epochs", recipe.finetune_epochs > 0),
                                   ("--distill", recipe.distill), ("qat", recipe.qat != "none")) if on]
    if asked:
        raise InputError(f"{source}: {', '.join(asked)} {'needs' if len(asked) == 1 else 'need'} a Keras model, but this SavedModel has no Keras "
                         "graph to prune or cluster (e.g. Keras 3 model.export()); compress the .keras file "
                         "the model was saved as instead", stage="optimize")


def _signature_layer(k2):
    class SavedModelSignature(k2.layers.Layer):
        """Calls a restored concrete function; keeps the restored object (and its variables) alive."""

        def __init__(self, function, input_names, output_names, restored, **kwargs):
            super().__init__(**kwargs)
            self._function, self._input_names, self._output_names = function, input_names, output_names
            self._restored = restored
            self._variables = list(function.variables)  # tracked: count_params and freezing see them

        def call(self, inputs):
            out = self._function(**dict(zip(self._input_names, inputs)))
            return [out[name] for name in self._output_names]

    return SavedModelSignature
