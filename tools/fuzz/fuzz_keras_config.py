"""Fuzz the Keras config scan that runs before tf_keras sees a file (edgec.frontend.load, edgec.frontend.keras.checks).

The input is a ``.keras`` archive; also, re-zipped as its ``config.json``, the same bytes, so that the
JSON scan (layer classes, Lambda, cycles) is fuzzed with and without a valid archive around it.
"""

from __future__ import annotations

import io
import zipfile

from harness import MAX_INPUT, expect_refusal, run, scratch_file


def scan(path) -> None:
    from edgec.frontend import load

    config = load._saved_config(path, "keras")
    load._check_layers(config, path, False)


def test_one_input(data: bytes) -> None:
    if len(data) > MAX_INPUT:
        return
    expect_refusal(scan, scratch_file("m.keras", data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("metadata.json", b'{"keras_version": "2.21.0"}')
        z.writestr("config.json", data)
    expect_refusal(scan, scratch_file("m.keras", buf.getvalue()))


if __name__ == "__main__":
    from edgec.core.tf import keras

    keras()  # import tf_keras once, uninstrumented: the scan compares class names with its layers
    run(test_one_input, ["edgec.frontend.load", "edgec.frontend.keras.checks"])
