"""OpenVINO's exceptions put a source location first and the reason after (edgec/runtimes/openvino.py)."""

from edgec.runtimes.openvino import openvino_reason


def test_the_reason_line_is_kept_not_the_source_location():
    error = RuntimeError("Exception from src/inference/src/cpp/core.cpp:117:\n"
                         "Exception from src/plugins/intel_cpu/src/node.cpp:42:\n"
                         "[CPU] Eltwise node with name 'x' has unsupported precision\n\n")
    assert openvino_reason(error) == "[CPU] Eltwise node with name 'x' has unsupported precision"
    # The CPU plugin's internal checks (MobileNetV3Small's quantized IR in the coverage matrix):
    check = "Check 'any_of(scale.size(), OC, 1U)' failed at src/plugins/intel_cpu/src/dnnl_postops_composer.cpp:526"
    assert openvino_reason(RuntimeError(f"Exception from src/inference/src/cpp/core.cpp:117:\n{check}\n")) == check
    assert openvino_reason(RuntimeError("one line")) == "one line"
    assert openvino_reason(RuntimeError("Exception from src/a.cpp:1:")) == "Exception from src/a.cpp:1:"
    assert openvino_reason(RuntimeError("")) == ""
