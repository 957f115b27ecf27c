"""The host's int8 arithmetic, and verifying on a host that cannot reproduce the target's.

ONNX Runtime (MLAS) and OpenVINO (oneDNN) pick their int8 kernels from the CPU they run on. On x86
without VNNI the u8 x s8 dot product (VPMADDUBSW) adds pairs of products into a saturating int16, so
an artifact quantized for a VNNI CPU (8-bit weights) computes differently, sometimes far from the float
model, on an AVX2-only host: verifying it there would judge arithmetic the target never does. Then
edgec says so and verifies a *twin*: the same model quantized for this host (7-bit weights, see
:func:`edgec.core.targets.int8_arithmetic`), whose int8 results are the same on every x86 CPU. The shipped
artifact is still run and its host-limited metrics are reported beside the verdict.

``ONEDNN_MAX_CPU_ISA`` (which OpenVINO's oneDNN honours: with ``AVX2`` it runs the saturating kernels
on a VNNI CPU) lowers the detected ISA, so the host's verdict follows the kernels actually run.
ONNX Runtime ignores the variable (MLAS reads cpuid); for its targets the lowered ISA only makes edgec
verify a twin it did not need, which is safe.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import platform
from pathlib import Path

from edgec.backends.registry import EXPORTERS
from edgec.core import targets
from edgec.verify.host import verify

log = logging.getLogger(__name__)

# Hosts whose int8 dot products accumulate in int32 without intermediate saturation. ARM (SDOT/UDOT,
# or widening multiplies) is one of them; "unknown" (an x86 host without /proc/cpuinfo) is not.
EXACT_HOSTS = ("avx512_vnni", "avx_vnni", "non-x86")
RUNTIMES = ("onnxruntime", "openvino")  # the runtimes whose int8 kernels depend on the host CPU
TWIN_FOLDER = "host_twin"
# ONEDNN_MAX_CPU_ISA values that keep VNNI (oneDNN's names; every AMX/BF16/FP16 level includes VNNI).
_ONEDNN_WITH_VNNI = ("VNNI", "AMX", "BF16", "FP16", "AVX10", "ALL", "DEFAULT")


def detect(cpuinfo: str, onednn_max_cpu_isa: str | None = None, *, machine: str = "x86_64") -> str:
    """The host's int8 ISA from the text of ``/proc/cpuinfo`` and the ``ONEDNN_MAX_CPU_ISA`` value.

    One of ``avx512_vnni``, ``avx_vnni``, ``avx512`` (no VNNI), ``avx2``, ``sse``, ``non-x86``, or
    ``unknown`` (an x86 host whose flags cannot be read).
    """
    if machine.lower() not in ("x86_64", "amd64", "i686", "i386"):
        return "non-x86"
    line = next((ln for ln in cpuinfo.splitlines() if ln.split(":")[0].strip() == "flags"), None)
    if line is None:
        return "unknown"
    flags = set(line.split(":", 1)[1].split())
    found = next((name for flag, name in (("avx512_vnni", "avx512_vnni"), ("avx_vnni", "avx_vnni"),
                                          ("avx512bw", "avx512"), ("avx2", "avx2")) if flag in flags), "sse")
    cap = (onednn_max_cpu_isa or "").strip().upper()
    if cap and found in EXACT_HOSTS and not any(tag in cap for tag in _ONEDNN_WITH_VNNI):
        found = "avx512" if cap.startswith("AVX512") else "avx2" if cap.startswith("AVX2") else "sse"
    return found


def host_isa() -> str:
    """:func:`detect` on this machine (``/proc/cpuinfo``, ``ONEDNN_MAX_CPU_ISA``)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        cpuinfo = ""
    return detect(cpuinfo, os.environ.get("ONEDNN_MAX_CPU_ISA"), machine=platform.machine())


def check(profile: dict, host: str) -> dict | None:
    """Whether ``host`` computes the target's int8 artifact as the target does (None: not applicable).

    Applies to int8 artifacts verified in ONNX Runtime or OpenVINO. The host reproduces the target when
    the artifact cannot saturate (7-bit weights) or the host accumulates exactly (VNNI, non-x86).
    """
    runtime = profile.get("verification", {}).get("runtime")
    if runtime not in RUNTIMES or profile.get("quantization", {}).get("scheme", "int8") != "int8":
        return None
    arithmetic = targets.int8_arithmetic(profile)
    reproduces = arithmetic["saturation_safe"] or host in EXACT_HOSTS
    section = {"host_isa": host, "target_isa": arithmetic["isa"] or "non-x86",
               "saturation_safe": arithmetic["saturation_safe"], "host_reproduces": reproduces}
    if not reproduces:
        section["note"] = (f"this host's CPU ({host}, no VNNI) can saturate the int8 dot products that the "
                           f"target ({section['target_isa']}) computes exactly; verified a twin quantized with "
                           f"7-bit weights for this host instead of the shipped artifact")
    return section


def twin_profile(profile: dict) -> dict:
    """``profile`` for an x86 CPU without VNNI: the same target quantized so that no x86 CPU saturates."""
    twin = copy.deepcopy(profile)
    twin.setdefault("cpu", {})["isa"] = "avx2"
    twin.get("quantization", {}).pop("overflow_fix", None)
    return twin


def verify_build(build, reference_model, *, host: str | None = None) -> dict:
    """The ``verification`` section for ``build``: the shipped artifact, or its host-safe twin.

    Records the ``int8_arithmetic`` section in ``build.report``; when the host cannot reproduce the
    target's arithmetic, says so on the console, exports the twin into ``intermediate/host_twin`` with
    the target's exporter and verifies that, adding the shipped artifact's host-limited metrics.
    """
    section = check(build.target, host or host_isa())
    if section is not None:
        build.report["int8_arithmetic"] = section
    if section is None or section["host_reproduces"]:
        if section is not None:
            section["verified"] = str(build.artifact.relative_to(build.out))
        return verify(build.artifact, reference_model, build.evaluation, build.target, kinds=build.settings)
    log.warning("%s: %s", build.target["id"], section["note"])
    folder = build.work / TWIN_FOLDER
    (folder / "intermediate").mkdir(parents=True)
    twin = dataclasses.replace(build, target=twin_profile(build.target), out=folder, work=folder / "intermediate",
                               report={"size": {}, "compression": {}}, failures=[], artifact=None)
    EXPORTERS[twin.target["format"]](twin)
    build.failures += [f"[host twin] {f}" for f in twin.failures]
    result = verify(twin.artifact, reference_model, build.evaluation, twin.target, kinds=build.settings)
    shipped = verify(build.artifact, reference_model, build.evaluation, build.target, kinds=build.settings)
    section["verified"] = str(twin.artifact.relative_to(build.out))
    section["shipped_on_host"] = {"note": "host-limited: this CPU's saturating int8 arithmetic, not the target's",
                                  **{k: shipped[k] for k in ("top1_agreement", "cosine", "artifact_top1")}}
    return {**result, "verified_artifact": section["verified"]}


def artifact_to_verify(folder: Path, artifact: Path, profile: dict, *, host: str | None = None
                       ) -> tuple[Path, dict | None]:
    """For ``edgec verify``: the artifact this host can judge (the build's twin, if needed) and why.

    A build made on a VNNI host has no twin; then the shipped artifact is run and the section says the
    verdict is host-limited (the caller adds that to any failure), rather than judging silently.
    """
    section = check(profile, host or host_isa())
    if section is None or section["host_reproduces"]:
        return artifact, section
    twin = folder / "intermediate" / TWIN_FOLDER / artifact.name
    if twin.is_file():
        section["verified"] = str(twin.relative_to(folder))
    else:
        twin = artifact
        section["host_limited"] = True
        section["note"] = (f"this host's CPU ({section['host_isa']}, no VNNI) can saturate int8 dot "
                           f"products that the target ({section['target_isa']}) computes exactly, and the build "
                           "has no twin for such a host: the metrics are this host's, not the target's")
    log.warning("%s: %s", profile["id"], section["note"])
    return twin, section
