"""TFLite metadata (the ``TFLITE_METADATA`` buffer, schema ``M001``): the model's name and
description, each input's normalization (mean, std), labels of outputs from associated files.

Read with flatbuffers' generic table accessors, so no generated metadata readers are needed. Field
slots follow the public metadata schema (tflite-support ``metadata_schema.fbs``): a union takes two
slots (its type, then its value). Associated files are members of the zip archive appended to
the ``.tflite``. Metadata is optional information: unreadable metadata is reported in
``ModelDescription.error``, it never stops a model from loading.
"""

from __future__ import annotations

import io
import struct
import zipfile
from typing import Any

import flatbuffers
from flatbuffers import number_types

from ..ir import ModelDescription, TensorDescription

_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union: NormalizationOptions
_LABEL_FILE_TYPES = {2, 3}  # AssociatedFileType TENSOR_AXIS_LABELS, TENSOR_VALUE_LABELS
_MAX_LABEL_BYTES = 4 << 20


class _Table:
    """A flatbuffer table with bounds-checked field access by slot number."""

    def __init__(self, buffer: bytes, position: int):
        if not 0 <= position < len(buffer):
            raise ValueError(f"table offset {position} outside the metadata")
        self.buffer = buffer
        self.table = flatbuffers.table.Table(buffer, position)

    def _offset(self, slot: int) -> int:
        return self.table.Offset(4 + 2 * slot)

    def string(self, slot: int) -> str:
        offset = self._offset(slot)
        if not offset:
            return ""
        return self.table.String(offset + self.table.Pos).decode("utf-8", "replace")

    def byte(self, slot: int) -> int:
        offset = self._offset(slot)
        return self.table.Get(number_types.Int8Flags, offset + self.table.Pos) if offset else 0

    def table_at(self, slot: int) -> "_Table | None":
        offset = self._offset(slot)
        return _Table(self.buffer, self.table.Indirect(offset + self.table.Pos)) if offset else None

    def tables(self, slot: int) -> list["_Table"]:
        offset = self._offset(slot)
        if not offset:
            return []
        start, length = self.table.Vector(offset), self.table.VectorLen(offset)
        if length > len(self.buffer) // 4:
            raise ValueError(f"vector of {length} tables in {len(self.buffer)} bytes")
        return [_Table(self.buffer, self.table.Indirect(start + 4 * i)) for i in range(length)]

    def floats(self, slot: int) -> tuple[float, ...]:
        offset = self._offset(slot)
        if not offset:
            return ()
        start, length = self.table.Vector(offset), self.table.VectorLen(offset)
        if start + 4 * length > len(self.buffer):
            raise ValueError("float vector runs past the metadata")
        return tuple(float(v) for v in struct.unpack_from(f"<{length}f", self.buffer, start))


def _labels(name: str, archive: zipfile.ZipFile | None) -> tuple[str, ...] | None:
    if archive is None or name not in archive.namelist():
        return None
    info = archive.getinfo(name)
    if info.file_size > _MAX_LABEL_BYTES:
        return None
    return tuple(line.strip() for line in archive.read(name).decode("utf-8", "replace").splitlines() if line.strip())


def _tensor(table: _Table, archive: zipfile.ZipFile | None) -> TensorDescription:
    mean = std = None
    for unit in table.tables(4):  # process_units
        if unit.byte(0) == _NORMALIZATION_OPTIONS:
            options = unit.table_at(1)
            if options is not None:
                mean, std = options.floats(0) or None, options.floats(1) or None
    files, labels = [], None
    for associated in table.tables(6):  # associated_files
        name = associated.string(0)
        files.append(name)
        if labels is None and associated.byte(2) in _LABEL_FILE_TYPES:
            labels = _labels(name, archive)
    return TensorDescription(name=table.string(0), description=table.string(1), mean=mean, std=std,
                             labels=labels, associated_files=tuple(files))


def read_model_description(data: bytes, whole_file: Any = None) -> ModelDescription:
    """The metadata flatbuffer ``data``; ``whole_file`` (a path or the file's bytes) holds the zip of
    associated files, from which label files are read."""
    archive = None
    try:
        source = io.BytesIO(bytes(whole_file)) if isinstance(whole_file, (bytes, bytearray, memoryview)) else whole_file
        if source is not None and zipfile.is_zipfile(source):
            archive = zipfile.ZipFile(source)
    except (OSError, zipfile.BadZipFile):
        archive = None
    try:
        data = bytes(data)
        if len(data) < 8:
            raise ValueError(f"{len(data)} bytes")
        root = _Table(data, flatbuffers.encode.Get(flatbuffers.packer.uoffset, data, 0))
        subgraphs = root.tables(3)
        inputs = tuple(_tensor(t, archive) for t in subgraphs[0].tables(2)) if subgraphs else ()
        outputs = tuple(_tensor(t, archive) for t in subgraphs[0].tables(3)) if subgraphs else ()
        return ModelDescription(name=root.string(0), description=root.string(1), version=root.string(2),
                                author=root.string(4), license=root.string(5), inputs=inputs, outputs=outputs,
                                associated_files=tuple(f.string(0) for f in root.tables(6)))
    except (ValueError, IndexError, struct.error, UnicodeDecodeError, zipfile.BadZipFile, OSError) as error:
        return ModelDescription(error=f"the TFLITE_METADATA buffer is unreadable ({type(error).__name__}: {error})")
    finally:
        if archive is not None:
            archive.close()
