"""Flatbuffer tables read straight from the file's bytes, every offset and length checked.

The generated readers (``tflite`` package) cost a Python call chain per field (``Table.Offset``,
``Table.Get``, ``encode.Get``, ``enforce_number``); a model of a thousand tensors spends most of its
load time there. :class:`Table` reads a table's vtable once with one ``struct.unpack_from`` and each
field with one more; an int32 vector (a shape, an operator's inputs) is one ``unpack_from`` too.

Bounds: a table, its vtable, every field, every referenced table, vector and string is checked to lie
inside the file before it is read, and a vector's length (a uint32) against the bytes left after
its start, so a corrupt file raises :class:`FlatbufferError` naming the table and field, never a
``struct.error``, an ``IndexError``, a hang or an allocation larger than the file.

Layout (flatbuffers' binary format): a table starts with an int32 ``soffset``; its vtable lies at
``table - soffset`` and holds uint16 ``vtable size``, ``object size``, then one uint16 per field:
the field's byte offset from the table start, 0 when absent. A table, vector or string field holds
a uint32 offset relative to the field's own position; a vector starts with its uint32 length.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

_U32 = struct.Struct("<I").unpack_from
_I32 = struct.Struct("<i").unpack_from
_U16 = struct.Struct("<H").unpack_from

# Scalar field types: struct format per schema type.
BYTE, UBYTE, BOOL, INT, UINT, ULONG = (struct.Struct(f) for f in ("<b", "<B", "<?", "<i", "<I", "<Q"))


class FlatbufferError(ValueError):
    """A table, field, vector or string lies (partly) outside the file; the message names it."""


class Table:
    """One flatbuffer table at byte ``pos`` of ``buf`` (``size`` bytes); ``what`` names it in errors
    (the caller names the place: subgraph, tensor; ``what`` the table or field)."""

    __slots__ = ("buf", "pos", "size", "slots")

    def __init__(self, buf: Any, size: int, pos: int, what: str):
        self.buf, self.size, self.pos = buf, size, pos
        if not 0 <= pos <= size - 4:
            raise FlatbufferError(f"{what}: table at byte {pos} lies outside the file ({size} bytes)")
        vtable = pos - _I32(buf, pos)[0]
        if not 0 <= vtable <= size - 2:
            raise FlatbufferError(f"{what}: vtable at byte {vtable} lies outside the file ({size} bytes)")
        length = _U16(buf, vtable)[0]
        if vtable + length > size:
            raise FlatbufferError(f"{what}: vtable of {length} bytes at byte {vtable} runs past the end of the file "
                                  f"({size} bytes)")
        # A vtable shorter than its 4-byte header holds no field (every field absent), as flatbuffers'
        # own readers and verifier take it.
        count = (length - 4) // 2 if length > 4 else 0
        self.slots = struct.unpack_from(f"<{count}H", buf, vtable + 4) if count else ()

    def _at(self, slot: int, width: int, name: str) -> int:
        """Absolute byte position of field ``slot`` (-1 when absent), checked to hold ``width`` bytes."""
        offset = self.slots[slot] if slot < len(self.slots) else 0
        if not offset:
            return -1
        at = self.pos + offset
        if at + width > self.size:
            raise FlatbufferError(f"field {name} at byte {at} lies past the end of the file ({self.size} bytes)")
        return at

    def has(self, slot: int) -> bool:
        return slot < len(self.slots) and self.slots[slot] != 0

    def scalar(self, slot: int, kind: struct.Struct, default: Any, name: str) -> Any:
        at = self._at(slot, kind.size, name)
        return default if at < 0 else kind.unpack_from(self.buf, at)[0]

    def target(self, slot: int, name: str) -> int | None:
        """Where the table, vector or string that field ``slot`` refers to starts (None when absent)."""
        at = self._at(slot, 4, name)
        if at < 0:
            return None
        to = at + _U32(self.buf, at)[0]
        if to > self.size - 4:
            raise FlatbufferError(f"{name} refers to byte {to}, past the end of the file ({self.size} bytes)")
        return to

    def table(self, slot: int, name: str) -> Table | None:
        to = self.target(slot, name)
        return None if to is None else Table(self.buf, self.size, to, name)

    def vector(self, slot: int, item_size: int, name: str) -> tuple[int, int] | None:
        """(start, length) of the vector field ``slot``, its items checked to lie inside the file."""
        to = self.target(slot, name)
        if to is None:
            return None
        length, start = _U32(self.buf, to)[0], to + 4
        if length * item_size > self.size - start:
            raise FlatbufferError(f"{name} claims {length} entries of {item_size} bytes at byte {start}, "
                                  f"past the end of the file ({self.size} bytes)")
        return start, length

    def ints(self, slot: int, name: str, code: str = "i", item_size: int = 4) -> tuple | None:
        """A vector of scalars (struct ``code``, default int32) as a tuple; None when absent."""
        found = self.vector(slot, item_size, name)
        if found is None:
            return None
        start, length = found
        return struct.unpack_from(f"<{length}{code}", self.buf, start) if length else ()

    def array(self, slot: int, dtype: str, name: str) -> np.ndarray | None:
        """A vector of scalars as a numpy view on the file (``dtype`` little-endian, e.g. ``"<f4"``)."""
        kind = np.dtype(dtype)
        found = self.vector(slot, kind.itemsize, name)
        if found is None:
            return None
        start, length = found
        return np.frombuffer(self.buf, kind, count=length, offset=start)

    def string(self, slot: int, name: str) -> bytes | None:
        found = self.vector(slot, 1, name)
        if found is None:
            return None
        start, length = found
        return bytes(self.buf[start : start + length])

    def tables(self, slot: int, name: str) -> list[int]:
        """Start positions of the tables of vector field ``slot`` (empty when absent); each is
        checked when it is read (:class:`Table`)."""
        found = self.vector(slot, 4, name)
        if found is None:
            return []
        start, length = found
        offsets = struct.unpack_from(f"<{length}I", self.buf, start) if length else ()
        return [start + 4 * i + offset for i, offset in enumerate(offsets)]


def root(buf: Any, size: int, what: str = "the model table") -> Table:
    """The root table: the uint32 at byte 0 gives its position."""
    if size < 4:
        raise FlatbufferError(f"only {size} bytes, too short for a flatbuffer")
    return Table(buf, size, _U32(buf, 0)[0], what)
