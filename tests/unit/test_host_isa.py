"""Host int8 ISA detection from /proc/cpuinfo text, and the target's int8 settings from its cpu.isa."""

from __future__ import annotations

import pytest

from edgec.verify import host_isa
from edgec.core import targets
from edgec.core.errors import InputError

# Flag lines as /proc/cpuinfo prints them (trimmed of flags that do not matter here, order kept).
SAPPHIRE_RAPIDS = ("flags\t\t: fpu vme sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c bmi1 avx2 avx512f avx512dq "
                   "avx512cd avx512bw avx512vl avx_vnni avx512_bf16 avx512_vnni amx_bf16 amx_int8\n")
ALDER_LAKE = "flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma bmi1 avx2 bmi2 avx_vnni sha_ni\n"
SKYLAKE_X = "flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 avx fma avx2 avx512f avx512dq avx512cd avx512bw avx512vl\n"
EPYC_ZEN2 = ("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B12\n"
             "flags\t\t: fpu sse sse2 pni ssse3 fma sse4_1 sse4_2 avx f16c sse4a bmi1 avx2 bmi2 sha_ni clzero\n")
SANDY_BRIDGE = "flags\t\t: fpu sse sse2 ssse3 sse4_1 sse4_2 popcnt aes avx\n"
AARCH64 = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes crc32 asimddp\n"


@pytest.mark.parametrize("cpuinfo,expected", [
    (SAPPHIRE_RAPIDS, "avx512_vnni"), (ALDER_LAKE, "avx_vnni"), (SKYLAKE_X, "avx512"),
    (EPYC_ZEN2, "avx2"), (SANDY_BRIDGE, "sse"), ("", "unknown")])
def test_detect_names_the_int8_isa_of_x86_flag_lines(cpuinfo, expected):
    assert host_isa.detect(cpuinfo) == expected


def test_detect_on_arm_does_not_read_x86_flags():
    assert host_isa.detect(AARCH64, machine="aarch64") == "non-x86"
    assert host_isa.detect(SAPPHIRE_RAPIDS, machine="aarch64") == "non-x86"


@pytest.mark.parametrize("cap,expected", [
    ("AVX2", "avx2"), ("avx2", "avx2"), ("AVX512_CORE", "avx512"), ("SSE41", "sse"),
    ("AVX512_CORE_VNNI", "avx512_vnni"), ("AVX512_CORE_AMX", "avx512_vnni"), ("AVX2_VNNI", "avx512_vnni"),
    ("ALL", "avx512_vnni"), ("", "avx512_vnni")])
def test_onednn_max_cpu_isa_only_lowers_the_detected_isa(cap, expected):
    assert host_isa.detect(SAPPHIRE_RAPIDS, cap) == expected
    assert host_isa.detect(EPYC_ZEN2, cap) == "avx2"  # a cap never adds VNNI the CPU lacks


def test_intel_cpu_assumes_vnni_and_keeps_8_bit_weights():
    p = targets.resolve("intel-cpu")
    assert p["cpu"]["isa"] == "avx512_vnni"
    assert targets.int8_arithmetic(p) == {"isa": "avx512_vnni", "saturation_safe": False, "weight_dtype": "int8",
                                          "reduce_range": False, "overflow_fix": "disable"}


def test_avx2_profile_and_onnx_cpu_cannot_saturate():
    avx2 = targets.int8_arithmetic(targets.resolve("intel-cpu-avx2"))
    assert avx2["isa"] == "avx2" and avx2["overflow_fix"] == "enable" and avx2["saturation_safe"]
    onnx_cpu = targets.int8_arithmetic(targets.resolve("onnx-cpu"))
    assert onnx_cpu["isa"] == "any" and onnx_cpu["weight_dtype"] == "uint8" and onnx_cpu["saturation_safe"]


def test_onnx_cpu_vnni_keeps_int8_weights_and_needs_a_twin_on_avx2():
    p = targets.resolve("onnx-cpu-vnni")
    assert targets.int8_arithmetic(p)["weight_dtype"] == "int8" and not targets.int8_arithmetic(p)["reduce_range"]
    assert not host_isa.check(p, "avx2")["host_reproduces"]
    assert targets.int8_arithmetic(host_isa.twin_profile(p))["reduce_range"]  # its twin: 7-bit weights


def test_non_x86_targets_keep_8_bit_weights():
    arithmetic = targets.int8_arithmetic(targets.resolve("jetson-orin-onnx"))
    assert arithmetic["isa"] is None and arithmetic["weight_dtype"] == "int8" and not arithmetic["reduce_range"]


def _write(folder, name, text):
    (folder / f"{name}.toml").write_text(text)


def test_unknown_isa_is_a_config_error(tmp_path):
    _write(tmp_path, "cpu", 'description = "x"\nformat = "openvino"\n[cpu]\nisa = "avx512"\n')
    with pytest.raises(InputError, match="cpu.isa 'avx512' is not one of avx512_vnni, avx_vnni, avx2, any") as e:
        targets.resolve("cpu", tmp_path)
    assert e.value.exit_code == 2


def test_overflow_fix_disable_on_a_cpu_without_vnni_is_refused(tmp_path):
    _write(tmp_path, "cpu", 'description = "x"\nformat = "openvino"\n[cpu]\nisa = "avx2"\n'
                            '[quantization]\noverflow_fix = "disable"\n')
    with pytest.raises(InputError, match="'disable' needs a VNNI CPU"):
        targets.resolve("cpu", tmp_path)
    _write(tmp_path, "cpu", 'description = "x"\nformat = "openvino"\n[quantization]\noverflow_fix = "off"\n')
    with pytest.raises(InputError, match="overflow_fix 'off' is not one of"):
        targets.resolve("cpu", tmp_path)


def test_an_explicit_overflow_fix_wins_over_the_isa(tmp_path):
    _write(tmp_path, "cpu", 'description = "x"\nformat = "openvino"\n[cpu]\nisa = "avx2"\n'
                            '[quantization]\noverflow_fix = "first_layer"\n')
    arithmetic = targets.int8_arithmetic(targets.resolve("cpu", tmp_path))
    assert arithmetic["overflow_fix"] == "first_layer" and not arithmetic["saturation_safe"]


@pytest.mark.parametrize("target,host,reproduces", [
    ("intel-cpu", "avx512_vnni", True), ("intel-cpu", "avx_vnni", True), ("intel-cpu", "avx2", False),
    ("intel-cpu", "avx512", False), ("intel-cpu", "unknown", False), ("intel-cpu", "non-x86", True),
    ("intel-cpu-avx2", "avx2", True), ("onnx-cpu", "avx2", True), ("jetson-orin-onnx", "avx2", False)])
def test_check_says_whether_the_host_reproduces_the_targets_arithmetic(target, host, reproduces):
    section = host_isa.check(targets.resolve(target), host)
    assert section["host_reproduces"] is reproduces and section["host_isa"] == host
    assert ("note" in section) is not reproduces


def test_check_does_not_apply_to_tflite_or_float_artifacts():
    assert host_isa.check(targets.resolve("cortex-m4"), "avx2") is None
    assert host_isa.check(targets.resolve("intel-gpu"), "avx2") is None  # fp16 IR


def test_twin_profile_is_the_host_safe_setting_and_leaves_the_target_alone():
    target = targets.resolve("intel-cpu")
    twin = host_isa.twin_profile(target)
    assert targets.int8_arithmetic(twin)["saturation_safe"] and target["cpu"]["isa"] == "avx512_vnni"
    assert host_isa.check(twin, "avx2")["host_reproduces"]
