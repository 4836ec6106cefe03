"""Writing TFLite metadata into a model in tests, without tflite-support.

``with_metadata(tflite_bytes, mean=..., std=..., labels=...)`` builds a ``ModelMetadata``
flatbuffer (file identifier ``M001``) by field slot, as the public ``metadata_schema.fbs`` lays it
out, stores it in a buffer named ``TFLITE_METADATA`` and appends the label file as a zip archive,
as the metadata populator does. The slots are the schema's, not the reader's: the reader's slot
numbers are checked independently against real models' metadata in test_metadata.py.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

import flatbuffers
from tensorflow.lite.python import schema_py_generated as schema

from flatbuffer_writer import pack, unpack

_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions.NormalizationOptions
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType.TENSOR_AXIS_LABELS


def _table(builder: flatbuffers.Builder, fields: Sequence[tuple[int, str, object]]) -> int:
    """A table of (slot, kind, value) fields; kind: "offset" (a string, vector or table already
    built), "ubyte", "byte"."""
    builder.StartObject(max(slot for slot, _, _ in fields) + 1 if fields else 0)
    for slot, kind, value in fields:
        if kind == "offset":
            builder.PrependUOffsetTRelativeSlot(slot, value, 0)
        elif kind == "ubyte":
            builder.PrependUint8Slot(slot, value, 0)
        elif kind == "byte":
            builder.PrependInt8Slot(slot, value, 0)
    return builder.EndObject()


def _offsets(builder: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _floats(builder: flatbuffers.Builder, values: Sequence[float]) -> int:
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        builder.PrependFloat32(float(value))
    return builder.EndVector()


def metadata_flatbuffer(*, name: str, inputs: Sequence[dict], outputs: Sequence[dict]) -> bytes:
    """``inputs``/``outputs``: one dict per tensor of the main subgraph, in its order, with
    ``name`` and optionally ``mean``, ``std`` (sequences) and ``label_file`` (an associated file
    name of type TENSOR_AXIS_LABELS)."""
    builder = flatbuffers.Builder(1024)

    def tensor(spec: dict) -> int:
        units = files = None
        if "mean" in spec:
            mean, std = _floats(builder, spec["mean"]), _floats(builder, spec["std"])
            options = _table(builder, [(0, "offset", mean), (1, "offset", std)])  # NormalizationOptions
            unit = _table(builder, [(0, "ubyte", _NORMALIZATION_OPTIONS), (1, "offset", options)])  # ProcessUnit
            units = _offsets(builder, [unit])
        if "label_file" in spec:
            file_name = builder.CreateString(spec["label_file"])
            associated = _table(builder, [(0, "offset", file_name), (2, "byte", _TENSOR_AXIS_LABELS)])  # AssociatedFile
            files = _offsets(builder, [associated])
        tensor_name = builder.CreateString(spec["name"])
        fields = [(0, "offset", tensor_name)]  # TensorMetadata: name, ..., process_units 4, associated_files 6
        if units is not None:
            fields.append((4, "offset", units))
        if files is not None:
            fields.append((6, "offset", files))
        return _table(builder, fields)

    input_tables = _offsets(builder, [tensor(spec) for spec in inputs])
    output_tables = _offsets(builder, [tensor(spec) for spec in outputs])
    subgraph = _table(builder, [(2, "offset", input_tables), (3, "offset", output_tables)])  # SubGraphMetadata
    subgraphs = _offsets(builder, [subgraph])
    model_name, version = builder.CreateString(name), builder.CreateString("1")
    root = _table(builder, [(0, "offset", model_name), (2, "offset", version), (3, "offset", subgraphs)])
    builder.Finish(root, file_identifier=b"M001")
    return bytes(builder.Output())


def with_metadata(tflite_bytes: bytes, *, inputs: Sequence[dict], outputs: Sequence[dict],
                  files: dict[str, str] | None = None, name: str = "test model") -> bytes:
    """``tflite_bytes`` with a TFLITE_METADATA buffer and ``files`` ({name: text}) appended as a zip."""
    data = metadata_flatbuffer(name=name, inputs=inputs, outputs=outputs)
    model = unpack(tflite_bytes)
    buffer = schema.BufferT()
    buffer.data = list(data)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = "TFLITE_METADATA"
    entry.buffer = len(model.buffers) - 1
    model.metadata = list(model.metadata or []) + [entry]
    packed = pack(model)
    if not files:
        return packed
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for file_name, text in files.items():
            zipped.writestr(file_name, text)
    return packed + archive.getvalue()
