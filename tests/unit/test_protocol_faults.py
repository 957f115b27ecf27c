"""Which device errors are line faults worth asking again for (edgec.device.firmware.protocol)."""

from __future__ import annotations

import struct

import pytest

from edgec.device.firmware.protocol import CMD_ERROR, CMD_INFER, REPLY_BIT, ST_BAD_CRC, ST_BAD_LENGTH, ST_FAULT, ST_INVOKE_FAILED, ST_TIMEOUT, ST_UNKNOWN_COMMAND, DeviceError, check_reply


def _error(status: int) -> bytes:
    return bytes([status, 0, 0, 0]) + struct.pack("<I", 7)


@pytest.mark.parametrize("status,transient", [(ST_BAD_CRC, True), (ST_TIMEOUT, True), (ST_BAD_LENGTH, False),
                                              (ST_UNKNOWN_COMMAND, False), (ST_INVOKE_FAILED, False),
                                              (ST_FAULT, False)])
def test_only_a_request_damaged_on_the_line_is_transient(status, transient):
    with pytest.raises(DeviceError) as e:
        check_reply(CMD_ERROR, _error(status), expected=CMD_INFER | REPLY_BIT)
    assert e.value.transient is transient and e.value.status == status and e.value.exit_code == 3


def test_a_reply_to_another_command_is_transient_and_the_reason_has_no_stage_prefix():
    with pytest.raises(DeviceError) as e:
        check_reply(0x81, bytes(24), expected=CMD_INFER | REPLY_BIT)
    assert e.value.transient and e.value.reason == "device replied to command 0x01, expected 0x02"
    assert str(e.value) == "[device] " + e.value.reason
