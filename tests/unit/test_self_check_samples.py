"""The bundled self-check samples (edgec/device/firmware/samples.py): how many fit, the generated C, and
the host's reading of the firmware's boot line among frame bytes."""

from __future__ import annotations

from edgec.device.firmware.protocol import MAGIC, encode_frame
from edgec.device.firmware.samples import MAX_SAMPLES, parse_self_check, sample_count, write_samples


def test_sample_count_stays_within_a_sixteenth_of_the_flash_budget():
    assert sample_count(64, 10, 1 << 20, 500) == MAX_SAMPLES
    assert sample_count(64, 10, 16 * 74 * 2, 500) == 2  # room for two (64 + 10)-byte samples
    assert sample_count(64, 10, 16 * 73, 500) == 0
    assert sample_count(64, 10, 1 << 20, 3) == 3  # fewer held-out samples than the cap


def test_samples_source_is_const_and_deterministic(tmp_path):
    inputs, outputs = [bytes(range(20)), bytes(range(100, 120))], [b"\x80\x7f\x00", b"\x01\x02\x03"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = (write_samples(tmp_path / name, inputs, outputs) for name in "ab")
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    source, header = (p.read_text() for p in a)
    assert "const uint8_t edgec_sample_inputs[2][20] = {" in source and "0x80, 0x7f, 0x00" in source
    assert "#define EDGEC_SAMPLE_COUNT 2u" in header and "#define EDGEC_SAMPLE_OUTPUT_BYTES 3u" in header
    assert write_samples(tmp_path, [], []) == []


def test_self_check_line_is_found_among_frames_and_a_mismatch_does_not_pass():
    frame = encode_frame(0x81, bytes(24))
    ok = parse_self_check(b"\x00garbage\r\nedgec self-check: 4/4 bit-exact\r\n" + frame)
    assert ok == {"line": "edgec self-check: 4/4 bit-exact", "exact": 4, "samples": 4, "passed": True}
    bad = parse_self_check(frame + b"edgec self-check: 3/4 bit-exact (first mismatch: sample 2)\r\n" + MAGIC)
    assert bad["line"].endswith("(first mismatch: sample 2)") and bad["passed"] is False
    assert parse_self_check(frame) is None
