"""Byte-level mutations of real files: section boundaries of zip, protobuf and HDF5, seeded bit flips.

Every function is pure (bytes in, bytes or offsets out) so that a case is fully determined by its
source file, its name and the seed.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # zip local file header (30 bytes)


def truncate(data: bytes, at: int) -> bytes:
    """The first ``at`` bytes."""
    return data[:at]


def flip(data: bytes, rng: random.Random, start: int = 0, end: int | None = None, count: int = 1) -> bytes:
    """Flip ``count`` seeded bits at positions in ``[start, end)``."""
    out = bytearray(data)
    end = len(out) if end is None else end
    for _ in range(count):
        pos = rng.randrange(start, end)
        out[pos] ^= 1 << rng.randrange(8)
    return bytes(out)


def zip_members(data: bytes) -> list[tuple[str, int, int, int]]:
    """(name, header offset, data start, data end) of every member of a zip archive."""
    out = []
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            fields = _LOCAL_HEADER.unpack_from(data, info.header_offset)
            start = info.header_offset + _LOCAL_HEADER.size + fields[-2] + fields[-1]
            out.append((info.filename, info.header_offset, start, start + info.compress_size))
    return out


def zip_boundaries(data: bytes) -> list[int]:
    """Offsets where a zip's sections start or end: members' headers and data, central directory, end record."""
    offsets = {0}
    for _, header, start, end in zip_members(data):
        offsets.update((header, start, end, (start + end) // 2))
    offsets.add(data.rindex(b"PK\x05\x06"))  # end of central directory record
    return sorted(o for o in offsets if 0 <= o < len(data))


def rezip(members: list[tuple[str, bytes]], *, compression: int = zipfile.ZIP_STORED) -> bytes:
    """A zip archive holding ``members`` in order (duplicate names allowed, as an attacker may)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, content in members:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = compression
            z.writestr(info, content)
    return buf.getvalue()


def unzip(data: bytes) -> list[tuple[str, bytes]]:
    """The members of a zip archive, in order."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return [(i.filename, z.read(i)) for i in z.infolist()]


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7


def protobuf_fields(data: bytes) -> list[tuple[int, int, int, int]]:
    """(field number, start, payload start, end) of each top-level field of a protobuf message."""
    out, pos = [], 0
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        wire = key & 7
        payload = pos
        if wire == 0:
            _, pos = _varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, payload = _varint(data, pos)
            pos = payload + length
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"wire type {wire} at {start}")
        out.append((key >> 3, start, payload, pos))
    return out


def protobuf_boundaries(data: bytes, nested_field: int | None = None) -> list[int]:
    """Starts of the top-level fields, and of the fields inside field ``nested_field`` (e.g. the graph)."""
    offsets = set()
    for number, start, payload, end in protobuf_fields(data):
        offsets.update((start, payload))
        if number == nested_field:
            offsets.update(payload + s for _, s, _, _ in protobuf_fields(data[payload:end]))
    return sorted(o for o in offsets if 0 < o < len(data))


def length_varints(data: bytes, nested_field: int) -> list[int]:
    """Offsets of the length prefixes of the fields inside field ``nested_field`` (targets for flips)."""
    out = []
    for number, _, payload, end in protobuf_fields(data):
        if number != nested_field:
            continue
        for _, start, inner_payload, _ in protobuf_fields(data[payload:end]):
            if inner_payload > start + 1:  # a length-delimited field: its key byte, then the length
                out.append(payload + start + 1)
    return out


def zip_patch_headers(data: bytes, *, method: int | None = None, flags: int | None = None) -> bytes:
    """Set the compression method and/or general-purpose flags of every member (local and central headers)."""
    out = bytearray(data)
    for signature, flag_at, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        pos = out.find(signature)
        while pos != -1:
            if flags is not None:
                struct.pack_into("<H", out, pos + flag_at, flags)
            if method is not None:
                struct.pack_into("<H", out, pos + method_at, method)
            pos = out.find(signature, pos + 4)
    return bytes(out)
