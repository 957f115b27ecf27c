"""The ``edgec`` command line. Errors become one line on stderr and the exit code of DESIGN.md."""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import logging
import signal
import sys

from edgec.compress import recipe
from edgec.core.errors import EdgecError
from edgec.core.version import __version__
from edgec.quantize.spec import CALIBRATION_METHODS, STEM_SETTINGS

log = logging.getLogger("edgec")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edgec", description="Compile a trained Keras or ONNX model into "
                                "verified artifacts for microcontrollers, phones and edge CPUs.")
    p.add_argument("--version", action="version", version=f"edgec {__version__}")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = p.add_subparsers(dest="command", required=True)
    _add_compile(sub)
    _add_others(sub)
    return p


def _add_compile(sub) -> None:
    c = sub.add_parser("compile", help="compile a model for one or more targets")
    c.add_argument("model", help=".keras, .h5, SavedModel folder or .onnx")
    c.add_argument("--target", "-t", action="append", required=True, metavar="ID",
                   help="target profile id (repeatable); see `edgec targets`")
    c.add_argument("--calibration", metavar="DATA",
                   help=".npz/.npy/.csv, an image folder, or 'random' (accuracy then not measured)")
    c.add_argument("--eval", metavar="DATA", help="held-out evaluation set (default: split from calibration)")
    c.add_argument("-o", "--out", default="build", help="output folder (default: build)")
    c.add_argument("--backend", choices=["tflm", "c"], default=None,
                   help="microcontroller targets: TFLite Micro (default) or edgec's generated C")
    c.add_argument("--project", choices=["cmake", "arduino", "platformio", "zephyr", "esp-idf"], default=None,
                   help="with --backend c: also write OUT/<target>/project/, firmware for the target's board as a "
                        "CMake project (bare metal), an Arduino library, a PlatformIO project, a Zephyr module or "
                        "an ESP-IDF project")
    c.add_argument("--trust-model", action="store_true",
                   help="allow Lambda layers and custom objects (runs code from the model file)")
    c.add_argument("--recipe", metavar="edgec.toml", help="compression recipe (flags below override it)")
    recipe.add_arguments(c)
    c.add_argument("--calibration-method", choices=CALIBRATION_METHODS,
                   help="activation range estimation for ONNX Runtime and NNCF INT8 (default: the target's, else minmax)")
    c.add_argument("--keep-float", action="append", metavar="LAYER", default=None,
                   help="keep this layer out of int8 (repeatable; needs float kernels on the target)")
    c.add_argument("--max-accuracy-drop", type=float, metavar="X",
                   help="keep the worst int8 layers in float, one by one, until top-1 drops by at most X")
    c.add_argument("--stem", choices=STEM_SETTINGS, default=None,
                   help="LiteRT and ONNX targets: keep the convolutions that read the input in float "
                        "(faster on CPUs), or 'auto': float when they read at most 4 channels (default: the "
                        "target's, else int8)")
    c.add_argument("--layer-error", action="store_true",
                   help="always report per-layer int8 error (it is reported anyway when verification fails)")



def _add_others(sub) -> None:
    t = sub.add_parser("targets", help="list target profiles, or show one resolved")
    t.add_argument("id", nargs="?")

    i = sub.add_parser("inspect", help="which of a model's operators each target can run, and why not")
    i.add_argument("model")
    i.add_argument("--target", "-t", action="append", metavar="ID", help="a target (repeatable; default: all)")
    i.add_argument("--backend", choices=["c"], help="check microcontroller targets for the generated-C backend")
    i.add_argument("--trust-model", action="store_true")

    v = sub.add_parser("verify", help="re-run verification of a build on an evaluation set")
    v.add_argument("build", help="OUT/<target> folder written by `edgec compile`")
    v.add_argument("--eval", metavar="DATA", help="evaluation set (default: the build's own)")
    v.add_argument("--device", metavar="NAME", help="run the generated-C firmware on an emulated board, "
                   "e.g. qemu-mps2-an386 (Cortex-M4), qemu-mps3-an547 (Cortex-M55)")
    v.add_argument("--portable", action="store_true",
                   help="with --device: build the firmware with the portable C kernels (no DSP/MVE)")
    v.add_argument("--port", metavar="PORT", help="a board running the firmware: /dev/ttyACM0 or socket://host:port")
    v.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="with --port/--device: seconds to wait for each reply, and for a dropped port to come "
                        "back (default: 30)")
    v.add_argument("--retries", type=int, default=3, metavar="N",
                   help="with --port: ask again up to N times for a sample whose reply was lost or damaged "
                        "(default: 3)")
    v.add_argument("--outputs", metavar="FILE",
                   help="outputs captured on a device by the harness (npz, see edgec/device/outputs.py)")

    f = sub.add_parser("flash", help="program a board with a build (QEMU boards: run it)")
    f.add_argument("build", help="OUT/<target> folder written by `edgec compile`")
    f.add_argument("--board", help="board name (default: the target's), e.g. nrf52840, qemu-mps2-an386")
    f.add_argument("--port", help="serial port / probe to use")
    f.add_argument("--image", help="firmware image to program (default: built from the folder for QEMU boards)")
    f.add_argument("--dry-run", action="store_true", help="print the exact command only")

    s = sub.add_parser("sweep", help="search compression recipes for the flash/RAM/latency/accuracy trade-off (Ray)")
    s.add_argument("model", help=".keras, .h5, SavedModel folder or .onnx")
    s.add_argument("--target", "-t", required=True, metavar="ID", help="target profile id")
    s.add_argument("--calibration", required=True, metavar="DATA", help="as for `edgec compile`")
    s.add_argument("--eval", metavar="DATA", help="held-out evaluation set (default: split from calibration)")
    s.add_argument("--space", required=True, metavar="sweep.toml", help="the search space (see edgec/sweep/space.py)")
    s.add_argument("--trials", type=int, metavar="N", help="number of trials (random search; caps a grid)")
    s.add_argument("--address", metavar="ADDR", help="a running Ray cluster (ray://host:10001 or host:6379); "
                   "default: Ray started here, one trial per core")
    s.add_argument("--workers", type=int, metavar="N", help="local Ray: trials at once (default: the cores)")
    s.add_argument("-o", "--out", default="build/sweep", help="output folder (default: build/sweep)")
    s.add_argument("--trust-model", action="store_true", help="as for `edgec compile`")
    s.add_argument("--max-flash", type=int, metavar="BYTES", help="constraint for the best trial")
    s.add_argument("--max-ram", type=int, metavar="BYTES", help="constraint for the best trial")
    s.add_argument("--max-accuracy-drop", type=float, metavar="X", help="constraint for the best trial (0..1)")

    b = sub.add_parser("bench", help="host latency of the artifact and its float reference, same run")
    b.add_argument("build", help="OUT/<target> folder written by `edgec compile`")
    b.add_argument("--runtime", help="runtime to time in (default: the format's own)")
    b.add_argument("--runs", type=int, default=200)
    b.add_argument("--warmup", type=int, default=20)
    b.add_argument("--threads", type=int, default=1)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``edgec`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")
    from edgec import commands

    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so half-built target folders are removed.
    signal.signal(signal.SIGTERM, _terminate)
    # A native crash (an abort or segfault in a toolchain's C++) cannot unwind: it at least says where
    # it happened, on stderr; its temporary folder is removed by the next compile (edgec.core.outdir).
    if not faulthandler.is_enabled():  # (pytest and `python -X faulthandler` enable it themselves)
        with contextlib.suppress(ValueError, OSError, AttributeError):  # a stderr without a file descriptor
            faulthandler.enable()
    try:
        return commands.COMMANDS[args.command](args)
    except EdgecError as e:
        if _terminated_by_signal:  # a library turned our _Terminated into its own error: still a SIGTERM
            print("edgec: terminated", file=sys.stderr)
            return 143
        print(f"edgec: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("edgec: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print("edgec: terminated", file=sys.stderr)
        return 143


class _Terminated(BaseException):
    """Raised by the SIGTERM handler; a BaseException so that only cleanup code sees it."""


_terminated_by_signal = False


def _terminate(signum, frame):
    # Remember it: the TFLite converter catches whatever is raised inside it (this too) and re-raises
    # it as its own ConverterError, which edgec would report as a toolchain failure (exit 3).
    global _terminated_by_signal
    _terminated_by_signal = True
    raise _Terminated()


if __name__ == "__main__":
    sys.exit(main())
