"""``edgec sweep``: compression recipes searched against a target's flash, RAM, latency and accuracy, on Ray.

Each trial is one ordinary ``edgec compile`` (the same code path and verification as a user's), run
as a child process inside a Ray task, so a trial that crashes, aborts in native code or whose Ray
worker is killed is recorded as failed and the sweep goes on. Ray starts in-process on this machine
by default (up to one trial per core) or joins a cluster with ``--address`` (``ray://host:10001``
or ``host:6379``; the cluster's workers need edgec installed and the model and data paths readable).

Results are kept per trial in ``OUT/trials/<id>/trial.json`` as they arrive: re-running the same
command skips the trials that finished (passed, failed a gate or were invalid) and runs the rest,
so an interrupted sweep resumes. A trial's id hashes its settings, so the same space gives the same
ids on any machine, and every trial uses the recipe's fixed seed: deterministic per trial.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from edgec.compress.recipe import from_dict
from edgec.core import outdir, targets
from edgec.core.errors import EdgecError, InputError
from edgec.report.write import refresh_index
from edgec.sweep import front as sweep_front
from edgec.sweep import space as sweep_space

log = logging.getLogger(__name__)
FINISHED = ("ok", "gate", "invalid")  # statuses a re-run keeps; a crashed or killed trial runs again
BENCH_RUNS = 50


def _die_with_parent() -> None:
    # The compile must not outlive its Ray worker: if the worker is killed, so is the trial.
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _edgec(args: list[str], *, timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgec", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent, timeout=timeout)


def _last_line(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    error = next((line for line in reversed(lines) if line.startswith("edgec: error:")), lines[-1] if lines else "")
    return error.removeprefix("edgec: error:").strip()


def _metrics(report: dict) -> dict:
    """Flash, RAM and accuracy of a compiled trial, from its report.json (measured on the artifact).

    ``accuracy`` is the figure edgec verifies the model's first output with: top-1 on the labels, else
    top-1 agreement with the float model, for a classifier; the SNR in dB against the float model for
    anything else (a regression or an autoencoder, where "the largest value" means nothing).
    ``accuracy_metric`` names which, so the front and the page label it.
    """
    ver, size, mem = report["verification"], report["size"], report["memory"]
    if ver.get("output_kind", "classifier") != "classifier":
        # No drop: the float model's SNR against itself is infinite (the target's min_snr_db gates it).
        accuracy, metric, drop = ver.get("snr_db"), "snr_db", None
    elif ver.get("artifact_top1") is not None:
        accuracy, metric = ver["artifact_top1"], "top1"
        drop = None if ver.get("reference_top1") is None else ver["reference_top1"] - ver["artifact_top1"]
    else:
        accuracy, metric = ver.get("top1_agreement"), "top1_agreement"
        drop = None if accuracy is None else 1.0 - accuracy
    return {"flash_bytes": size.get("flash_bytes"), "ram_bytes": mem.get("ram_bytes", mem.get("arena_bytes")),
            "accuracy": accuracy, "accuracy_metric": metric, "accuracy_drop": drop,
            "reference_top1": ver.get("reference_top1"), "top1_agreement": ver.get("top1_agreement"),
            "snr_db": ver.get("snr_db"), "cosine": ver.get("cosine")}


def _latency(folder: Path, profile: dict, backend: str | None) -> tuple[float | None, str | None, str]:
    """(latency, unit, note): emulated instructions for generated C on a QEMU board, host p50 for CPU targets."""
    if profile["format"] == "tflm":
        machine = profile.get("device", {}).get("qemu_machine")
        if backend != "c" or not machine:
            return None, None, "TFLite Micro builds have no emulated latency here (use backend = \"c\")"
        done = _edgec(["verify", str(folder), "--device", f"qemu-{machine}"])
        if done.returncode != 0:
            return None, None, f"device run failed: {_last_line(done.stderr)}"
        result = json.loads((folder / "verify.json").read_text())
        return result.get("instructions_per_inference"), "instructions", ""
    done = _edgec(["bench", str(folder), "--runs", str(BENCH_RUNS)])
    if done.returncode != 0:
        return None, None, f"bench failed: {_last_line(done.stderr)}"
    return json.loads((folder / "bench.json").read_text())["artifact"]["p50_ms"], "ms", ""


def _node_id() -> str | None:
    """The Ray node this trial runs on (which machine of a cluster ran it); None outside Ray."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def run_trial(spec: dict) -> dict:
    """One trial (runs in a Ray worker): compile with the trial's recipe, measure, return its record."""
    trial_dir = Path(spec["dir"])
    trial_dir.mkdir(parents=True, exist_ok=True)
    (trial_dir / "edgec.toml").write_text(from_dict(spec["recipe"]).to_toml(), encoding="utf-8")
    args = ["compile", spec["model"], "-t", spec["target"], "--calibration", spec["calibration"],
            "--recipe", str(trial_dir / "edgec.toml"), "-o", str(trial_dir / "out")]
    if spec.get("eval"):
        args += ["--eval", spec["eval"]]
    if spec.get("trust_model"):
        args.append("--trust-model")
    for flag, value in spec["flags"].items():
        args += [f"--{flag}", value]
    done = _edgec(args)
    record = {"id": spec["id"], "recipe": spec["recipe"], "flags": spec["flags"], "exit": done.returncode,
              "node": _node_id()}
    report_path = trial_dir / "out" / spec["target"] / "report.json"
    if done.returncode < 0:
        return {**record, "status": "failed", "metrics": None,
                "reason": f"compile killed by signal {-done.returncode}"}
    if done.returncode not in (0, 1) or not report_path.exists():
        status = "invalid" if done.returncode == 2 else "failed"
        return {**record, "status": status, "metrics": None, "reason": _last_line(done.stderr)}
    report = json.loads(report_path.read_text())
    metrics = _metrics(report)
    profile = targets.with_backend(targets.resolve(spec["target"]), spec["flags"].get("backend"))
    metrics["latency"], metrics["latency_unit"], note = _latency(report_path.parent, profile,
                                                                 spec["flags"].get("backend"))
    status = "ok" if done.returncode == 0 else "gate"
    reason = "; ".join(report.get("failures", [])) if status == "gate" else note
    return {**record, "status": status, "metrics": metrics, "reason": reason}


def _start_ray(address: str | None, workers: int | None) -> dict:
    # Ray's client gives a cluster 5 + 10 + 15 s to answer; a loaded head node's client server needs more
    # to start the process that serves us. Read when Ray is imported, so set before.
    os.environ.setdefault("RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S", "20")
    for name, value in (driver_env(address) if address else {}).items():
        os.environ.setdefault(name, value)  # Ray reads them when imported: set before
    import ray

    if address:
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise EdgecError(f"cannot join the Ray cluster at {address}: {str(e).splitlines()[0]} (a cluster "
                             "with token authentication needs its token in ~/.ray/auth_token or RAY_AUTH_TOKEN)",
                             stage="sweep") from None
    else:
        # Loopback only: a local sweep needs no network, and must not listen on the machine's interfaces.
        # address="local": a new instance even when RAY_ADDRESS is set or `ray start` ran on this machine
        # (address=None would join that cluster).
        ray.init(address="local", num_cpus=workers or os.cpu_count(), include_dashboard=False,
                 logging_level=logging.WARNING,
                 log_to_driver=False, object_store_memory=256 * 1024 * 1024, _node_ip_address="127.0.0.1")
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return {"name": "ray", "version": ray.__version__, "address": address or "local",
            "workers": cpus if address else (workers or os.cpu_count())}


def _run_all(specs: list[dict], out: Path, engine: dict) -> dict[str, dict]:
    """Run ``specs`` as Ray tasks (at most ``workers`` at once); record each as it finishes."""
    import ray
    from rich.progress import Progress

    task = ray.remote(num_cpus=1, max_retries=0)(run_trial)
    results, failed = {}, 0
    queue, running = list(specs), {}
    with Progress(transient=False) as bar:
        shown = bar.add_task("trials", total=len(specs))
        while queue or running:
            while queue and len(running) < engine["workers"]:
                spec = queue.pop(0)
                running[task.remote(spec)] = spec
            ready, _ = ray.wait(list(running), num_returns=1)
            spec = running.pop(ready[0])
            try:
                record = ray.get(ready[0])
            except ray.exceptions.RayError as e:  # the worker died (killed, out of memory): the trial failed
                record = {"id": spec["id"], "recipe": spec["recipe"], "flags": spec["flags"], "exit": None,
                          "status": "failed", "metrics": None,
                          "reason": f"Ray worker lost: {type(e).__name__}: {str(e).splitlines()[0][:200]}"}
            failed += record["status"] == "failed"
            results[spec["id"]] = record
            (out / "trials" / spec["id"] / "trial.json").write_text(json.dumps(record, indent=1))
            bar.update(shown, advance=1, description=f"trials: {len(results)} done, {len(running)} running, "
                                                     f"{failed} failed")
    return results


def sweep(model: str, target: str, *, calibration: str, eval: str | None, space: str, out: str,  # noqa: A002
          trials: int | None = None, address: str | None = None, workers: int | None = None,
          trust_model: bool = False, max_flash: int | None = None, max_ram: int | None = None,
          max_accuracy_drop: float | None = None) -> dict:
    """Run (or resume) a sweep; write ``OUT/sweep.json``, ``OUT/sweep.html`` and the best ``OUT/edgec.toml``."""
    targets.resolve(target)  # an unknown target is refused before Ray starts
    parsed = sweep_space.load(space)
    points = parsed.expand(trials)
    invalid = sweep_space.validate(points)
    if len(invalid) == len(points):
        raise InputError(f"every trial of {space} is an invalid recipe, e.g. {next(iter(invalid.values()))}",
                         stage="sweep")
    out_dir = Path(out).resolve()
    with outdir.locked(out_dir):  # one writer per OUT, as for compile: a second sweep or compile is refused
        (out_dir / "trials").mkdir(parents=True, exist_ok=True)
        records, specs = {}, []
        for trial in points:
            path = out_dir / "trials" / trial.id / "trial.json"
            if trial.id in invalid:
                records[trial.id] = {"id": trial.id, "recipe": trial.recipe, "flags": trial.flags, "exit": 2,
                                     "status": "invalid", "metrics": None, "reason": invalid[trial.id]}
            elif path.exists() and json.loads(path.read_text()).get("status") in FINISHED:
                records[trial.id] = json.loads(path.read_text())
            else:
                specs.append({"id": trial.id, "recipe": trial.recipe, "flags": trial.flags,
                              "model": str(Path(model).resolve()),
                              "target": target, "calibration": _abs(calibration), "eval": _abs(eval),
                              "trust_model": trust_model, "dir": str(out_dir / "trials" / trial.id)})
        log.info("sweep: %d trials, %d to run, %d kept from an earlier run", len(points), len(specs),
                 len(points) - len(specs))
        engine = _start_ray(address, workers)
        try:
            records.update(_run_all(specs, out_dir, engine) if specs else {})
        finally:
            import ray

            ray.shutdown()
        ordered = [records[t.id] for t in points]
        chosen, why = sweep_front.best(ordered, max_flash=max_flash, max_ram=max_ram,
                                       max_accuracy_drop=max_accuracy_drop)
        result = {"model": model, "target": target, "space": str(space), "engine": engine,
                  "constraints": {"max_flash": max_flash, "max_ram": max_ram, "max_accuracy_drop": max_accuracy_drop},
                  "trials": ordered, "pareto": sweep_front.pareto(ordered),
                  "objectives": [m for m, _ in sweep_front.objectives(ordered)], "best": chosen, "best_reason": why,
                  "skipped": len(points) - len(specs)}
        _write(out_dir, result)
    return result


def _write(out_dir: Path, result: dict) -> None:
    """sweep.json, sweep.html and its SVG plots, the best trial as edgec.toml; link it from OUT/index.html."""
    (out_dir / "sweep.json").write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    (out_dir / "sweep.html").write_text(sweep_front.page(result), encoding="utf-8")
    for name, svg in sweep_front.figures(result).items():
        (out_dir / f"sweep_{name}.svg").write_text(svg + "\n", encoding="utf-8")
    best_toml = out_dir / "edgec.toml"
    if chosen := result["best"]:
        flags = "".join(f" --{k} {v}" for k, v in chosen["flags"].items())
        build = f"edgec compile {result['model']} -t {result['target']} --recipe edgec.toml{flags} ..."
        best_toml.write_text(f"# best trial {chosen['id']} of `edgec sweep` within its constraints; build it with\n"
                             f"#   {build}\n"
                             + from_dict(chosen["recipe"]).to_toml(), encoding="utf-8")
    elif best_toml.exists():
        best_toml.unlink()  # a stale best from an earlier run with other constraints would mislead
    refresh_index(out_dir)  # a compile's index.html in this OUT links the sweep page now


def driver_env(address: str) -> dict[str, str]:
    """Environment a driver joining the Ray cluster at ``address`` needs, beyond Ray's defaults.

    - A loopback address: ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``. Otherwise Ray rewrites a loopback
      host to this machine's interface address (``services.resolve_ip_for_localhost``), so a driver
      aimed at ``127.0.0.1:6379`` dials e.g. ``192.0.2.2:6379``, where a head started with
      ``--node-ip-address=127.0.0.1`` (and the same variable) does not listen.
    - A token on this machine (``~/.ray/auth_token``, ``RAY_AUTH_TOKEN`` or ``RAY_AUTH_TOKEN_PATH``) and
      no ``RAY_AUTH_MODE``: ``RAY_AUTH_MODE=token``. Since Ray 2.59 a local ``ray.init()`` writes that
      token and ``ray start --head`` then turns token authentication on, but a driver given an explicit
      address never loads the token by itself (ray-project/ray#64755): it is refused, or times out
      through ``ray://``. A cluster without authentication accepts a driver that sends one.
    """
    env = {}
    if _loopback(address):
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    token_file = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if "RAY_AUTH_MODE" not in os.environ and (os.environ.get("RAY_AUTH_TOKEN") or token_file.is_file()):
        env["RAY_AUTH_MODE"] = "token"
    return env


def _loopback(address: str) -> bool:
    """Whether a Ray address (``ray://host:port`` or ``host:port``) names this machine's loopback."""
    host = urlsplit(address if "://" in address else f"//{address}").hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _abs(path: str | None) -> str | None:
    """Trials run in other processes (maybe other machines): give them absolute paths ('random' stays)."""
    if path is None or path == "random":
        return path
    return str(Path(path).resolve())
