"""`--project arduino|platformio|zephyr|esp-idf`: each project against its ecosystem's manifest format
and layout, and its framework-independent C (model + protocol loop) cross-compiled with
arm-none-eabi-gcc. (The frameworks themselves are not installable offline; their glue is the example.)
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import DIGITS_CALIBRATION, DIGITS_MODEL

import cbackend_support as support

pytestmark = [pytest.mark.toolchain,
              pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                                 reason="arm-none-eabi-gcc missing: run `make toolchains`")]

# Arduino library specification 1.5: the required fields of library.properties and its categories.
ARDUINO_REQUIRED = ("name", "version", "author", "maintainer", "sentence", "paragraph", "category", "url",
                    "architectures")
ARDUINO_CATEGORIES = ("Display", "Communication", "Signal Input/Output", "Sensors", "Device Control", "Timing",
                      "Data Storage", "Data Processing", "Other")
M4 = ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")


def _profile(target: str) -> dict:
    from edgec.core import targets

    return targets.with_backend(targets.resolve(target), "c")


@pytest.fixture(scope="module")
def digits_c(tmp_path_factory) -> Path:
    """The digits example as edgec's generated C (what `--backend c` puts at the top of OUT/<target>/)."""
    from edgec.backends.c import generate

    folder = tmp_path_factory.mktemp("digits_c")
    generate(support.digits_int8_tflite(DIGITS_MODEL, DIGITS_CALIBRATION), folder)
    return folder


def _write(tmp_path: Path, c_dir: Path, kind: str, target: str = "stm32f405") -> Path:
    from edgec.device.firmware.projects import write_project

    folder = shutil.copytree(c_dir, tmp_path / "build")
    entry = write_project(folder, _profile(target), kind)
    assert entry["kind"] == kind and entry["folder"] == "project"
    return folder / "project"


def _cross_compile(library: Path, tmp_path: Path, flags=M4) -> str:
    """Compile every C file of ``library`` for a Cortex-M; return the symbols the objects define."""
    objects = []
    for source in sorted(library.glob("*.c")):
        obj = tmp_path / f"{source.stem}.o"
        subprocess.run(["arm-none-eabi-gcc", "-mthumb", *flags, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                        "-c", str(source), "-o", str(obj)], check=True, capture_output=True, text=True)
        objects.append(str(obj))
    return subprocess.run(["arm-none-eabi-nm", "--defined-only", *objects], check=True, capture_output=True,
                          text=True).stdout


def _c_sources(library: Path) -> set[str]:
    return {p.name for p in library.glob("*.c")}


def _defines(symbols: str) -> set[str]:
    return {line.split()[-1] for line in symbols.splitlines() if len(line.split()) == 3}


def test_arduino_library_follows_the_library_specification_and_compiles(digits_c, tmp_path):
    project = _write(tmp_path, digits_c, "arduino")
    props = dict(line.split("=", 1) for line in (project / "library.properties").read_text().splitlines() if line)
    assert all(props.get(k) for k in ARDUINO_REQUIRED), props
    assert props["category"] in ARDUINO_CATEGORIES and re.fullmatch(r"\d+\.\d+\.\d+", props["version"])
    for header in props["includes"].split(","):
        assert (project / "src" / header).is_file()
    sketch = project / "examples" / "edgec_verify" / "edgec_verify.ino"  # a sketch folder holds its namesake
    text = sketch.read_text()
    assert "void setup()" in text and "void loop()" in text and "edgec_serve_one();" in text
    symbols = _defines(_cross_compile(project / "src", tmp_path))
    # The framework owns main(); the library serves the protocol and runs the model.
    assert {"edgec_serve_one", "edgec_invoke", "frame_read", "crc32_update"} <= symbols and "main" not in symbols


def test_platformio_project_has_an_environment_for_the_board_and_its_library_compiles(digits_c, tmp_path):
    project = _write(tmp_path, digits_c, "platformio", "nrf51822")
    ini = configparser.ConfigParser()
    ini.read(project / "platformio.ini")
    env = f"env:{ini['platformio']['default_envs']}"
    assert env == "env:nrf51822"
    assert ini[env]["monitor_speed"] == "115200"  # the protocol's baud rate
    assert (ini[env]["platform"], ini[env]["board"], ini[env]["framework"]) == ("nordicnrf51", "bbcmicrobit",
                                                                                 "arduino")
    assert "edgec_serve_one();" in (project / "src" / "main.cpp").read_text()
    symbols = _defines(_cross_compile(project / "lib" / "edgec_model" / "src", tmp_path,
                                      ("-mcpu=cortex-m0", "-mfloat-abi=soft")))
    assert "edgec_serve_one" in symbols and "main" not in symbols


def test_zephyr_module_and_sample_are_complete_and_compile(digits_c, tmp_path):
    project = _write(tmp_path, digits_c, "zephyr")
    module = yaml.safe_load((project / "zephyr" / "module.yml").read_text())
    assert module["name"] == "edgec_model"
    assert (project / module["build"]["cmake"] / "CMakeLists.txt").is_file()
    assert (project / module["build"]["kconfig"]).is_file()
    assert re.search(r"^config EDGEC_MODEL\n\tbool ", (project / "Kconfig").read_text(), re.M)
    cmake = (project / "CMakeLists.txt").read_text()
    assert {m for m in re.findall(r"src/(\S+\.c)", cmake)} == _c_sources(project / "src")
    sample = project / "samples" / "edgec_verify"
    assert "CONFIG_EDGEC_MODEL=y" in (sample / "prj.conf").read_text().splitlines()
    assert "ZEPHYR_EXTRA_MODULES ${CMAKE_CURRENT_SOURCE_DIR}/../.." in (sample / "CMakeLists.txt").read_text()
    tests = yaml.safe_load((sample / "sample.yaml").read_text())["tests"]
    assert tests["sample.edgec.verify"]["platform_allow"] == ["olimex_stm32_h405"]
    assert "edgec_serve_one();" in (sample / "src" / "main.c").read_text()
    assert "edgec_serve_one" in _defines(_cross_compile(project / "src", tmp_path))


def test_esp_idf_component_manifest_and_project_are_complete_and_compile(digits_c, tmp_path):
    project = _write(tmp_path, digits_c, "esp-idf", "esp32-s3")
    component = project / "components" / "edgec_model"
    manifest = yaml.safe_load((component / "idf_component.yml").read_text())
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"]) and manifest["dependencies"]["idf"] == ">=5.0"
    register = (component / "CMakeLists.txt").read_text()
    assert register.startswith("idf_component_register(")
    assert set(re.findall(r'"(\S+\.c)"', register)) == _c_sources(component)
    assert "REQUIRES edgec_model" in (project / "main" / "CMakeLists.txt").read_text()
    assert "void app_main(void)" in (project / "main" / "main.c").read_text()
    assert 'CONFIG_IDF_TARGET="esp32s3"' in (project / "sdkconfig.defaults").read_text()
    assert "include($ENV{IDF_PATH}/tools/cmake/project.cmake)" in (project / "CMakeLists.txt").read_text()
    # No Xtensa compiler here: the component's portable C is checked with the Arm one.
    assert "edgec_invoke" in _defines(_cross_compile(component, tmp_path))


def test_a_project_for_a_board_the_framework_lacks_is_refused(tmp_path):
    from edgec.core.errors import InputError
    from edgec.device.firmware.projects import check_project

    with pytest.raises(InputError, match="esp-idf projects are written for boards esp32-s3"):
        check_project([_profile("stm32f405")], "esp-idf")
