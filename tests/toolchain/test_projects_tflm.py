"""`--format tflm --project arduino|platformio|zephyr|esp-idf`: the project declares the ecosystem's TFLite
Micro package (esp-tflite-micro, Zephyr's tflite-micro module, Arduino_TensorFlowLite) instead of shipping
its sources, and holds the model array, the op resolver of the model's operators, the measured arena,
the protocol loop on the interpreter and the bundled self-check samples.

No TFLite Micro headers are installed here (and the frameworks are not installable offline): the C parts
are cross-compiled, and edgec_tflm.cpp is run through the C++ preprocessor to show which headers it
takes from the package and that every other one is in the project. It is not compiled.
"""

from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import DIGITS_CALIBRATION, DIGITS_EVAL, DIGITS_MODEL

pytestmark = [pytest.mark.toolchain,
              pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                                 reason="arm-none-eabi-gcc missing: run `make toolchains`")]

M4 = ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")
# What edgec_tflm.cpp takes from the TFLite Micro package, and nothing else from outside the project.
TFLM_HEADERS = {"tensorflow/lite/micro/micro_interpreter.h", "tensorflow/lite/schema/schema_generated.h",
                "tensorflow/lite/micro/micro_mutable_op_resolver.h"}


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    from edgec.cli import main

    out = tmp_path_factory.mktemp("tflm_projects")
    assert main(["compile", str(DIGITS_MODEL), "-t", "stm32f405", "-t", "esp32-s3", "--project", "zephyr",
                 "--calibration", str(DIGITS_CALIBRATION), "--eval", str(DIGITS_EVAL), "-o", str(out)]) == 0
    return out


def _project(build: Path, target: str, kind: str, tmp_path: Path) -> Path:
    from edgec.core import targets
    from edgec.device.firmware.projects import write_project

    if kind == "zephyr":  # the one the compile wrote
        return build / target / "project"
    folder = shutil.copytree(build / target, tmp_path / target)
    write_project(folder, targets.resolve(target), kind)
    return folder / "project"


def _check_library(library: Path, build_folder: Path, tmp_path: Path) -> None:
    """The model, resolver, arena and samples are the build's; the C compiles; the C++ needs only TFLM."""
    files = {p.name for p in library.iterdir()} - {"CMakeLists.txt", "idf_component.yml"}  # esp-idf's manifests
    assert {"model_data.cpp", "model_data.h", "op_resolver.h", "edgec_tflm.cpp", "frame.c", "crc32.c",
            "edgec_fw.h", "edgec_port.h", "edgec_samples.c", "edgec_samples.h"} == files
    assert not any("tensorflow" in str(p) for p in library.rglob("*"))  # the package's sources stay out
    assert (library / "op_resolver.h").read_text() == (build_folder / "op_resolver.h").read_text()
    assert (library / "model_data.cpp").read_text() == (build_folder / "model_data.cc").read_text()
    arena = re.search(r"kTensorArenaSize = (\d+);", (library / "model_data.h").read_text())
    report = json.loads((build_folder / "report.json").read_text())
    assert arena and int(arena.group(1)) >= report["memory"]["arena_bytes"] > 0
    for source in ("frame.c", "crc32.c", "edgec_samples.c"):
        subprocess.run(["arm-none-eabi-gcc", "-mthumb", *M4, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                        "-include", str(library / "edgec_port.h"), "-c", str(library / source),
                        "-o", str(tmp_path / f"{source}.o")], check=True, capture_output=True, text=True)
    deps = subprocess.run(["arm-none-eabi-g++", "-mthumb", *M4, "-std=c++17", "-MM", "-MG", "-I", str(library),
                           str(library / "edgec_tflm.cpp")], check=True, capture_output=True, text=True).stdout
    headers = set(deps.replace("\\\n", " ").split()[2:])
    outside = {h for h in headers if not h.startswith(str(library))}
    assert outside == TFLM_HEADERS
    assert {f"{library}/{h}" for h in ("edgec_fw.h", "edgec_port.h", "model_data.h", "op_resolver.h",
                                        "edgec_samples.h")} <= headers


def test_bundled_samples_are_tflite_micros_outputs_on_the_shipped_model(build):
    from edgec.runtimes.tflm import run_tflm

    folder = build / "stm32f405"
    report = json.loads((folder / "report.json").read_text())
    n = report["project"]["self_check_samples"]
    assert n == 4
    text = (folder / "project" / "src" / "edgec_samples.c").read_text()
    arrays = [np.array([int(v, 16) for v in re.findall(r"0x[0-9a-f]{2}", body)], np.uint8)
              for body in re.findall(r"= \{(.*?)\n\};", text, re.S)]
    inputs, outputs = arrays[0].reshape(n, -1).view(np.int8), arrays[1].reshape(n, -1).view(np.int8)
    got = run_tflm((folder / "model.tflite").read_bytes(), list(inputs))[0].reshape(n, -1)
    np.testing.assert_array_equal(got, outputs)


def test_esp_idf_component_depends_on_esp_tflite_micro(build, tmp_path):
    project = _project(build, "esp32-s3", "esp-idf", tmp_path)
    component = project / "components" / "edgec_model"
    manifest = yaml.safe_load((component / "idf_component.yml").read_text())
    assert manifest["dependencies"] == {"idf": ">=5.0", "espressif/esp-tflite-micro": "^1.3.0"}
    register = (component / "CMakeLists.txt").read_text()
    assert set(re.findall(r'"(\S+\.(?:cpp|c))\b"', register)) == {p.name for p in component.glob("*.c*")}
    assert "REQUIRES espressif__esp-tflite-micro" in register
    assert "edgec_self_check();" in (project / "main" / "main.c").read_text()
    _check_library(component, build / "esp32-s3", tmp_path)


def test_zephyr_module_enables_the_tflite_micro_module(build, tmp_path):
    project = _project(build, "stm32f405", "zephyr", tmp_path)
    assert re.search(r"^config EDGEC_MODEL\n\tbool .*\n\tdepends on TENSORFLOW_LITE_MICRO\n",
                     (project / "Kconfig").read_text(), re.M)
    cmake = (project / "CMakeLists.txt").read_text()
    assert set(re.findall(r"src/(\S+\.(?:cpp|c))\b", cmake)) == {p.name for p in (project / "src").glob("*.c*")}
    sample = project / "samples" / "edgec_verify"
    conf = (sample / "prj.conf").read_text().splitlines()
    assert {"CONFIG_TENSORFLOW_LITE_MICRO=y", "CONFIG_CPP=y", "CONFIG_EDGEC_MODEL=y"} <= set(conf)
    west = yaml.safe_load((sample / "west.yml").read_text())["manifest"]
    assert "+optional" in west["group-filter"]  # Zephyr lists tflite-micro in its optional group
    (zephyr,) = west["projects"]
    assert zephyr["name"] == "zephyr" and zephyr["import"] is True
    assert "no_threadsafe_statics" in (sample / "CMakeLists.txt").read_text()
    _check_library(project / "src", build / "stm32f405", tmp_path)


def test_arduino_library_depends_on_arduino_tensorflowlite(build, tmp_path):
    project = _project(build, "stm32f405", "arduino", tmp_path)
    props = dict(line.split("=", 1) for line in (project / "library.properties").read_text().splitlines() if line)
    assert props["depends"] == "Arduino_TensorFlowLite"
    for header in props["includes"].split(","):
        assert (project / "src" / header).is_file()
    sketch = (project / "examples" / "edgec_verify" / "edgec_verify.ino").read_text()
    assert "#include <TensorFlowLite.h>" in sketch and "edgec_self_check();" in sketch
    _check_library(project / "src", build / "stm32f405", tmp_path)


def test_platformio_project_takes_the_tflite_micro_library_from_lib_deps(build, tmp_path):
    project = _project(build, "stm32f405", "platformio", tmp_path)
    ini = configparser.ConfigParser()
    ini.read(project / "platformio.ini")
    env = ini[f"env:{ini['platformio']['default_envs']}"]
    assert env["lib_deps"].split() == ["https://github.com/tensorflow/tflite-micro-arduino-examples"]
    _check_library(project / "lib" / "edgec_model" / "src", build / "stm32f405", tmp_path)


def test_cmake_project_of_a_tflm_build_is_refused(build):
    from edgec.core import targets
    from edgec.core.errors import InputError
    from edgec.device.firmware.projects import check_project

    with pytest.raises(InputError, match=r"--project cmake is written for 'c' builds \(--backend c\): target "
                                         r"'stm32f405' is a 'tflm' build; add --backend c"):
        check_project([targets.resolve("stm32f405")], "cmake")
