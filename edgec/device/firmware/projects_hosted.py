"""Projects for the embedded frameworks (Arduino, PlatformIO, Zephyr, ESP-IDF) of a ``--backend c`` build.

Each holds one library: the generated C of the model and edgec's protocol loop (``edgec_serve.c``,
``frame.c``, ``crc32.c``), with ``edgec_port.h`` saying that the framework owns ``main`` and the
serial port. The framework's example is the glue: it implements the UART and counter functions of
``edgec_fw.h`` with the framework's own API and calls ``edgec_serve_one()`` forever, so
``edgec verify OUT/ID --port PORT`` checks the flashed board bit for bit; at boot it runs the build's
bundled held-out samples and prints one self-check line (:mod:`edgec.device.firmware.samples`).

A ``--backend c`` project is self-contained: no package beyond the framework itself. A ``tflm``
project holds the model as a const array (``model_data.cpp``), the op resolver of exactly the model's
operators (``op_resolver.h``), the arena size edgec measured (``kTensorArenaSize``) and the protocol
loop on the TFLite Micro interpreter (``edgec_tflm.cpp``, from src/tflm_main.cc), and declares the
ecosystem's TFLite Micro package as a dependency instead of shipping its sources (:data:`TFLM_PACKAGES`).
C++ sources are named ``.cpp``: the Arduino builder compiles .c, .cpp and .S only.
Layouts follow each ecosystem's spec:

- ``arduino``: a library (Arduino library specification 1.5: library.properties, src/, examples/);
- ``platformio``: platformio.ini with one environment for the target's board, src/main.cpp, lib/;
- ``zephyr``: a module (zephyr/module.yml, CMakeLists.txt, Kconfig) and samples/edgec_verify;
- ``esp-idf``: a project with the component components/edgec_model (idf_component.yml) and main/.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edgec.core.errors import InputError
from edgec.device.firmware.build import check_model_dir, firmware_source_dir

STAGE = "project"
LIBRARY = "edgec_model"
PROTOCOL_SOURCES = {"main.c": "edgec_serve.c", "frame.c": "frame.c", "crc32.c": "crc32.c"}
PROTOCOL_HEADERS = ("edgec_fw.h",)

# device.board -> (PlatformIO platform, board id, Zephyr board, ESP-IDF target); None: not supported there.
BOARDS = {
    "stm32f405": ("ststm32", "genericSTM32F405RG", "olimex_stm32_h405", None),
    "nrf51822": ("nordicnrf51", "bbcmicrobit", "bbc_microbit", None),
    "nrf52840": ("nordicnrf52", "nrf52840_dk_adafruit", "nrf52840dk/nrf52840", None),
    "rp2040": ("raspberrypi", "pico", "rpi_pico", None),
    "esp32-s3": ("espressif32", "esp32-s3-devkitc-1", "esp32s3_devkitc/esp32s3/procpu", "esp32s3"),
}
HOSTED_KINDS = ("arduino", "platformio", "zephyr", "esp-idf")

# The TFLite Micro package each ecosystem publishes (names checked against the ecosystems' own pages;
# README "Flash a board" says where): the ESP Component Registry's component, the Zephyr module (in
# Zephyr's west.yml, group "optional"; Kconfig TENSORFLOW_LITE_MICRO), the Arduino library of
# tensorflow/tflite-micro-arduino-examples (library.properties name; not in the Library Manager:
# installed with git clone), which PlatformIO takes as a git URL in lib_deps.
TFLM_PACKAGES = {
    "esp-idf": ("espressif/esp-tflite-micro", "^1.3.0"),
    "zephyr": ("tflite-micro", "CONFIG_TENSORFLOW_LITE_MICRO"),
    "arduino": ("Arduino_TensorFlowLite", "https://github.com/tensorflow/tflite-micro-arduino-examples"),
    "platformio": ("Arduino_TensorFlowLite", "https://github.com/tensorflow/tflite-micro-arduino-examples"),
}
# A tflm build's files the library takes (renamed): the model array, its header, the op resolver.
TFLM_MODEL_FILES = {"model_data.cc": "model_data.cpp", "model_data.h": "model_data.h", "op_resolver.h": "op_resolver.h"}
TFLM_PROTOCOL_SOURCES = {"tflm_main.cc": "edgec_tflm.cpp", "frame.c": "frame.c", "crc32.c": "crc32.c"}
SAMPLE_FILES = ("edgec_samples.c", "edgec_samples.h")


def _board(profile: dict, kind: str) -> tuple:
    name = profile.get("device", {}).get("board")
    entry = BOARDS.get(name)
    column = {"platformio": 1, "zephyr": 2, "esp-idf": 3}.get(kind)
    if column is not None and (entry is None or entry[column] is None):
        fits = [b for b, e in BOARDS.items() if e[column] is not None]
        raise InputError(f"--project {kind}: target '{profile['id']}' has board {name!r}; {kind} projects are "
                         f"written for boards {', '.join(fits)}", stage=STAGE, target=profile["id"])
    return entry or (None, None, None, None)


def check_hosted(profile: dict, kind: str) -> None:
    """Refuse a framework project the target's board has no entry for (InputError)."""
    _board(profile, kind)


def _library(c_dir: Path, dest: Path, profile: dict) -> list[str]:
    """Copy the model (generated C, or a tflm build's array and op resolver) and the protocol loop into
    ``dest``; return the C/C++ sources' names."""
    dest.mkdir(parents=True)
    src = firmware_source_dir()
    names = []
    if _is_tflm(profile):
        model = {c_dir / name: renamed for name, renamed in TFLM_MODEL_FILES.items()}
        model.update({c_dir / name: name for name in SAMPLE_FILES if (c_dir / name).is_file()})
        missing = [p.name for p in model if not p.is_file()]
        if missing:
            raise InputError(f"{c_dir}: no {', '.join(missing)} (the output of the tflm format) to build a project "
                             "from", stage=STAGE, target=profile.get("id"))
        protocol = TFLM_PROTOCOL_SOURCES
    else:
        model = {p: p.name for p in check_model_dir(c_dir) + sorted(c_dir.glob("*.h"))}
        protocol = PROTOCOL_SOURCES
    for path, renamed in model.items():
        shutil.copyfile(path, dest / renamed)
        names.append(renamed)
    for name, renamed in protocol.items():
        shutil.copyfile(src / name, dest / renamed)
        names.append(renamed)
    for name in (*PROTOCOL_HEADERS, "edgec_port.h"):
        shutil.copyfile(src / "hosted" / name if name == "edgec_port.h" else src / name, dest / name)
    return sorted(n for n in names if n.endswith((".c", ".cpp")))


def _is_tflm(profile: dict) -> bool:
    return profile.get("format") == "tflm"


def _glue(name: str) -> str:
    return (firmware_source_dir() / "hosted" / name).read_text()


def _arduino(c_dir: Path, dest: Path, profile: dict) -> None:
    _library(c_dir, dest / "src", profile)
    tflm = _is_tflm(profile)
    runtime = "TFLite Micro (Arduino_TensorFlowLite)" if tflm else "Generated C (int8, static arena, no heap)"
    (dest / "library.properties").write_text(
        f"name={LIBRARY}\nversion=1.0.0\nauthor=edgec\nmaintainer=edgec\n"
        f"sentence=The {profile['id']} model compiled by edgec, and edgec's serial verification protocol.\n"
        f"paragraph={runtime}. The edgec_verify example checks the bundled samples at boot and answers "
        "`edgec verify --port` on Serial at 115200 baud.\n"
        "category=Data Processing\nurl=https://github.com/edgec/edgec\narchitectures=*\n"
        f"includes=edgec_fw.h,{'model_data.h' if tflm else 'model.h'}\n"
        + (f"depends={TFLM_PACKAGES['arduino'][0]}\n" if tflm else ""))
    example = dest / "examples" / "edgec_verify"
    example.mkdir(parents=True)
    (example / "edgec_verify.ino").write_text(_arduino_sketch(profile))


def _arduino_sketch(profile: dict) -> str:
    """The Arduino glue; a tflm sketch includes the TFLite Micro library's header first so that the
    Arduino builder puts that library on the include path."""
    glue = _glue("arduino_glue.cpp")
    if not _is_tflm(profile):
        return glue
    return glue.replace("#include <Arduino.h>\n", "#include <Arduino.h>\n#include <TensorFlowLite.h>  "
                        "// Arduino_TensorFlowLite: the interpreter edgec_tflm.cpp runs\n", 1)


def _platformio(c_dir: Path, dest: Path, profile: dict) -> None:
    platform, board, _, _ = _board(profile, "platformio")
    _library(c_dir, dest / "lib" / LIBRARY / "src", profile)
    (dest / "src").mkdir()
    (dest / "src" / "main.cpp").write_text(_arduino_sketch(profile))
    deps = f"lib_deps =\n    {TFLM_PACKAGES['platformio'][1]}\n" if _is_tflm(profile) else ""
    env = profile["device"]["board"]
    (dest / "platformio.ini").write_text(
        f"; edgec firmware for target {profile['id']}: `pio run -t upload`, then\n"
        f"; `edgec verify OUT/{profile['id']} --port <the board's serial port>`.\n"
        f"[platformio]\ndefault_envs = {env}\n\n"
        f"[env:{env}]\nplatform = {platform}\nboard = {board}\nframework = arduino\nmonitor_speed = 115200\n"
        "build_flags = -O2\n" + deps)


def _zephyr(c_dir: Path, dest: Path, profile: dict) -> None:
    _, _, board, _ = _board(profile, "zephyr")
    sources = _library(c_dir, dest / "src", profile)
    tflm = _is_tflm(profile)
    (dest / "zephyr").mkdir()
    (dest / "zephyr" / "module.yml").write_text(f"name: {LIBRARY}\nbuild:\n  cmake: .\n  kconfig: Kconfig\n")
    (dest / "CMakeLists.txt").write_text(
        "if(CONFIG_EDGEC_MODEL)\n  zephyr_library()\n  zephyr_library_sources(\n"
        + "".join(f"    src/{s}\n" for s in sources) + "  )\n  zephyr_include_directories(src)\nendif()\n")
    (dest / "Kconfig").write_text(
        "config EDGEC_MODEL\n\tbool \"edgec model and serial verification protocol\"\n"
        + ("\tdepends on TENSORFLOW_LITE_MICRO\n" if tflm else "") + "\thelp\n"
        f"\t  The {profile['id']} model compiled by edgec (generated C), and edgec's\n"
        "\t  serial verification protocol loop (edgec_serve_one).\n")
    sample = dest / "samples" / "edgec_verify"
    (sample / "src").mkdir(parents=True)
    (sample / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20.0)\n"
        "# This module (two folders up) without adding it to the west manifest.\n"
        "list(APPEND ZEPHYR_EXTRA_MODULES ${CMAKE_CURRENT_SOURCE_DIR}/../..)\n"
        "find_package(Zephyr REQUIRED HINTS $ENV{ZEPHYR_BASE})\nproject(edgec_verify)\n"
        + (_ZEPHYR_NO_THREADSAFE_STATICS if tflm else "") + "target_sources(app PRIVATE src/main.c)\n")
    (sample / "prj.conf").write_text(
        (_ZEPHYR_TFLM_CONF if tflm else "")
        + "CONFIG_EDGEC_MODEL=y\nCONFIG_SERIAL=y\n# The console UART carries edgec's frames only.\n"
        "CONFIG_CONSOLE=n\nCONFIG_UART_CONSOLE=n\nCONFIG_PRINTK=n\nCONFIG_BOOT_BANNER=n\nCONFIG_LOG=n\n"
        "CONFIG_MAIN_STACK_SIZE=4096\n")
    (sample / "sample.yaml").write_text(
        "sample:\n  name: edgec verify\n  description: edgec's serial verification protocol over the console UART\n"
        f"tests:\n  sample.edgec.verify:\n    build_only: true\n    platform_allow:\n      - {board}\n")
    (sample / "src" / "main.c").write_text(_glue("zephyr_main.c"))
    if tflm:
        (sample / "west.yml").write_text(_ZEPHYR_WEST)


# Zephyr's west.yml lists the tflite-micro module in its "optional" group: this manifest enables it.
_ZEPHYR_WEST = """\
# west manifest for the edgec_verify sample with TensorFlow Lite Micro, written by edgec:
#   west init -l . && west update     (or, in an existing workspace:
#   west config manifest.project-filter -- +tflite-micro && west update)
manifest:
  group-filter: [+optional]
  remotes:
    - name: zephyrproject-rtos
      url-base: https://github.com/zephyrproject-rtos
  projects:
    - name: zephyr
      remote: zephyrproject-rtos
      revision: v4.1.0
      import: true
"""
_ZEPHYR_TFLM_CONF = ("# TensorFlow Lite Micro from Zephyr's tflite-micro module (west.yml), and the C++ it needs.\n"
                     "CONFIG_CPP=y\nCONFIG_REQUIRES_FULL_LIBCPP=y\nCONFIG_TENSORFLOW_LITE_MICRO=y\n")
# As Zephyr's own TFLite Micro samples: local statics without the thread-safe-init ABI Zephyr lacks.
_ZEPHYR_NO_THREADSAFE_STATICS = (
    "set(NO_THREADSAFE_STATICS $<TARGET_PROPERTY:compiler-cpp,no_threadsafe_statics>)\n"
    "zephyr_compile_options($<$<COMPILE_LANGUAGE:CXX>:${NO_THREADSAFE_STATICS}>)\n")


def _esp_idf(c_dir: Path, dest: Path, profile: dict) -> None:
    _, _, _, idf_target = _board(profile, "esp-idf")
    component = dest / "components" / LIBRARY
    sources = _library(c_dir, component, profile)
    tflm = _is_tflm(profile)
    # The managed component's CMake name is its registry name with "__" for "/".
    requires = f"\n  REQUIRES {TFLM_PACKAGES['esp-idf'][0].replace('/', '__')}" if tflm else ""
    (component / "CMakeLists.txt").write_text(
        "idf_component_register(\n  SRCS" + "".join(f' "{s}"' for s in sources) + '\n  INCLUDE_DIRS "."'
        + requires + "\n)\n")
    dependency = f'  {TFLM_PACKAGES["esp-idf"][0]}: "{TFLM_PACKAGES["esp-idf"][1]}"\n' if tflm else ""
    (component / "idf_component.yml").write_text(
        f'version: "1.0.0"\ndescription: "The {profile["id"]} model compiled by edgec, and its serial '
        'verification protocol"\nurl: "https://github.com/edgec/edgec"\ndependencies:\n  idf: ">=5.0"\n'
        + dependency)
    (dest / "main").mkdir()
    (dest / "main" / "CMakeLists.txt").write_text(
        f'idf_component_register(SRCS "main.c" INCLUDE_DIRS "." REQUIRES {LIBRARY} driver esp_timer)\n')
    (dest / "main" / "main.c").write_text(_glue("esp_idf_main.c"))
    (dest / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.16)\ninclude($ENV{IDF_PATH}/tools/cmake/project.cmake)\n"
        "project(edgec_verify)\n")
    (dest / "sdkconfig.defaults").write_text(
        f'CONFIG_IDF_TARGET="{idf_target}"\n# UART0 carries edgec\'s frames only.\nCONFIG_ESP_CONSOLE_NONE=y\n'
        "CONFIG_LOG_DEFAULT_LEVEL_NONE=y\nCONFIG_BOOTLOADER_LOG_LEVEL_NONE=y\nCONFIG_ESP_MAIN_TASK_STACK_SIZE=8192\n")


WRITERS = {"arduino": _arduino, "platformio": _platformio, "zephyr": _zephyr, "esp-idf": _esp_idf}


def write_hosted_project(c_dir: Path, dest: Path, profile: dict, kind: str) -> Path:
    """Write the ``kind`` project (one of HOSTED_KINDS) of the generated C in ``c_dir`` into ``dest`` (replaced)."""
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    WRITERS[kind](Path(c_dir), dest, profile)
    return dest
