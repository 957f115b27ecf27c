"""The u8 x s8 saturation case itself: a MatMul built so that AVX2's int16 pair sums overflow.

x = 1.0 quantizes to 255 and the weights to +-127, so each pair of products is 255 * 127 * 2 = 64,770,
past int16's 32,767. VNNI (and ARM) accumulate exactly; AVX2 without VNNI (VPMADDUBSW) clips every pair.
The ONNX models are quantized with the settings edgec derives from each target's ``cpu.isa`` and run
in the real ONNX Runtime and OpenVINO; their outputs are turned back into int32 accumulators and
compared with integer references computed in numpy. What is expected of the 8-bit (VNNI) setting
depends on the CPU that runs it, which the test detects (``edgec.verify.host_isa``) and forces: OpenVINO with
``ONEDNN_MAX_CPU_ISA=AVX2`` and, when ``qemu-x86_64`` is installed, ONNX Runtime on an emulated Haswell.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.verify import host_isa
from edgec.core import targets

pytestmark = pytest.mark.toolchain

K, N = 64, 4


def _float_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = np.stack([np.ones(K), -np.ones(K), np.tile([1.0, -1.0], K // 2), rng.uniform(-1, 1, K)], 1)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "saturate",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, K])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N])],
                              [numpy_helper.from_array(w.astype(np.float32), "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _quantize(arithmetic: dict, path) -> dict:
    """QDQ model with the target's weight settings; the float output stays unquantized, so ORT runs
    MatMulIntegerToFloat and its output is the int32 accumulator times the scales, nothing rounded."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter([{"x": np.zeros((1, K), np.float32)}, {"x": np.ones((1, K), np.float32)}])

        def get_next(self):
            return next(self.feeds, None)

    float_path = path.with_name("float.onnx")
    onnx.save(_float_model(), str(float_path))
    weights = QuantType.QUInt8 if arithmetic["weight_dtype"] == "uint8" else QuantType.QInt8
    quantize_static(str(float_path), str(path), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=weights, per_channel=True,
                    reduce_range=arithmetic["reduce_range"],
                    extra_options={"WeightSymmetric": True, "OpTypesToExcludeOutputQuantization": ["MatMul"]})
    init = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    qw = init["w_quantized"].astype(np.int32) - init["w_zero_point"].astype(np.int32)
    qx = np.full(K, 255 - int(init["x_zero_point"]), np.int32)  # x = 1.0 is the top of the calibrated range
    return {"scale": float(init["x_scale"]) * init["w_scale"].astype(np.float64), "qx": qx, "qw": qw,
            "zero_point_w": init["w_zero_point"]}


def _exact(q: dict) -> np.ndarray:
    return q["qx"] @ q["qw"]


def _avx2(q: dict) -> np.ndarray:
    """VPMADDUBSW: u8 x s8 products of neighbouring k added into a saturating int16, then summed in int32."""
    pairs = (q["qx"][:, None] * q["qw"]).reshape(K // 2, 2, N).sum(1)
    return np.clip(pairs, -32768, 32767).sum(0)


def _accumulators(y: np.ndarray, q: dict) -> np.ndarray:
    return np.rint(np.asarray(y, np.float64).reshape(-1) / q["scale"]).astype(np.int64)


SETTINGS = {"vnni": "intel-cpu", "avx2": "intel-cpu-avx2", "any": "onnx-cpu"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saturation")
    out = {}
    for name, target in SETTINGS.items():
        arithmetic = targets.int8_arithmetic({**targets.resolve(target), "format": "onnx"})
        out[name] = (folder / f"{name}.onnx", _quantize(arithmetic, folder / f"{name}.onnx"))
    return out


def test_the_model_saturates_avx2_with_8_bit_weights_and_not_with_the_safe_settings(models):
    vnni, avx2, any_ = (models[k][1] for k in ("vnni", "avx2", "any"))
    assert (np.abs(vnni["qw"][:, :2]) == 127).all()
    assert not np.array_equal(_exact(vnni), _avx2(vnni))  # the case exists: 8-bit weights clip on AVX2
    assert _exact(vnni)[0] == K * 255 * 127 and _avx2(vnni)[0] == K // 2 * 32767
    assert np.abs(avx2["qw"]).max() <= 64 and np.array_equal(_exact(avx2), _avx2(avx2))  # 7-bit: no clip
    assert any_["zero_point_w"].tolist() == [128] * N  # U8U8: uint8 weights, MLAS widens both to int16


def _run_onnxruntime(path) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": np.ones((1, K), np.float32)})[0]


def _cpu(cap: str | None) -> str:
    """This CPU's int8 ISA as a runtime honouring ONEDNN_MAX_CPU_ISA=cap sees it (None: uncapped)."""
    cpuinfo = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    return host_isa.detect(cpuinfo, cap, machine=os.uname().machine)


def test_onnxruntime_on_this_host(models):
    host = _cpu(None)  # MLAS reads cpuid and ignores ONEDNN_MAX_CPU_ISA
    for name, (path, q) in models.items():
        got = _accumulators(_run_onnxruntime(path), q)
        if name == "vnni" and host not in host_isa.EXACT_HOSTS:  # e.g. AMD EPYC (Zen 2/3): AVX2, no VNNI
            np.testing.assert_array_equal(got, _avx2(q), err_msg=f"{name} on a {host} host: saturated")
        else:
            np.testing.assert_array_equal(got, _exact(q), err_msg=f"{name} on a {host} host")


OPENVINO_SCRIPT = """
import json, sys, numpy as np, openvino as ov
compiled = ov.Core().compile_model(sys.argv[1], "CPU")
print(json.dumps(np.asarray(compiled([np.ones((1, %d), np.float32)])[0]).ravel().tolist()))
""" % K


def _run_openvino(path, cap: str | None) -> np.ndarray:
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
    done = subprocess.run([sys.executable, "-c", OPENVINO_SCRIPT, str(path)], capture_output=True, text=True,
                          env={**env, "ONEDNN_MAX_CPU_ISA": cap} if cap else env, timeout=300)
    assert done.returncode == 0, done.stderr
    return np.array(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("cap", [None, "AVX2"])
def test_openvino_with_its_isa_detected_and_forced_to_avx2(models, cap):
    """OpenVINO's oneDNN honours ONEDNN_MAX_CPU_ISA: with AVX2 it runs the saturating kernels even here."""
    host = _cpu(cap)
    for name in ("vnni", "avx2"):
        path, q = models[name]
        got = _accumulators(_run_openvino(path, cap), q)
        if name == "vnni" and host not in host_isa.EXACT_HOSTS:
            np.testing.assert_array_equal(got, _avx2(q), err_msg=f"{name}, OpenVINO as {host}: saturated")
        else:
            np.testing.assert_array_equal(got, _exact(q), err_msg=f"{name}, OpenVINO as {host}")


ORT_SCRIPT = """
import json, sys, numpy as np, onnxruntime as ort
x = {"x": np.ones((1, %d), np.float32)}
print(json.dumps([ort.InferenceSession(p, providers=["CPUExecutionProvider"]).run(None, x)[0].ravel().tolist()
                  for p in sys.argv[1:]]))
""" % K


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="emulates an x86 CPU for an x86 Python")
def test_onnxruntime_on_an_emulated_avx2_cpu(models):
    """ONNX Runtime has no ISA override (MLAS reads cpuid): QEMU user mode runs it on a Haswell (AVX2,
    no VNNI, no AVX-512; ``make toolchains`` installs qemu-user). The 8-bit setting saturates exactly as
    VPMADDUBSW does; 7-bit (intel-cpu-avx2) and U8U8 (onnx-cpu) weights give the exact accumulators."""
    qemu = shutil.which("qemu-x86_64")
    assert qemu, "qemu-x86_64 not found: run `make toolchains` (Debian package qemu-user)"
    names = list(models)
    done = subprocess.run([qemu, "-cpu", "Haswell", sys.executable, "-c", ORT_SCRIPT,
                           *[str(models[n][0]) for n in names]], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    outputs = dict(zip(names, json.loads(done.stdout.strip().splitlines()[-1])))
    for name, (_, q) in models.items():
        expected = _avx2(q) if name == "vnni" else _exact(q)
        np.testing.assert_array_equal(_accumulators(np.array(outputs[name]), q), expected, err_msg=name)
