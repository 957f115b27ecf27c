"""What each ``edgec`` subcommand does; the CLI maps names to these functions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgec.compress.recipe import from_args
from edgec.core import targets
from edgec.core.calibration_load import open_dataset, split
from edgec.core.errors import EdgecError, GateError, InputError
from edgec.core.formats import FORMATS, TFLITE_FORMATS
from edgec.device.firmware.build import build_firmware
from edgec.device.firmware.boards_chips import chip
from edgec.device.firmware.flash import TOOLS, flash
from edgec.device.firmware.projects import chip_image
from edgec.frontend.load import load
from edgec.inspect import inspect, render
from edgec.pipeline import compile as run
from edgec.report.write import refresh_index, sha256_path, write_json
from edgec.runtimes.bench import bench_build, table
from edgec.sweep.front import format_accuracy
from edgec.sweep.run import sweep
from edgec.verify.device import verify_on_device
from edgec.verify.host import verify, verify_captured
from edgec.verify.host_isa import artifact_to_verify

# Off a terminal (CI logs, pipes) rich assumes 80 columns and wraps every cell; give tables room.
console = Console() if sys.stdout.isatty() else Console(width=160)


def _kb(n) -> str:
    return "—" if n is None else f"{n / 1024:,.1f} KiB" if n < 100 * 1024 else f"{n / 1024:,.0f} KiB"


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _agreement(ver: dict) -> str:
    """Top-1 agreement for a classifier; the SNR for any other first output (edgec/core/metrics.py)."""
    if ver.get("output_kind", "classifier") == "classifier" or "snr_db" not in ver:
        return _pct(ver.get("top1_agreement"))
    return "exact" if ver["snr_db"] is None else f"SNR {ver['snr_db']:.1f} dB"


def _status(report: dict) -> str:
    failures = report.get("failures", [])
    if not failures:
        return f"verified ({report['verification']['runtime']})"
    kinds = sorted({"over budget" if "budget" in f else "verification failed" for f in failures})
    return "FAILED: " + ", ".join(kinds)


def summary_table(reports: dict) -> Table:
    """The short table `make demo` prints: sizes, arena, accuracy float vs int8."""
    table = Table(title="edgec compile")
    for col in ("target", "float .tflite", "artifact", "flash", "gzip", "arena", "float top-1",
                "artifact top-1", "agreement", "status"):
        table.add_column(col, justify="right" if col != "target" else "left")
    for tid, r in reports.items():
        size, mem, ver = r["size"], r["memory"], r["verification"]
        table.add_row(tid, _kb(size["float_tflite_bytes"]), _kb(size["artifact_bytes"]), _kb(size["flash_bytes"]),
                      _kb(size["gzip_bytes"]), _kb(mem.get("arena_bytes")), _pct(ver.get("reference_top1")),
                      _pct(ver.get("artifact_top1")), _agreement(ver),
                      _status(r))
    return table


def cmd_compile(args) -> int:
    """``edgec compile``: run the pipeline, print the summary, exit 1 on a failed gate."""
    resolved = from_args(args, args.recipe)
    if args.print_recipe:
        print(resolved.to_toml(), end="")
        return 0
    settings = resolved.to_dict()
    if args.keep_float:
        settings["keep_float"] = args.keep_float
    if args.calibration_method:
        settings["calibration_method"] = args.calibration_method
    if args.max_accuracy_drop is not None:
        settings["max_accuracy_drop"] = args.max_accuracy_drop
    if args.stem:
        settings["stem"] = args.stem
    if args.layer_error:
        settings["layer_error"] = True
    if args.backend:
        settings["backend"] = args.backend
    if args.project:
        settings["project"] = args.project
    try:
        reports = run(args.model, args.target, calibration=args.calibration, eval=args.eval, out=args.out,
                      trust_model=args.trust_model, recipe=settings)
    except GateError as e:
        _print_existing(args)
        raise e
    console.print(summary_table(reports))
    console.print(f"artifacts in {Path(args.out).resolve()}/<target>/ (report.json, report.html, manifest.json)")
    return 0


def _print_existing(args) -> None:
    reports = {}
    for tid in args.target:
        path = Path(args.out) / tid / "report.json"
        if path.is_file():
            reports[tid] = json.loads(path.read_text())
    if reports:
        console.print(summary_table(reports))


def cmd_targets(args) -> int:
    """``edgec targets [ID]``: a table of profiles, or one profile resolved (as JSON)."""
    if args.id:
        console.print_json(json.dumps(targets.resolve(args.id), sort_keys=True))
        return 0
    table = Table(title="edgec targets")
    for col in ("id", "format", "cpu", "MHz", "flash", "RAM", "description"):
        table.add_column(col)
    for p in targets.listing():
        mem, cpu = p.get("memory", {}), p.get("cpu", {})
        table.add_row(p["id"], p["format"], cpu.get("core") or cpu.get("isa", "—"), str(cpu.get("clock_mhz", "—")),
                      _kb(mem.get("flash_bytes")), _kb(mem.get("ram_bytes")), p["description"])
    console.print(table)
    return 0


def cmd_inspect(args) -> int:
    """``edgec inspect MODEL [--target ID ...]``: operators x targets (yes / NO / why), size and MACs.

    Exits 0 whatever the operators are (an operator no target runs is an answer); 2 for a file that
    cannot be read.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = inspect(args.model, args.target or None, work=Path(tmp), trust_model=args.trust_model,
                         backend=args.backend)
    console.print(render(result), highlight=False, markup=False, soft_wrap=True)
    return 0


def cmd_verify(args) -> int:
    """``edgec verify OUT/ID [--eval DATA | --outputs FILE]``: re-run verification; writes ``verify.json``."""
    folder = Path(args.build)
    recipe = _recipe_of(folder)
    profile = targets.with_backend(targets.resolve(recipe["target"]), recipe.get("backend"))
    # An ONNX model is lowered to Keras only for the TFLite-based formats that were built from it.
    loaded = load(recipe["model"], trust_model=recipe.get("trust_model", False),
                  lower=profile["format"] in TFLITE_FORMATS)
    data = _evaluation(args.eval, recipe, loaded.inputs)
    files = FORMATS.get(profile["format"])
    artifact = folder / (files.artifact if files else "model.tflite")
    if args.device or args.port:

        if not args.timeout > 0 or args.retries < 0:
            raise InputError(f"--timeout must be > 0 s and --retries >= 0 (got {args.timeout:g}, {args.retries})",
                             stage="verify")
        result = verify_on_device(folder, profile, loaded, data, device=args.device, port=args.port,
                                  portable=args.portable, timeout=args.timeout, retries=args.retries)
    elif args.outputs:
        result = verify_captured(Path(args.outputs), artifact, folder, loaded, data, profile,
                                 explicit_eval=bool(args.eval), kinds=recipe)
    else:

        judged, arithmetic = artifact_to_verify(folder, artifact, profile)
        result = {"device": "host", "bit_exact": None,
                  **verify(judged, loaded.reference, data, profile, kinds=recipe)}
        if arithmetic is not None:
            result["int8_arithmetic"] = arithmetic
            if arithmetic.get("host_limited") and result["failures"]:
                result["failures"].append(f"host-limited verdict: {arithmetic['note']}")
    write_json(folder / "verify.json", result)
    snr = result.get("snr_db")
    fit = (f"agreement {_pct(result['top1_agreement'])}, top-1 {_pct(result['artifact_top1'])} "
           f"(float {_pct(result['reference_top1'])})" if result.get("output_kind", "classifier") == "classifier"
           else f"SNR {'exact' if snr is None else f'{snr:.1f} dB'}, max abs error {result['max_abs_err']:.4g}")
    console.print(f"{folder}: {result['device']} / {result['runtime']} on {result['samples']} samples: {fit}, "
                  f"cosine {result['cosine']:.4f}, "
                  f"bit-exact: {'n/a (host run)' if result['bit_exact'] is None else result['bit_exact']}"
                  + _link_note(result.get("link")))
    if not result["passed"]:
        raise GateError("; ".join(result["failures"]), stage="verify", target=profile["id"])
    return 0


def _link_note(link: dict | None) -> str:
    """A serial link that needed retries is worth a word (the results are still checked bit for bit)."""
    if not link or not link.get("retries"):
        return ""
    return f" ({link['retries']} request(s) repeated after line faults, {link['reconnects']} reconnect(s))"


def _evaluation(explicit, recipe: dict, inputs):
    """The evaluation set: --eval, else the build's own (its --eval, or its seeded split)."""
    if explicit:
        return open_dataset(explicit, inputs)
    if recipe.get("eval"):
        return open_dataset(recipe["eval"], inputs)
    calib = open_dataset(recipe["calibration"], inputs)
    return calib if calib.random else split(calib)[1]


def cmd_flash(args) -> int:
    """``edgec flash OUT/ID --board NAME [--port] [--dry-run]``: run the board's programming tool."""
    import shlex

    folder = Path(args.build)
    recipe = _recipe_of(folder)
    profile = targets.with_backend(targets.resolve(recipe["target"]), recipe.get("backend"))
    board = args.board or profile.get("device", {}).get("board")
    if not board:
        raise InputError(f"target '{profile['id']}' names no board; pass --board", stage="flash")
    if board not in TOOLS:
        raise InputError(f"unknown board '{board}' (known: {', '.join(TOOLS)})", stage="flash")
    image = Path(args.image) if args.image else None
    if image is not None and not image.is_file():
        raise InputError(f"firmware image {image} does not exist", stage="flash")
    if image is None and profile["format"] == "c" and chip(board) is not None:  # a real chip, or its QEMU model
        image = chip_image(folder, profile, board, build=not args.dry_run)
    if image is None and board.startswith("qemu-"):
        image = _qemu_image(folder, profile, board, build=not args.dry_run)
    if image is None:
        raise InputError(f"no firmware image for board '{board}': build your application with this folder's "
                         "files and pass --image FILE (or use a qemu-* board)", stage="flash")
    cmd = flash(board, image, port=args.port, dry_run=args.dry_run)
    console.print(shlex.join(cmd), highlight=False, markup=False, soft_wrap=True)  # one copyable line
    return 0


def _qemu_image(folder: Path, profile: dict, board: str, *, build: bool) -> Path:
    """The firmware of a generated-C build for an emulated board (built unless only printing)."""
    if profile["format"] != "c":
        raise InputError(f"{folder} is a '{profile['format']}' build; QEMU boards run edgec's generated-C "
                         "firmware: compile with --backend c", stage="flash")
    machine = board.removeprefix("qemu-")
    if profile.get("device", {}).get("qemu_machine") not in (None, machine):
        raise InputError(f"{board} emulates another core than target '{profile['id']}' (its board is "
                         f"qemu-{profile['device']['qemu_machine']})", stage="flash")
    out = folder / "intermediate" / "firmware"
    if not build:  # --dry-run: print the command, write nothing
        return out / "firmware.elf"
    memory = profile.get("memory", {})
    return build_firmware(folder, board, flash_bytes=memory["flash_bytes"], ram_bytes=memory["ram_bytes"],
                          out=out).elf


def _recipe_of(folder: Path) -> dict:
    """The resolved settings a build folder was made with; a damaged or foreign folder is refused."""
    if not folder.is_dir():
        raise InputError(f"build folder {folder} does not exist", stage="verify")
    path = folder / "manifest.json"
    if not path.is_file():
        raise InputError(f"{folder}: not an edgec build folder (no manifest.json)", stage="verify")
    try:
        recipe = json.loads(path.read_text())["recipe"]
        recipe["target"], recipe["model"]  # noqa: B018 - the keys every command needs
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{path}: damaged manifest (no recipe with target and model); recompile",
                         stage="verify") from None

    outputs = json.loads(path.read_text()).get("outputs", {})
    for name, digest in outputs.items():
        if name.startswith(("intermediate/", "plots/", "harness/")) or name in ("report.html",):
            continue
        if not (folder / name).is_file() or sha256_path(folder / name) != digest:
            raise InputError(f"{folder / name} is missing or changed since the build (SHA-256 differs from "
                             "manifest.json); recompile", stage="verify")
    return recipe


def cmd_bench(args) -> int:
    """``edgec bench OUT/ID``: artifact vs float reference latency in one run; writes ``bench.json``."""
    _recipe_of(Path(args.build))  # refuses a missing, foreign or damaged build folder
    result = bench_build(Path(args.build), runtime=args.runtime, runs=args.runs, warmup=args.warmup,
                         threads=args.threads)
    console.print(table(result), highlight=False, markup=False)
    refresh_index(Path(args.build).parent)  # a multi-target build's index shows the latency now
    return 0


def cmd_sweep(args) -> int:
    """``edgec sweep``: run the trials on Ray, print the front, write sweep.json/.html and the best edgec.toml."""
    if args.trials is not None and args.trials < 1 or args.workers is not None and args.workers < 1:
        raise InputError("--trials and --workers take a positive number", stage="sweep")
    result = sweep(args.model, args.target, calibration=args.calibration, eval=args.eval, space=args.space,
                   out=args.out, trials=args.trials, address=args.address, workers=args.workers,
                   trust_model=args.trust_model, max_flash=args.max_flash, max_ram=args.max_ram,
                   max_accuracy_drop=args.max_accuracy_drop)
    table = Table(title=f"edgec sweep: {len(result['trials'])} trials ({result['skipped']} from an earlier run), "
                        f"Pareto front")
    for col in ("trial", "settings", "flash", "RAM", "accuracy", "latency"):
        table.add_column(col, justify="left" if col in ("trial", "settings") else "right")
    for t in result["trials"]:
        if t["id"] in result["pareto"]:
            m = t["metrics"]
            settings = ", ".join(f"{k}={v}" for k, v in {**t["recipe"], **t["flags"]}.items())
            latency = "—" if m.get("latency") is None else f"{m['latency']:,.4g} {m['latency_unit']}"
            table.add_row(t["id"], settings, _kb(m["flash_bytes"]), _kb(m.get("ram_bytes")), format_accuracy(m),
                          latency)
    console.print(table)
    failed = sum(t["status"] == "failed" for t in result["trials"])
    out = Path(args.out)
    if result["best"]:
        flags = " ".join(f"--{k} {v}" for k, v in result["best"]["flags"].items())
        console.print(f"best within the constraints: {result['best']['id']}; "
                      f"edgec compile ... --recipe {out / 'edgec.toml'} {flags}".rstrip())
    else:
        console.print(f"no best trial: {result['best_reason']}")
    console.print(f"{failed} trial(s) failed; see {out / 'sweep.json'} and {out / 'sweep.html'}")
    return 0


COMMANDS = {
    "sweep": cmd_sweep,
    "compile": cmd_compile,
    "targets": cmd_targets,
    "inspect": cmd_inspect,
    "verify": cmd_verify,
    "bench": cmd_bench,
    "flash": cmd_flash,
}

__all__ = ["COMMANDS", "EdgecError"]
