"""The two ends of the serial protocol agree, and the TFLite Micro template speaks it too."""

from __future__ import annotations

import re
import zlib

import pytest

pytestmark = pytest.mark.toolchain


def _defines(text: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2), 0) for m in re.finditer(r"#define (EDGEC_\w+) (0x[0-9A-Fa-f]+|\d+)u?", text)}


def test_device_header_and_host_module_share_magic_commands_and_statuses():
    from edgec.device.firmware import protocol
    from edgec.device.firmware.build import firmware_source_dir

    d = _defines((firmware_source_dir() / "edgec_fw.h").read_text())
    assert bytes(d[f"EDGEC_MAGIC{i}"] for i in range(4)) == protocol.MAGIC
    assert (d["EDGEC_CMD_INFO"], d["EDGEC_CMD_INFER"], d["EDGEC_CMD_ERROR"], d["EDGEC_REPLY_BIT"]) == (
        protocol.CMD_INFO, protocol.CMD_INFER, protocol.CMD_ERROR, protocol.REPLY_BIT)
    assert d["EDGEC_PROTOCOL_VERSION"] == protocol.PROTOCOL_VERSION
    statuses = {v: k for k, v in d.items() if k.startswith("EDGEC_ST_")}
    assert sorted(statuses) == sorted(protocol.STATUS)


def test_encoded_frame_layout_is_magic_command_length_payload_crc():
    from edgec.device.firmware.protocol import MAGIC, encode_frame

    frame = encode_frame(0x02, b"\x01\x02\x03")
    assert frame[:4] == MAGIC and frame[4] == 0x02 and frame[5:9] == (3).to_bytes(4, "little")
    assert frame[9:12] == b"\x01\x02\x03"
    assert frame[12:] == zlib.crc32(frame[4:12]).to_bytes(4, "little")


def test_error_reply_becomes_a_device_error_with_status_and_detail():
    from edgec.device.firmware.protocol import DeviceError, check_reply

    with pytest.raises(DeviceError, match=r"wrong payload length \(expected 490 bytes\)") as e:
        check_reply(0x82, bytes([2, 0, 0, 0]) + (490).to_bytes(4, "little"), expected=0x82)
    assert (e.value.status, e.value.detail) == (2, 490)
    with pytest.raises(DeviceError, match="replied to command 0x01, expected 0x02"):
        check_reply(0x81, bytes(4), expected=0x82)


def test_unreachable_port_is_an_input_error():
    from edgec.core.errors import InputError
    from edgec.device.firmware import Device

    with pytest.raises(InputError, match="cannot open device port /dev/edgec-no-such-port"):
        Device("/dev/edgec-no-such-port")


def test_tflm_template_uses_the_exported_headers_and_the_shared_framing():
    from edgec.device.firmware.build import firmware_source_dir

    src = (firmware_source_dir() / "tflm_main.cc").read_text()
    for needle in ('#include "model_data.h"', '#include "op_resolver.h"', "tflite::MicroInterpreter",
                   "kTensorArenaSize", "edgec::RegisterOps", "frame_read(", "counter_start()", "counter_stop()",
                   "EDGEC_CMD_INFER | EDGEC_REPLY_BIT", "EDGEC_ST_BAD_LENGTH"):
        assert needle in src, needle
