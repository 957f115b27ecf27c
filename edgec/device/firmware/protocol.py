"""Host side of edgec's framed serial protocol (the device side is src/main.c).

Frame, both directions::

    magic ED 9E C0 5A | command u8 | length u32 LE | payload | CRC-32 u32 LE

The CRC (zlib.crc32) covers command, length and payload. Requests: INFO (0x01, no payload)
and INFER (0x02, payload = the int8 input tensor). A reply carries ``command | 0x80``; its
payload starts with a status byte (0 = ok). The device answers a frame it cannot read (bad
CRC, a byte not arriving in time) with command 0xFF and keeps serving.

pyserial's ``serial_for_url`` opens both a real board (``/dev/ttyACM0``) and QEMU's UART on a
local socket (``socket://127.0.0.1:PORT``) with the same code.

Line faults are *transient* (:attr:`DeviceError.transient`): a reply that does not arrive in
time, fails its CRC or is out of step, a request the device received damaged (its bad-CRC and
timeout statuses), a connection that dropped. INFER is a pure function of its input, so the
caller (:func:`edgec.device.firmware.run.run_on_device`) may resynchronize and ask again; anything
else (a wrong length, a failing model) is final.
"""

from __future__ import annotations

import logging
import struct
import time
import zlib
from dataclasses import dataclass
from typing import NamedTuple

from edgec.core.errors import InputError, ToolchainError
from edgec.device.firmware.samples import parse_self_check

log = logging.getLogger(__name__)

MAGIC = bytes((0xED, 0x9E, 0xC0, 0x5A))
CMD_INFO = 0x01
CMD_INFER = 0x02
CMD_ERROR = 0xFF
REPLY_BIT = 0x80
PROTOCOL_VERSION = 1
TEXT_LIMIT = 4096  # bytes kept of what the device sends outside frames

STATUS = {
    0: "ok",
    1: "bad CRC",
    2: "wrong payload length",
    3: "unknown command",
    4: "edgec_invoke failed",
    5: "frame timed out",
    6: "device fault",
}
ST_BAD_CRC, ST_BAD_LENGTH, ST_UNKNOWN_COMMAND, ST_INVOKE_FAILED, ST_TIMEOUT, ST_FAULT = 1, 2, 3, 4, 5, 6


class DeviceError(ToolchainError):
    """The device answered with an error status, or did not answer in time (exit 3)."""

    def __init__(self, message: str, *, status: int | None = None, detail: int | None = None,
                 transient: bool = False):
        self.status = status
        self.detail = detail
        self.transient = transient  # a line fault: resynchronizing and asking again is safe
        super().__init__(message, stage="device")

    @property
    def reason(self) -> str:
        """The message without the stage prefix."""
        return str(self.args[0])


# The device's own answers to a request that reached it damaged: worth sending again.
TRANSIENT_STATUSES = {ST_BAD_CRC, ST_TIMEOUT}


@dataclass(frozen=True)
class DeviceInfo:
    """What the firmware reports about the model it runs."""

    protocol_version: int
    input_bytes: int
    output_bytes: int
    arena_bytes: int
    counter_hz: int
    max_payload: int


class Inference(NamedTuple):
    """One inference on the device: the output tensor bytes and the counter ticks it took."""

    output: bytes
    ticks: int


def encode_frame(command: int, payload: bytes = b"") -> bytes:
    """Return the bytes of one frame carrying ``payload`` under ``command``."""
    body = struct.pack("<BI", command, len(payload)) + payload
    return MAGIC + body + struct.pack("<I", zlib.crc32(body))


class Device:
    """A connection to edgec firmware over a serial port or a socket URL."""

    def __init__(self, url: str, *, timeout: float = 30.0, baudrate: int = 115200):
        """Open ``url`` (a port such as /dev/ttyACM0, or socket://host:port). ``timeout`` bounds each reply."""
        import serial  # pyserial, the `device` extra

        self.url = url
        self.timeout = timeout
        self._baudrate = baudrate
        try:
            self._port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.5)
        except (serial.SerialException, ValueError, OSError) as e:
            raise InputError(f"cannot open device port {url}: {e}", stage="device") from None
        self._info: DeviceInfo | None = None
        self.lost = False  # the connection dropped; resync() reopens it
        self.reconnects = 0
        self.text = bytearray()  # what the device sent outside frames (its boot self-check line), capped

    def _keep_text(self, data: bytes) -> None:
        self.text += data[:max(0, TEXT_LIMIT - len(self.text))]

    @property
    def self_check(self) -> dict | None:
        """The firmware's boot self-check line, once read past (see :mod:`edgec.device.firmware.samples`)."""
        return parse_self_check(bytes(self.text))

    def close(self) -> None:
        """Close the port."""
        self._port.close()

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        """Write ``data`` as is (tests use it to send corrupted frames)."""
        import serial

        try:
            self._port.write(data)
            self._port.flush()
        except (serial.SerialException, OSError) as e:
            self.lost = True
            raise DeviceError(f"connection lost while sending ({e})", transient=True) from None

    def _read_exact(self, n: int, deadline: float) -> bytes:
        import serial

        buf = bytearray()
        while len(buf) < n:
            if time.monotonic() > deadline:
                raise DeviceError(f"no complete reply within {self.timeout:g} s", transient=True)
            try:
                buf += self._port.read(n - len(buf))
            except (serial.SerialException, OSError) as e:  # QEMU gone, USB unplugged, board reset
                self.lost = True
                raise DeviceError(f"connection lost while reading a reply ({e})", transient=True) from None
        return bytes(buf)

    def read_frame(self) -> tuple[int, bytes]:
        """Read one frame; return (command, payload). Skips bytes before the magic."""
        deadline = time.monotonic() + self.timeout
        window = b""
        while window != MAGIC:
            window += self._read_exact(1, deadline)
            if len(window) > 4:  # a byte that cannot start the magic: text such as the self-check line
                self._keep_text(window[:1])
                window = window[1:]
        head = self._read_exact(5, deadline)
        command, length = struct.unpack("<BI", head)
        # Once INFO is known no reply is longer than an INFER reply: a larger length is a damaged
        # header, not a reply worth waiting ``timeout`` for.
        if length > (max(24, 12 + self._info.output_bytes) if self._info else 1 << 24):
            raise DeviceError(f"a reply claims {length} bytes: the stream is out of step", transient=True)
        payload = self._read_exact(length, deadline)
        (crc,) = struct.unpack("<I", self._read_exact(4, deadline))
        if crc != zlib.crc32(head + payload):
            raise DeviceError("a reply failed its CRC check (noise on the line?)", transient=True)
        return command, payload

    def request(self, command: int, payload: bytes = b"") -> bytes:
        """Send one request and return the reply payload (status first); DeviceError on error status."""
        self.send_raw(encode_frame(command, payload))
        reply_cmd, reply = self.read_frame()
        check_reply(reply_cmd, reply, expected=command | REPLY_BIT)
        return reply

    def info(self) -> DeviceInfo:
        """Ask the device for its model's input/output/arena sizes and counter clock."""
        if self._info is None:
            body = self.request(CMD_INFO)
            if len(body) < 24:
                raise DeviceError(f"INFO reply of {len(body)} bytes is too short")
            self._info = DeviceInfo(body[1], *struct.unpack("<5I", body[4:24]))
        return self._info

    def infer(self, data: bytes) -> Inference:
        """Run one inference on ``data`` (the int8 input tensor bytes); return output and ticks."""
        body = self.request(CMD_INFER, bytes(data))
        lo, hi = struct.unpack("<II", body[4:12])
        return Inference(output=bytes(body[12:]), ticks=lo | (hi << 32))

    def drain(self, settle: float = 0.2) -> None:
        """Discard anything the device still sends (after an error reply), waiting ``settle`` s."""
        import serial

        time.sleep(settle)
        deadline = time.monotonic() + self.timeout  # a line that never goes quiet is not waited out
        try:
            while (data := self._port.read(4096)) and time.monotonic() < deadline:
                self._keep_text(data)  # until the line is quiet for 0.5 s (the read timeout)
            self._port.reset_input_buffer()
        except (serial.SerialException, OSError):
            self.lost = True

    def resync(self) -> None:
        """After a line fault: reopen a dropped connection (waiting up to ``timeout`` for a board that
        resets to come back), else discard the rest of a damaged reply so the next one starts clean."""
        if not self.lost:
            self.drain()
        if not self.lost:
            return
        import serial

        self._port.close()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self._port = serial.serial_for_url(self.url, baudrate=self._baudrate, timeout=0.5)
                self.lost = False
                self.reconnects += 1
                return
            except (serial.SerialException, ValueError, OSError) as e:
                if time.monotonic() > deadline:
                    raise DeviceError(f"connection lost and reopening it failed for {self.timeout:g} s ({e})"
                                      ) from None
                time.sleep(0.25)


def check_reply(command: int, payload: bytes, *, expected: int) -> None:
    """Raise DeviceError unless ``payload`` is an ok reply to ``expected``."""
    if not payload:
        raise DeviceError(f"empty reply (command {command:#04x})")
    status = payload[0]
    if status != 0:
        detail = struct.unpack("<I", payload[4:8])[0] if len(payload) >= 8 else None
        what = STATUS.get(status, f"status {status}")
        extra = f" (expected {detail} bytes)" if status == ST_BAD_LENGTH and detail else ""
        extra = f" (code {detail})" if status in (ST_INVOKE_FAILED, ST_FAULT) else extra
        raise DeviceError(f"device replied: {what}{extra}", status=status, detail=detail,
                          transient=status in TRANSIENT_STATUSES)
    if command != expected:  # a stale reply, or one from before a reset
        raise DeviceError(f"device replied to command {command & 0x7F:#04x}, expected {expected & 0x7F:#04x}",
                          transient=True)
