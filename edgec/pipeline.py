"""The driver: load -> optimize -> quantize -> export[target] -> verify -> report, top to bottom.

Reading :func:`compile` tells the whole story. Stages are plain functions in modules named after the
stage; this module only sequences them, times them and decides what is written where.
"""

from __future__ import annotations

import gzip
import logging
import time
from pathlib import Path

from edgec.backends.registry import EXPORTERS
from edgec.compress.int4 import pack as pack_int4
from edgec.compress.optimize import optimize
from edgec.compress.recipe import Recipe, from_dict
from edgec.core import memory_check
from edgec.core import outdir
from edgec.core import targets
from edgec.core.build_state import Build, atomic_folder
from edgec.core.calibration_load import open_dataset, split
from edgec.core.errors import GateError, InputError
from edgec.core.formats import FLOAT_STEM_FORMATS, INT4_FORMATS, KEEP_FLOAT_FORMATS, NATIVE_ONNX_FORMATS, TFLITE_FORMATS
from edgec.core.isolate import NativeCrash
from edgec.core.metrics import top1_accuracy
from edgec.core.progress import status
from edgec.core.tflite_model import macs, parse
from edgec.core.version import __version__
from edgec.device.firmware.projects import check_project, write_project
from edgec.device.harness.generate import write_harness
from edgec.frontend.keras.keras3 import check_on_calibration, is_signature_model, refuse_compression
from edgec.frontend.load import load
from edgec.frontend.onnx.lower import check
from edgec.quantize import converter as quantize
from edgec.quantize import layer_error, layer_error_onnx
from edgec.quantize import flash_bound, flat_softmax, stem
from edgec.quantize.spec import QuantSpec
from edgec.report.artifact_stats import stats
from edgec.report.write import write_index, write_reports
from edgec.verify import host_isa
from edgec.verify.device import bundle_samples
from edgec.verify.host import check_drop_kind
from edgec.verify.host import reference_outputs

log = logging.getLogger(__name__)

# Sample caps of the pipeline's own checks (the quantizers' caps are QuantSpec fields).
LOWERING_CHECK_SAMPLES = 16  # ONNX Runtime runs these one at a time: a few are enough
HARNESS_SAMPLES = 100  # held-out samples the device harness runs (inputs.npz) for `edgec verify --outputs`


def compile(model, targets_: list[str], *, calibration: str | None, eval: str | None = None,  # noqa: A002
            out: str | Path = "build", trust_model: bool = False, recipe: dict | None = None) -> dict:
    """Compile ``model`` for each target into ``out/<target>/``; return ``{target: report}``.

    Raises :class:`InputError` (exit 2) before any work for bad inputs, :class:`GateError` (exit 1)
    after writing the folders when a verification threshold or a budget is not met.
    """
    profiles = [targets.with_backend(targets.resolve(t), (recipe or {}).get("backend")) for t in targets_]
    if not profiles:
        raise InputError("no target given: pass --target ID (see `edgec targets`)", stage="compile")
    specs = _quant_specs(profiles, recipe or {})
    if (recipe or {}).get("project"):
        check_project(profiles, recipe["project"])
    outdir.check_free(Path(out))  # another compile writing OUT: refuse before any work
    settings = {"model": str(model), "targets": list(targets_), "calibration": calibration, "eval": eval,
                "trust_model": trust_model, **(recipe or {})}
    started = time.perf_counter()
    with status(f"loading {model}"):
        loaded = load(model, trust_model=trust_model, lower=_needs_keras(profiles, recipe or {}))
    load_stage = {"name": "load", "seconds": round(time.perf_counter() - started, 3)}
    drop_asked = any(spec.max_accuracy_drop is not None for spec in specs.values())  # the same flag for all
    _check_drop_metric(drop_asked, loaded.outputs)
    with status("checking calibration and evaluation samples"):
        calib, held_out = _datasets(calibration, eval, loaded.inputs, loaded.outputs, list(specs.values()),
                                    activations=memory_check.activation_bytes(loaded.keras_model))
    if drop_asked:
        check_drop_kind(recipe or {}, loaded.reference, held_out)
    float_tflite, keras_model, optimize_stages = None, None, []
    if loaded.keras_model is not None:  # a Keras model, or an ONNX model some target needs lowered
        if loaded.onnx_model is not None:
            with status("checking the lowered ONNX model against ONNX Runtime on calibration samples"):
                _check_lowering(loaded, calib)
        if loaded.keras3_model is not None:
            with status("checking the tf_keras rebuild against the Keras 3 model on calibration samples"):
                check_on_calibration(loaded, calib)
        keras_model, optimize_stages = _optimize(loaded.keras_model, settings, calib)
        if not _compresses(recipe or {}):  # a certain flash failure stops here, not after minutes of work
            flash_bound.check(profiles, keras_model)
        with status("converting the float reference"):  # the user's model, before any compression
            float_tflite = quantize.float_tflite(loaded.keras_model)
    optimize_stages = [load_stage, *optimize_stages]
    settings["macs"] = macs(parse(float_tflite)) if float_tflite is not None else None
    reports, failures = {}, []
    with outdir.locked(Path(out)):  # one writer per OUT; a killed run's leftovers are removed first
        for profile in profiles:
            try:
                report = _compile_target(profile, specs[profile["id"]], loaded, keras_model, calib, held_out,
                                         settings, float_tflite, optimize_stages, Path(out))
            except NativeCrash as e:  # one line naming the stage, the target and the model (exit 3)
                e.target, e.model = e.target or profile["id"], str(model)
                raise
            reports[profile["id"]] = report
            failures += report["failures"]
        if len(reports) > 1:
            write_index(Path(out), reports)
    if failures:
        raise GateError("; ".join(failures))
    return reports


def _needs_keras(profiles: list[dict], recipe: dict) -> bool:
    """Whether an ONNX model must be lowered to Keras: a TFLite-based target or a TF-MOT stage needs it.

    ONNX Runtime and OpenVINO targets otherwise quantize the user's (folded) ONNX graph itself.
    """
    return any(p["format"] not in NATIVE_ONNX_FORMATS for p in profiles) or _compresses(recipe)


def _compresses(recipe: dict) -> bool:
    """The recipe asks for a Keras/TF-MOT compression stage (fusion alone is done on ONNX too)."""
    keys = ("prune", "clusters", "cluster_counts", "cluster_bits", "int4", "low_rank", "finetune_epochs")
    return any(recipe.get(k) for k in keys) or recipe.get("qat", "none") != "none"


def _quant_specs(profiles: list[dict], recipe: dict) -> dict[str, QuantSpec]:
    """Each target's :class:`QuantSpec`, refusing settings that cannot apply, before any work."""
    for p in profiles:
        if p.get("abstract"):
            raise InputError(f"'{p['id']}' is a base profile that others extend, not a target", stage="compile")
    specs = {p["id"]: QuantSpec.from_settings(recipe, p) for p in profiles}  # checks every value
    mixed = any(spec.mixed for spec in specs.values())  # the flags are the same for every target
    if mixed:
        other = [p["id"] for p in profiles if p["format"] not in KEEP_FLOAT_FORMATS]
        if other:
            backend = " (--backend c: the generated C has int8 kernels only)" if recipe.get("backend") == "c" else ""
            raise InputError(f"--keep-float / --max-accuracy-drop work on TFLite, ONNX and OpenVINO targets; not on "
                             f"{', '.join(other)}{backend}", stage="compile")
    _check_stem(profiles, recipe.get("stem"), mixed)
    return specs


def _check_stem(profiles: list[dict], value: str | None, mixed: bool) -> None:
    """``--stem float|auto`` (``value``) needs a format with fast float kernels, and is not a --keep-float list.

    Only the flag is checked here: a target file's own ``quantization.stem`` applies where it can.
    """
    if value in (None, "int8"):
        return
    other = [p["id"] for p in profiles if p["format"] not in FLOAT_STEM_FORMATS]
    if other:
        raise InputError(f"--stem {value} works on LiteRT and ONNX targets; not on {', '.join(other)} (their "
                         "runtimes are int8-first: float convolutions would be slower there)", stage="compile")
    if mixed:
        raise InputError(f"--stem {value} cannot be combined with --keep-float / --max-accuracy-drop; name the "
                         "stem layer in --keep-float instead", stage="compile")


def _first_output_shape(outputs: dict) -> tuple:
    """Shape of the model's first output (the one top-1 and labels refer to); () when unknown."""
    return next(iter(outputs.values()))[0] if outputs else ()


def _check_drop_metric(drop_asked: bool, outputs: dict) -> None:
    """``--max-accuracy-drop`` measures top-1 of a class output: refuse it for a one-value output."""
    shape = _first_output_shape(outputs)
    if drop_asked and shape and shape[-1] == 1:
        name = next(iter(outputs))
        raise InputError(f"--max-accuracy-drop measures the top-1 class, but output '{name}' has one value per "
                         "sample (a regression or score output); use --keep-float LAYER and the verification "
                         "metrics (max abs error, cosine) instead", stage="compile")


def _check_labels(dataset, outputs: dict) -> None:
    """Labels must be class indices of the model's first output."""
    labels = None if dataset.random else dataset.labels
    shape = _first_output_shape(outputs)
    classes = int(shape[-1]) if shape and shape[-1] not in (None, -1) else None
    if labels is None or classes is None or not len(labels):
        return
    if labels.min() < 0 or labels.max() >= classes:
        raise InputError(f"{dataset.source}: labels range {labels.min()}..{labels.max()}, but the model has "
                         f"{classes} classes (0..{classes - 1})", stage="calibration")


def _datasets(calibration, eval_, inputs, outputs, specs: list[QuantSpec], *, activations: int = 0):
    needs_int8 = any(spec.scheme == "int8" for spec in specs)
    if calibration is None:
        if needs_int8:
            raise InputError("int8 quantization needs calibration data: pass --calibration DATA with "
                             "representative samples (or --calibration random to accept unmeasured accuracy)",
                             stage="calibration")
        calibration = "random"
    calib = open_dataset(calibration, inputs)
    held_out = open_dataset(eval_, inputs) if eval_ is not None else None
    # From the declared shapes, before a sample is read: refuse what cannot fit in memory.
    samples = len(calib) + (len(held_out) if held_out is not None else 0)
    memory_check.check(samples, memory_check.sample_bytes(inputs), activations, memory_check.available_bytes())
    calib.validate()
    _check_labels(calib, outputs)
    if held_out is not None:
        held_out.validate()
        _check_labels(held_out, outputs)
        return calib, held_out
    if calib.random:
        return calib, calib
    return split(calib)


def _check_lowering(loaded, calib) -> None:
    """The Keras lowering of an ONNX model must match ONNX Runtime on real samples, not only random."""
    count = min(LOWERING_CHECK_SAMPLES, len(calib))
    result = check(loaded.onnx_model, loaded.keras_model, calib.subset(range(count)).arrays())
    loaded.notes.append(f"lowering matches ONNX Runtime on {count} calibration samples: max error "
                        f"{result['max_rel_err']:.2e} of the output range")


def _optimize(keras_model, settings: dict, calib):
    """Fusion and compression as the recipe asks (see :mod:`edgec.compress.optimize`), before quantization."""
    from dataclasses import fields

    recipe = from_dict({f.name: settings[f.name] for f in fields(Recipe) if f.name in settings})
    if is_signature_model(keras_model):  # a Keras-less SavedModel: no layers to fuse or compress
        refuse_compression(recipe, settings["model"])
        return keras_model, []
    if recipe.finetune_epochs and calib.random:
        raise InputError("fine-tuning and distillation need real samples, not --calibration random",
                         stage="optimize")
    with status("optimizing (fusion, compression, fine-tuning)"):
        return optimize(keras_model, recipe, train_x=calib.arrays(), train_y=None if calib.random else calib.labels)


def _compile_target(profile, spec: QuantSpec, loaded, keras_model, calib, held_out, settings, float_tflite,
                    optimize_stages, out: Path) -> dict:
    """One target: quantize -> export -> verify -> harness -> reports, in a folder written whole."""
    fmt = profile["format"]
    if fmt not in EXPORTERS:
        raise InputError(f"format '{fmt}' has no exporter (known: {', '.join(EXPORTERS)})",
                         stage="export", target=profile["id"])
    with atomic_folder(out / profile["id"]) as folder:
        work = folder / "intermediate"
        work.mkdir()
        native = loaded.onnx_model is not None and fmt in NATIVE_ONNX_FORMATS and not _compresses(settings)
        build = Build(target=profile, keras_model=keras_model, calibration=calib, evaluation=held_out,
                      out=folder, work=work, settings=settings, quant=spec, report=_new_report(profile, loaded, keras_model),
                      float_tflite=float_tflite, onnx_model=loaded.onnx_model if native else None)
        build.report["stages"] = list(optimize_stages)
        build.report["model"]["macs"] = settings.get("macs")
        if float_tflite is not None:
            build.report["size"]["float_tflite_bytes"] = len(float_tflite)
            (work / "model_float.tflite").write_bytes(float_tflite)
        else:
            build.report["model"]["macs_note"] = "not counted: the ONNX model was not converted to .tflite"
        if native:
            build.report["model"]["notes"].append("quantized as ONNX (no Keras lowering): the float reference "
                                                  "is the folded ONNX model in ONNX Runtime")
        if fmt in TFLITE_FORMATS:
            with status(f"{profile['id']}: int8 post-training quantization"):
                _quantize(build)
        _export(build)
        _verify(build, loaded)
        write_harness(folder, profile, inputs=held_out.subset(range(min(HARNESS_SAMPLES, len(held_out)))).arrays())
        if settings.get("project"):
            bundled = bundle_samples(folder, profile, held_out)
            build.report["project"] = {**write_project(folder, profile, settings["project"]),
                                       "self_check_samples": bundled}
        write_reports(build, loaded.source)
    return build.report


def _export(build: Build) -> None:
    """Run the format's exporter; an over-budget model keeps its artifacts and fails at the end."""
    with build.stage("export"), status(f"{build.target['id']}: exporting {build.target['format']}"):
        try:
            EXPORTERS[build.target["format"]](build)
        except GateError as e:
            build.failures.append(str(e))
    _finish_sizes(build)
    shipped = build.final_tflite or (build.int8_tflite if build.target["format"] == "c" else None)
    if shipped is not None:  # the generated C holds exactly the int8 model's constants

        build.report["compression"].update(stats(shipped))


def _verify(build: Build, loaded) -> None:
    """Verify in the target's runtime against the user's own float model; explain a failure."""
    held_out, profile = build.evaluation, build.target
    with build.stage("verify"), status(f"{profile['id']}: verifying on {len(held_out)} held-out samples"):
        # The user's model is the reference: compression and int8 are judged together.
        reference = build.onnx_model if build.onnx_model is not None else loaded.reference
        # ONNX Runtime / OpenVINO int8: the shipped artifact, or its twin on a host without VNNI
        build.report["verification"] = host_isa.verify_build(build, reference)
        if build.keras_model is not loaded.keras_model and build.onnx_model is None:
            build.report["verification"]["optimized_float"] = _float_accuracy(build.keras_model, held_out)
    build.failures[:0] = [f"[verify / {profile['id']}] {f}" for f in build.report["verification"]["failures"]]
    if build.quant.layer_error:
        if build.int8_tflite is not None:
            _layer_analysis(build)
        elif _onnx_int8(build):
            _onnx_layer_analysis(build)
    _explain_failure(build)
    build.report["failures"] = build.failures


def _quantize(build: Build) -> None:
    spec = build.quant
    with build.stage("quantize", scheme=spec.scheme, calibration_samples=len(build.calibration)) as entry:
        if spec.mixed:
            build.int8_tflite = _quantize_mixed(build)
            if build.report["keep_float"].get("activations") == "int16":
                entry["scheme"] = "int16x8"
                log.warning("%s: shipping int16 activations (int8 weights) to meet --max-accuracy-drop: the "
                            "model's inputs and outputs are int16 (see model_data.h)", build.target["id"])
        else:
            build.int8_tflite = _quantize_int8(build)
            entry["stem"] = build.report.get("stem", {}).get("chosen", "int8")
        int4 = next((s.get("layers") for s in build.report.get("stages", []) if s.get("name") == "int4"), None)
        if int4 and build.target["format"] in INT4_FORMATS:
            build.int8_tflite, entry["int4"] = pack_int4(build.int8_tflite, int4)
        elif int4:
            log.warning("%s: int4 weights are for TFLite Micro and C targets; %s ships them as int8 (on the "
                        "int4 grid)", build.target["id"], build.target["format"])
    (build.work / "model_int8.tflite").write_bytes(build.int8_tflite)


def _quantize_int8(build: Build) -> bytes:
    """Int8, with the float stem where the stem setting (and for ``auto`` its rule) asks for it."""
    spec = build.quant

    def int8(float_nodes: list[str]) -> bytes:
        return quantize.int8_tflite(build.keras_model, build.calibration, io_dtype=spec.io_dtype,
                                    per_channel=spec.per_channel, float_nodes=float_nodes)

    if build.target["format"] not in FLOAT_STEM_FORMATS:  # microcontrollers: all-int8 (see edgec.quantize.stem)
        return int8([])
    value = spec.stem
    # Tensor names of the model being quantized: compression (fusion) renames them, so not the
    # user's float .tflite.
    float_tflite = None
    if value != "int8":
        float_tflite = quantize.float_tflite(build.keras_model)
        found = stem.tflite_stem(float_tflite)
    else:
        found = {}
    float_layers, build.report["stem"] = stem.choose(value, found)
    softmax = flat_softmax.softmax_outputs(build.keras_model)
    if softmax:  # a classifier head too flat for int8's fixed softmax scale stays float (flat_softmax.py)
        reference = reference_outputs(build.keras_model, build.calibration.arrays())
        flat = [i for i in softmax if flat_softmax.is_flat(reference[i])]
        if flat:
            float_tflite = float_tflite or quantize.float_tflite(build.keras_model)
            kept, section = flat_softmax.choose(flat, float_tflite, reference)
            if kept:
                build.report["flat_softmax"] = section
                log.warning("%s: the softmax output is too flat for int8 (median top probability %s): kept in "
                            "float", build.target["id"], section["median_top_probability"])
                float_layers = [*float_layers, *[k for k in kept if k not in float_layers]]
    return int8(float_layers)


def _float_accuracy(keras_model, held_out) -> dict:
    """Top-1 of the compressed float model (before int8), to show what compression alone cost."""
    if held_out.random or held_out.labels is None:
        return {"top1": None}
    return {"top1": top1_accuracy(reference_outputs(keras_model, held_out.arrays())[0], held_out.labels)}


def _layer_analysis(build: Build):
    """Per-layer int8 error (TFLite's QuantizationDebugger), cached on the build, into the report."""
    if build.analysis is None:
        with status(f"{build.target['id']}: per-layer quantization error"), quantize.quiet_stderr():
            build.analysis = layer_error.analyze(build.keras_model, build.calibration.arrays(),
                                                 samples=build.quant.debug_samples,
                                                 io_int8=build.quant.io_dtype == "int8")
        build.report["layer_error"] = build.analysis.to_json()
    return build.analysis


def _quantize_mixed(build: Build) -> bytes:
    """``--keep-float`` / ``--max-accuracy-drop``: int8 except the layers that int8 breaks."""
    analysis, spec = _layer_analysis(build), build.quant
    held_out = build.evaluation
    with quantize.quiet_stderr():  # the debugger's converter runs print their settings to fd 2
        model, section = layer_error.fit_accuracy_drop(build.keras_model, build.calibration.arrays(), held_out.arrays(),
                                           None if held_out.random else held_out.labels,
                                           max_drop=spec.max_accuracy_drop, keep_float=list(spec.keep_float),
                                           analysis=analysis, int16x8=spec.int16x8)
    build.report["keep_float"] = section
    return model


def _onnx_layer_analysis(build: Build) -> list[str]:
    """ONNX Runtime's QDQ debugging on the ONNX artifact; returns the three worst tensors."""
    samples = build.calibration.subset(range(min(build.quant.qdq_debug_samples, len(build.calibration)))).arrays()
    with status(f"{build.target['id']}: per-tensor QDQ error (ONNX Runtime)"):
        layers = layer_error_onnx.analyze(build.work / "model_float.onnx", build.artifact, samples)
    build.report["layer_error"] = {"tool": "onnxruntime.quantization.qdq_loss_debug",
                                   "ranked_by": "added_noise_to_signal", "layers": layers[:20]}
    return [x["layer"] for x in layers[:3]]


def _onnx_int8(build: Build) -> bool:
    return build.target["format"] == "onnx" and build.quant.scheme == "int8"


def _explain_failure(build: Build) -> None:
    """When verification fails on an int8 artifact, name the layers int8 hurts most."""
    if build.report["verification"]["passed"]:
        return
    if _onnx_int8(build):
        layers = build.report.get("layer_error", {}).get("layers")  # already there with --layer-error
        worst = [x["layer"] for x in layers[:3]] if layers else _onnx_layer_analysis(build)
        build.failures.append(f"[verify / {build.target['id']}] worst int8 tensors: {', '.join(worst)}")
        return
    if build.int8_tflite is None:
        return
    worst = [x["layer"] for x in _layer_analysis(build).worst(3)]
    # --max-accuracy-drop searches on top-1: no help to an output judged by SNR (an autoencoder's).
    classifier = any(o.get("kind") == "classifier" for o in build.report["verification"].get("outputs", []))
    build.failures.append(f"[verify / {build.target['id']}] worst int8 layers: {', '.join(worst)}; try "
                          + ("--max-accuracy-drop or " if classifier else "") + f"--keep-float {worst[0]}")


def _new_report(profile, loaded, keras_model) -> dict:
    return {
        "target": profile["id"],
        "format": profile["format"],
        "edgec_version": __version__,
        "model": {"source": loaded.source, "kind": loaded.kind, "params": loaded.params,
                  "params_after_optimize": int(keras_model.count_params()) if keras_model is not None
                  else loaded.params,
                  "macs": None, "macs_note": "counted on the float .tflite: conv, depthwise, dense, matmul",
                  "inputs": _sig(loaded.inputs), "outputs": _sig(loaded.outputs),
                  "notes": list(loaded.notes)},
        "stages": [],
        "size": {"float_tflite_bytes": None, "artifact_bytes": None, "flash_bytes": None, "gzip_bytes": None},
        "memory": {"arena_bytes": None, "flash_budget_bytes": None, "ram_budget_bytes": None},
        "compression": {"layers": []},
    }


def _sig(spec: dict) -> list[dict]:
    return [{"name": n, "shape": list(s), "dtype": d} for n, (s, d) in spec.items()]


def _finish_sizes(build: Build) -> None:
    """Fill the sizes an exporter left open, from the artifact file (storage footprint off-MCU)."""
    size = build.report["size"]
    if build.artifact is not None and build.artifact.is_file():
        data = build.artifact.read_bytes()
        if size.get("gzip_bytes") is None:
            size["gzip_bytes"] = len(gzip.compress(data, compresslevel=9, mtime=0))
        if size.get("artifact_bytes") is None:
            size["artifact_bytes"] = len(data)
    if size.get("flash_bytes") is None:
        size["flash_bytes"] = size.get("artifact_bytes")
    memory = build.report["memory"]
    if memory.get("arena_bytes") is None:
        memory["arena_note"] = (f"not measured: {build.target['format']} runtimes allocate their own memory; "
                                "measure it on the device with the harness (peak memory in bench.json)")
        flash_budget, ram_budget = targets.model_budget(build.target)
        memory["flash_budget_bytes"], memory["ram_budget_bytes"] = flash_budget, ram_budget
    if build.final_tflite is None and build.target["format"] != "c":
        build.report["compression"]["note"] = "per-layer sparsity and unique values are measured on .tflite artifacts"
