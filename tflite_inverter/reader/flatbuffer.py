"""Read a ``.tflite`` flatbuffer into the IR.

The file is memory-mapped; constant tensors are numpy views on the mapping, so reading
a model costs little more than its operator tables. The tables read for every tensor and
operator (model, buffers, operator codes, subgraphs, tensors, quantization, sparsity,
operators, signature defs) are decoded by :mod:`.tables` straight from the bytes, builtin options
by :mod:`.options` (on first use) the same way.
Every offset, index and buffer size is checked, and a bad file raises
:class:`InvalidModelError` naming the file and the place.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ..errors import InvalidModelError
from ..ir import DimensionMetadata, Model, Operator, QuantParams, Signature, Sparsity, Subgraph, Tensor
from .opcodes import DTYPE_OF_TENSOR_TYPE, TENSOR_TYPE_NAMES, opcode_name, resolve_builtin_code
from .options import NEWER_OPTIONS2, LazyOptions, decode_builtin_options
from .tables import BOOL, BYTE, INT, UBYTE, UINT, ULONG, FlatbufferError, Table, root

FILE_IDENTIFIER = b"TFL3"
_PARSE_ERRORS = (struct.error, IndexError, ValueError, TypeError, OverflowError, UnicodeDecodeError, KeyError)

# Fixed-size numpy dtypes the reader can view zero-copy.
_VIEW_DTYPES = {
    "float32": np.float32, "float16": np.float16, "float64": np.float64,
    "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "uint16": np.uint16,
    "int32": np.int32, "uint32": np.uint32, "int64": np.int64, "uint64": np.uint64,
    "bool": np.bool_, "complex64": np.complex64, "complex128": np.complex128,
}


def load(source: str | os.PathLike | bytes | bytearray | memoryview) -> Model:
    """Read a TFLite model from a path or from bytes. No TensorFlow is imported."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _Reader(memoryview(source), "<bytes>").model()
    path = Path(source)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size == 0:
                raise InvalidModelError(f"{path}: the file is empty, not a TFLite model")
            buffer = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    except FileNotFoundError:
        raise InvalidModelError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidModelError(f"{path}: is a directory, not a .tflite file") from None
    except PermissionError:
        raise InvalidModelError(f"{path}: permission denied") from None
    return _Reader(buffer, str(path)).model()


class _Reader:
    def __init__(self, buffer: Any, source: str):
        self.buffer = buffer
        self.source = source
        self.size = len(buffer)
        self.where = "the file header"

    def fail(self, message: str) -> InvalidModelError:
        return InvalidModelError(f"{self.source}: {self.where}: {message}")

    def model(self) -> Model:
        if self.size < 8:
            raise InvalidModelError(f"{self.source}: only {self.size} bytes, too short for a TFLite model")
        identifier = bytes(self.buffer[4:8])
        if identifier != FILE_IDENTIFIER:
            raise InvalidModelError(
                f"{self.source}: not a TFLite model (file identifier {identifier!r}, expected {FILE_IDENTIFIER!r})"
            )
        try:
            return self._model()
        except InvalidModelError:
            raise
        except FlatbufferError as exc:
            raise self.fail(f"{exc} (corrupt or truncated flatbuffer)") from None
        except _PARSE_ERRORS as exc:
            raise self.fail(f"corrupt or truncated flatbuffer ({type(exc).__name__}: {exc})") from None

    def _model(self) -> Model:
        buf, size = self.buffer, self.size
        top = root(buf, size)
        self.where = "the operator code table"
        opcodes = []
        for i, pos in enumerate(top.tables(1, "operator_codes")):
            self.where = f"operator code {i}"
            code = Table(buf, size, pos, "the operator code")
            # deprecated_builtin_code (int8) and builtin_code (int32) as stored, None when absent:
            # resolve_builtin_code applies the schema's rule to the raw fields.
            raw = (code.scalar(0, BYTE, None, "deprecated_builtin_code"), code.scalar(3, INT, None, "builtin_code"))
            try:
                number = resolve_builtin_code(*raw)
            except ValueError as exc:
                raise self.fail(str(exc)) from None
            name = opcode_name(number)
            if name == "CUSTOM":
                custom = code.string(1, "custom_code")
                name = "CUSTOM:" + (custom.decode("utf-8", "replace") if custom else "")
            opcodes.append((name, max(1, code.scalar(2, INT, 1, "version"))))

        self.where = "the buffer table"
        buffers = [self._buffer_view(pos, i) for i, pos in enumerate(top.tables(4, "buffers"))]

        self.where = "the subgraph table"
        subgraphs = [self._subgraph(pos, s, opcodes, buffers) for s, pos in enumerate(top.tables(2, "subgraphs"))]

        self.where = "the signature def table"
        signatures = []
        for k, pos in enumerate(top.tables(7, "signature_defs")):
            self.where = f"signature def {k}"
            sig = Table(buf, size, pos, "the signature def")
            index = sig.scalar(4, UINT, 0, "subgraph_index")
            if not 0 <= index < len(subgraphs):
                raise self.fail(f"names subgraph {index}, the model has {len(subgraphs)}")
            n_tensors = len(subgraphs[index].tensors)
            maps = []
            for slot, field in ((0, "inputs"), (1, "outputs")):
                entries = {}
                for j, entry_pos in enumerate(sig.tables(slot, field)):
                    entry = Table(buf, size, entry_pos, f"{field} entry {j}")
                    tensor_index = entry.scalar(1, UINT, 0, "tensor_index")
                    if not 0 <= tensor_index < n_tensors:
                        raise self.fail(f"tensor index {tensor_index} out of range")
                    name = entry.string(0, "name")
                    if name is None:
                        raise self.fail(f"tensor map entry {j} (tensor {tensor_index}) has no name")
                    entries[name.decode("utf-8", "replace")] = tensor_index
                maps.append(MappingProxyType(entries))
            key = sig.string(2, "signature_key")
            signatures.append(Signature((key or b"").decode() or f"signature_{k}", index, maps[0], maps[1]))

        self.where = "the metadata table"
        metadata = {}
        for m, pos in enumerate(top.tables(6, "metadata")):
            self.where = f"metadata entry {m}"
            entry = Table(buf, size, pos, "the metadata entry")
            index = entry.scalar(1, UINT, 0, "buffer")
            if 0 <= index < len(buffers) and buffers[index] is not None:
                metadata[(entry.string(0, "name") or b"").decode("utf-8", "replace")] = buffers[index]

        self.where = "the model table"
        description = top.string(3, "description")
        return Model(
            source=self.source,
            version=top.scalar(0, UINT, 0, "version"),
            description=description.decode("utf-8", "replace") if description else "",
            subgraphs=tuple(subgraphs),
            signatures=tuple(signatures),
            metadata=MappingProxyType(metadata),
            size_bytes=self.size,
        )

    def _buffer_view(self, pos: int, index: int) -> np.ndarray | None:
        """A uint8 view of buffer ``index`` (inline data, or the offset/size form of large models)."""
        self.where = f"buffer {index}"
        table = Table(self.buffer, self.size, pos, "the buffer")
        offset, size = table.scalar(1, ULONG, 0, "offset"), table.scalar(2, ULONG, 0, "size")
        if offset > 1:
            if offset + size > self.size:
                raise self.fail(f"data at bytes {offset}..{offset + size} lies past the end of the file ({self.size} bytes)")
            return np.frombuffer(self.buffer, dtype=np.uint8, count=size, offset=offset)
        found = table.vector(0, 1, "data")
        if found is None or found[1] == 0:
            return None
        start, length = found
        return np.frombuffer(self.buffer, dtype=np.uint8, count=length, offset=start)

    def _subgraph(self, pos: int, s: int, opcodes: list, buffers: list) -> Subgraph:
        self.where = f"subgraph {s}"
        buf, size = self.buffer, self.size
        fb = Table(buf, size, pos, "the subgraph")
        tensors = tuple(self._tensor(pos, s, t, buffers) for t, pos in enumerate(fb.tables(0, "tensors")))
        n = len(tensors)

        def indices(values: tuple | None, what: str, optional: bool = False) -> tuple:
            if not values:
                return ()
            if min(values) >= 0 and max(values) < n:
                return values
            out = []
            for v in values:
                if v == -1 and optional:
                    out.append(None)
                elif not 0 <= v < n:
                    raise self.fail(f"{what} refers to tensor {v}, the subgraph has {n}")
                else:
                    out.append(v)
            return tuple(out)

        tensors = self._resolve_blockwise(tensors, s)
        self.where = f"subgraph {s}"
        inputs = indices(fb.ints(1, "inputs"), "an input")
        outputs = indices(fb.ints(2, "outputs"), "an output")
        operators = []
        for o, op_pos in enumerate(fb.tables(3, "operators")):
            self.where = f"subgraph {s} operator {o}"
            op = Table(buf, size, op_pos, "the operator")
            code_index = op.scalar(0, UINT, 0, "opcode_index")
            if not 0 <= code_index < len(opcodes):
                raise self.fail(f"opcode index {code_index} out of range ({len(opcodes)} operator codes)")
            name, version = opcodes[code_index]
            options = self._options(op, name)
            custom = op.string(5, "custom_options") or None
            if custom is None:
                start, length = op.scalar(9, ULONG, 0, "large_custom_options_offset"), op.scalar(10, ULONG, 0, "large_custom_options_size")
                if length:
                    if start + length > self.size:
                        raise self.fail("large custom options lie past the end of the file")
                    custom = bytes(self.buffer[start : start + length])
            operators.append(
                Operator(
                    index=o,
                    opcode=name,
                    version=version,
                    inputs=indices(op.ints(1, "inputs"), f"{name} input", optional=True),
                    outputs=indices(op.ints(2, "outputs"), f"{name} output", optional=True),
                    options=options,
                    custom_options=custom,
                    intermediates=indices(op.ints(8, "intermediates"), f"{name} intermediate"),
                )
            )
        self.where = f"subgraph {s}"
        name = fb.string(4, "name")
        return Subgraph(
            index=s,
            name=name.decode("utf-8", "replace") if name else ("main" if s == 0 else f"subgraph_{s}"),
            tensors=tensors,
            inputs=inputs,
            outputs=outputs,
            operators=tuple(operators),
        )

    def _options(self, op: Table, opcode: str) -> Mapping[str, Any]:
        """The operator's ``builtin_options`` (or, when they decode to nothing, ``builtin_options_2``):
        the tables are located and checked now, their fields decoded on first use (:class:`LazyOptions`)."""
        found = []
        for type_slot, field in ((3, "builtin_options"), (11, "builtin_options_2")):
            options_type = op.scalar(type_slot, UBYTE, 0, field + "_type")
            to = op.target(type_slot + 1, field) if options_type else None
            if to is not None:
                table = Table(self.buffer, self.size, to, field)  # the table and its vtable lie in the file
                if type_slot == 11 and options_type in NEWER_OPTIONS2:  # read raw later: check its vectors now
                    for key, slot, kind, _ in NEWER_OPTIONS2[options_type][1]:
                        table.vector(slot, struct.calcsize("<" + kind[1]), key)
                found.append((options_type, table, type_slot == 11))
        if not found:
            return _NO_OPTIONS
        source, where = self.source, self.where

        def decode() -> MappingProxyType:
            try:
                options = _NO_OPTIONS
                for options_type, table, second in found:  # builtin_options_2 only when the first are empty
                    if not options:
                        options = decode_builtin_options(options_type, table, second=second)
                return options
            except KeyError as exc:
                raise InvalidModelError(f"{source}: {where}: {opcode}: {exc.args[0]}") from None
            except _PARSE_ERRORS as exc:
                raise InvalidModelError(f"{source}: {where}: {opcode}: corrupt options ({type(exc).__name__}: {exc})") from None

        return LazyOptions(decode)

    def _tensor(self, pos: int, s: int, t: int, buffers: list) -> Tensor:
        self.where = f"subgraph {s} tensor {t}"
        fb = Table(self.buffer, self.size, pos, "the tensor")
        raw_name = fb.string(3, "name")
        name = raw_name.decode("utf-8", "replace") if raw_name else f"tensor_{t}"
        self.where = f"subgraph {s} tensor {t} ({name!r})"
        type_number = fb.scalar(1, BYTE, 0, "type")
        type_name = TENSOR_TYPE_NAMES.get(type_number)
        if type_name is None:
            raise self.fail(f"unknown tensor type {type_number}")
        dtype = DTYPE_OF_TENSOR_TYPE[type_name]
        shape = fb.ints(0, "shape") or ()
        if shape and min(shape) < 0:
            raise self.fail(f"negative dimension in shape {shape}")
        signature = fb.ints(7, "shape_signature") or shape
        if len(signature) != len(shape):
            raise self.fail(f"shape_signature {signature} does not match shape {shape}")
        buffer_index = fb.scalar(2, UINT, 0, "buffer")
        if not 0 <= buffer_index < max(1, len(buffers)):
            raise self.fail(f"buffer index {buffer_index} out of range ({len(buffers)} buffers)")
        raw = buffers[buffer_index] if buffers else None
        sparsity = None
        if fb.has(6):
            sparsity = self._sparsity(fb.table(6, "sparsity"))
        data = None
        if raw is not None:
            data = self._tensor_data(raw, dtype, shape, sparse=sparsity is not None)
        quantization = self._quantization(fb.table(4, "quantization")) if fb.has(4) else None
        return Tensor(
            index=t,
            name=name,
            shape=shape,
            shape_signature=signature,
            dtype=dtype,
            buffer=buffer_index,
            data=data,
            quantization=quantization,
            sparsity=sparsity,
            is_variable=fb.scalar(5, BOOL, False, "is_variable"),
            has_rank=fb.scalar(8, BOOL, False, "has_rank") or bool(shape),
        )

    def _tensor_data(self, raw: np.ndarray, dtype: str, shape: tuple, sparse: bool) -> np.ndarray:
        count = math.prod(shape)  # exact (numpy int64 would wrap for wild shapes)
        if sparse:  # compressed values; densified later from the sparsity parameters
            return raw.view(_VIEW_DTYPES[dtype]) if dtype in _VIEW_DTYPES else raw
        if dtype == "string":
            return _decode_strings(raw, count, self.fail).reshape(shape)
        if dtype in ("int4", "uint4", "int2"):
            bits = 2 if dtype == "int2" else 4
            expected = -(-count * bits // 8)
            if raw.size < expected:
                raise self.fail(f"{dtype} data needs {expected} bytes for shape {shape}, buffer holds {raw.size}")
            return _unpack_low_bits(raw[:expected], bits, signed=dtype != "uint4")[:count].reshape(shape)
        if dtype not in _VIEW_DTYPES:
            return raw
        itemsize = np.dtype(_VIEW_DTYPES[dtype]).itemsize
        if raw.size != count * itemsize:
            raise self.fail(
                f"{dtype}{list(shape)} needs {count * itemsize} bytes but its buffer holds {raw.size}"
            )
        view = np.frombuffer(raw, dtype=_VIEW_DTYPES[dtype], count=count).reshape(shape)
        return view

    def _quantization(self, fb: Table) -> "QuantParams | _Blockwise | None":
        if fb.scalar(4, UBYTE, 0, "quantization details_type") == _BLOCKWISE_QUANTIZATION:
            table = fb.table(5, "quantization details")
            if table is None:
                raise self.fail("blockwise quantization without its details table")
            return _Blockwise(*(table.scalar(slot, INT, default, "blockwise " + field)
                                for slot, default, field in ((0, 0, "scales"), (1, -1, "zero_points"), (2, 0, "block_size"))))
        scales = fb.array(2, "<f4", "quantization scale")
        if scales is None or scales.size == 0:
            return None
        scales = scales.astype(np.float32)
        zero_points = fb.array(3, "<i8", "quantization zero_point")
        zero_points = (zero_points.astype(np.int64) if zero_points is not None and zero_points.size
                       else np.zeros(scales.shape, np.int64))
        if zero_points.size == 1 and scales.size > 1:
            zero_points = np.broadcast_to(zero_points, scales.shape).copy()
        if zero_points.size != scales.size:
            raise self.fail(f"{scales.size} quantization scales but {zero_points.size} zero points")
        low, high = fb.array(0, "<f4", "quantization min"), fb.array(1, "<f4", "quantization max")
        return QuantParams(
            scales=scales,
            zero_points=zero_points,
            quantized_dimension=fb.scalar(6, INT, 0, "quantized_dimension"),
            min=low.astype(np.float32) if low is not None and low.size else None,
            max=high.astype(np.float32) if high is not None and high.size else None,
        )

    def _resolve_blockwise(self, tensors: tuple, s: int) -> tuple:
        """Blockwise quantization names its scale (and zero-point) tensors by index: read them once
        every tensor of the subgraph is, and check they have the shape the blocks need."""
        if not any(isinstance(t.quantization, _Blockwise) for t in tensors):
            return tensors
        out = list(tensors)
        for tensor in tensors:
            details = tensor.quantization
            if not isinstance(details, _Blockwise):
                continue
            self.where = f"subgraph {s} tensor {tensor.index} ({tensor.name!r}) blockwise quantization"
            size = details.block_size
            if tensor.data is None or not tensor.shape or size <= 0 or tensor.shape[-1] % size:
                raise self.fail(f"block size {size} for {'a computed' if tensor.data is None else 'a constant'} "
                                f"tensor of shape {tensor.shape} (blocks must divide its last dimension)")
            expected = (*tensor.shape[:-1], tensor.shape[-1] // size)

            def block_table(index: int, what: str, kinds: str) -> np.ndarray:
                if not 0 <= index < len(tensors):
                    raise self.fail(f"{what} tensor {index} out of range ({len(tensors)} tensors)")
                source = tensors[index]
                if source.data is None or np.asarray(source.data).dtype.kind not in kinds:
                    raise self.fail(f"{what} tensor {source.name!r} is not a constant of the right type ({source.dtype})")
                if tuple(source.shape) != expected:
                    raise self.fail(f"{what} tensor {source.name!r} has shape {source.shape}, blocks of {size} "
                                    f"over {tensor.shape} need {expected}")
                return np.asarray(source.data)

            scales = block_table(details.scales, "scale", "f").astype(np.float32)
            zero_points = (np.zeros(expected, np.int64) if details.zero_points < 0
                           else block_table(details.zero_points, "zero-point", "iu").astype(np.int64))
            out[tensor.index] = replace(tensor, quantization=QuantParams(
                scales=scales, zero_points=zero_points, quantized_dimension=len(tensor.shape) - 1, block_size=size,
                block_tensors=(details.scales,) + ((details.zero_points,) if details.zero_points >= 0 else ())))
        return tuple(out)

    def _sparsity(self, table: Table) -> Sparsity:
        """``SparsityParameters``: traversal_order (0), block_map (1), dim_metadata (2), each
        ``DimensionMetadata`` format (0), dense_size (1), array_segments / array_indices (a
        ``SparseIndexVector`` union: type 2 / 4, table 3 / 5, whose vector ``values`` is field 0)."""
        dims = []
        for d, pos in enumerate(table.tables(2, "sparsity.dim_metadata")):
            meta = Table(self.buffer, self.size, pos, f"sparsity.dim_metadata[{d}]")
            fmt = "DENSE" if meta.scalar(0, BYTE, 0, "format") == _DENSE else "SPARSE_CSR"
            dims.append(
                DimensionMetadata(
                    format=fmt,
                    dense_size=meta.scalar(1, INT, 0, "dense_size"),
                    array_segments=self._index_vector(meta, 2, "array_segments"),
                    array_indices=self._index_vector(meta, 4, "array_indices"),
                )
            )
        traversal = table.ints(0, "sparsity.traversal_order") or ()
        block_map = table.ints(1, "sparsity.block_map") or ()
        return Sparsity(tuple(traversal), tuple(block_map), tuple(dims))

    def _index_vector(self, meta: Table, type_slot: int, name: str) -> np.ndarray | None:
        code = _INDEX_VECTOR_CODES.get(meta.scalar(type_slot, UBYTE, 0, name + "_type"))
        vector = meta.table(type_slot + 1, name) if code is not None else None
        if vector is None:
            return None
        values = vector.ints(0, name + ".values", code, struct.calcsize("<" + code))
        return np.asarray(values or (), dtype=np.int64)


_NO_OPTIONS = MappingProxyType({})
_BLOCKWISE_QUANTIZATION = 2  # QuantizationDetails union tag (newer than the `tflite` readers)


@dataclass(frozen=True)
class _Blockwise:
    """``BlockwiseQuantization`` details as stored: tensor indices and the block size."""

    scales: int
    zero_points: int  # -1: none
    block_size: int


_DENSE = 0  # DimensionType.DENSE
# SparseIndexVector union tags -> the struct code of its vector's values (Int32Vector, Uint16Vector, Uint8Vector).
_INDEX_VECTOR_CODES = {1: "i", 2: "H", 3: "B"}


def _unpack_low_bits(raw: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    """Each byte of ``raw`` as ``8 // bits`` values, lowest bits first, as int8 (sign-extended when
    ``signed``): shifted left so the value's top bit is the byte's, then shifted right arithmetically."""
    per_byte = 8 // bits
    kind = np.int8 if signed else np.uint8
    values = np.empty((raw.size, per_byte), kind)
    for k in range(per_byte):
        values[:, k] = (raw << np.uint8(8 - bits * (k + 1))).view(kind) >> (8 - bits)
    return values.reshape(-1).astype(np.int8, copy=False)


def _decode_strings(raw: np.ndarray, count: int, fail: Any) -> np.ndarray:
    """TFLite string buffer: int32 count, count+1 int32 offsets, then the bytes."""
    if raw.size < 4:
        raise fail("string tensor buffer shorter than its header")
    n = int(np.frombuffer(raw, np.int32, 1)[0])
    if n != count or raw.size < 4 * (n + 2):
        raise fail(f"string tensor holds {n} strings, shape needs {count}")
    offsets = np.frombuffer(raw, np.int32, n + 1, offset=4)
    if np.any(np.diff(offsets) < 0) or offsets[-1] > raw.size:
        raise fail("string tensor offsets out of order or past the buffer")
    data = raw.tobytes()
    return np.array([data[offsets[i] : offsets[i + 1]] for i in range(n)], dtype=object)
