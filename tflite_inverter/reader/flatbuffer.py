"""Read a ``.tflite`` flatbuffer into the IR with the generated readers (``tflite`` package).

The file is memory-mapped; constant tensors are numpy views on the mapping, so reading
a model costs little more than its operator tables. Every offset, index and buffer size
is checked, and a bad file raises :class:`InvalidModelError` naming the file and the place.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import flatbuffers
import numpy as np
import tflite

from ..errors import InvalidModelError
from ..ir import DimensionMetadata, Model, Operator, QuantParams, Signature, Sparsity, Subgraph, Tensor
from .opcodes import DTYPE_OF_TENSOR_TYPE, TENSOR_TYPE_NAMES, opcode_name, resolve_builtin_code
from .options import decode_builtin_options

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
        except _PARSE_ERRORS as exc:
            raise self.fail(f"corrupt or truncated flatbuffer ({type(exc).__name__}: {exc})") from None

    def _check_vector(self, length: int, item_size: int, what: str) -> None:
        if length < 0 or length * item_size > self.size:
            raise self.fail(f"{what} claims {length} entries, more than the file can hold")

    def _model(self) -> Model:
        fb = tflite.Model.GetRootAs(self.buffer, 0)
        self.where = "the operator code table"
        self._check_vector(fb.OperatorCodesLength(), 4, "operator_codes")
        opcodes = []
        for i in range(fb.OperatorCodesLength()):
            self.where = f"operator code {i}"
            code = fb.OperatorCodes(i)
            try:
                number = resolve_builtin_code(*_raw_opcode_fields(code))
            except ValueError as exc:
                raise self.fail(str(exc)) from None
            name = opcode_name(number)
            if name == "CUSTOM":
                custom = code.CustomCode()
                name = "CUSTOM:" + (custom.decode("utf-8", "replace") if custom else "")
            opcodes.append((name, max(1, code.Version())))

        self.where = "the buffer table"
        self._check_vector(fb.BuffersLength(), 4, "buffers")
        buffers = [self._buffer_view(fb, i) for i in range(fb.BuffersLength())]

        subgraphs = []
        self._check_vector(fb.SubgraphsLength(), 4, "subgraphs")
        for s in range(fb.SubgraphsLength()):
            subgraphs.append(self._subgraph(fb.Subgraphs(s), s, opcodes, buffers))

        signatures = []
        for k in range(fb.SignatureDefsLength()):
            self.where = f"signature def {k}"
            sig = fb.SignatureDefs(k)
            index = sig.SubgraphIndex()
            if not 0 <= index < len(subgraphs):
                raise self.fail(f"names subgraph {index}, the model has {len(subgraphs)}")
            n_tensors = len(subgraphs[index].tensors)
            maps = []
            for length, get in ((sig.InputsLength(), sig.Inputs), (sig.OutputsLength(), sig.Outputs)):
                entries = {}
                for j in range(length):
                    entry = get(j)
                    tensor_index = entry.TensorIndex()
                    if not 0 <= tensor_index < n_tensors:
                        raise self.fail(f"tensor index {tensor_index} out of range")
                    name = entry.Name()
                    if name is None:
                        raise self.fail(f"tensor map entry {j} (tensor {tensor_index}) has no name")
                    entries[name.decode("utf-8", "replace")] = tensor_index
                maps.append(MappingProxyType(entries))
            key = sig.SignatureKey()
            signatures.append(Signature((key or b"").decode() or f"signature_{k}", index, maps[0], maps[1]))

        metadata = {}
        for m in range(fb.MetadataLength()):
            self.where = f"metadata entry {m}"
            entry = fb.Metadata(m)
            index = entry.Buffer()
            if 0 <= index < len(buffers) and buffers[index] is not None:
                metadata[(entry.Name() or b"").decode("utf-8", "replace")] = buffers[index]

        description = fb.Description()
        return Model(
            source=self.source,
            version=fb.Version(),
            description=description.decode("utf-8", "replace") if description else "",
            subgraphs=tuple(subgraphs),
            signatures=tuple(signatures),
            metadata=MappingProxyType(metadata),
            size_bytes=self.size,
        )

    def _buffer_view(self, fb: Any, index: int) -> np.ndarray | None:
        """A uint8 view of buffer ``index`` (inline data, or the offset/size form of large models)."""
        self.where = f"buffer {index}"
        buf = fb.Buffers(index)
        offset, size = buf.Offset(), buf.Size()
        if offset > 1:
            if offset + size > self.size:
                raise self.fail(f"data at bytes {offset}..{offset + size} lies past the end of the file ({self.size} bytes)")
            return np.frombuffer(self.buffer, dtype=np.uint8, count=size, offset=offset)
        length = buf.DataLength()
        if length == 0:
            return None
        start = buf._tab.Vector(buf._tab.Offset(4))
        if start + length > self.size:
            raise self.fail(f"{length} bytes of data starting at byte {start} lie past the end of the file ({self.size} bytes)")
        return np.frombuffer(self.buffer, dtype=np.uint8, count=length, offset=start)

    def _subgraph(self, fb: Any, s: int, opcodes: list, buffers: list) -> Subgraph:
        self.where = f"subgraph {s}"
        self._check_vector(fb.TensorsLength(), 4, "tensors")
        tensors = tuple(self._tensor(fb.Tensors(t), s, t, buffers) for t in range(fb.TensorsLength()))
        n = len(tensors)

        def indices(values: Any, what: str, optional: bool = False) -> tuple:
            out = []
            for v in (values.tolist() if hasattr(values, "tolist") else []):
                if v == -1 and optional:
                    out.append(None)
                elif not 0 <= v < n:
                    raise self.fail(f"{what} refers to tensor {v}, the subgraph has {n}")
                else:
                    out.append(v)
            return tuple(out)

        tensors = self._resolve_blockwise(tensors, s)
        self.where = f"subgraph {s}"
        inputs = indices(fb.InputsAsNumpy(), "an input")
        outputs = indices(fb.OutputsAsNumpy(), "an output")
        operators = []
        self._check_vector(fb.OperatorsLength(), 4, "operators")
        for o in range(fb.OperatorsLength()):
            op = fb.Operators(o)
            self.where = f"subgraph {s} operator {o}"
            code_index = op.OpcodeIndex()
            if not 0 <= code_index < len(opcodes):
                raise self.fail(f"opcode index {code_index} out of range ({len(opcodes)} operator codes)")
            name, version = opcodes[code_index]
            try:
                options = decode_builtin_options(op.BuiltinOptionsType(), op.BuiltinOptions())
                if not options and op.BuiltinOptions2Type():
                    options = decode_builtin_options(op.BuiltinOptions2Type(), op.BuiltinOptions2(), second=True)
            except KeyError as exc:
                raise self.fail(f"{name}: {exc.args[0]}") from None
            custom = None
            if op.CustomOptionsLength():
                custom = op.CustomOptionsAsNumpy().tobytes()
            elif op.LargeCustomOptionsSize():
                start, size = op.LargeCustomOptionsOffset(), op.LargeCustomOptionsSize()
                if start + size > self.size:
                    raise self.fail("large custom options lie past the end of the file")
                custom = bytes(self.buffer[start : start + size])
            operators.append(
                Operator(
                    index=o,
                    opcode=name,
                    version=version,
                    inputs=indices(op.InputsAsNumpy(), f"{name} input", optional=True),
                    outputs=indices(op.OutputsAsNumpy(), f"{name} output", optional=True),
                    options=options,
                    custom_options=custom,
                    intermediates=indices(op.IntermediatesAsNumpy(), f"{name} intermediate"),
                )
            )
        name = fb.Name()
        return Subgraph(
            index=s,
            name=name.decode("utf-8", "replace") if name else ("main" if s == 0 else f"subgraph_{s}"),
            tensors=tensors,
            inputs=inputs,
            outputs=outputs,
            operators=tuple(operators),
        )

    def _tensor(self, fb: Any, s: int, t: int, buffers: list) -> Tensor:
        raw_name = fb.Name()
        name = raw_name.decode("utf-8", "replace") if raw_name else f"tensor_{t}"
        self.where = f"subgraph {s} tensor {t} ({name!r})"
        type_name = TENSOR_TYPE_NAMES.get(fb.Type())
        if type_name is None:
            raise self.fail(f"unknown tensor type {fb.Type()}")
        dtype = DTYPE_OF_TENSOR_TYPE[type_name]
        shape = tuple(int(d) for d in fb.ShapeAsNumpy().tolist()) if fb.ShapeLength() else ()
        if any(d < 0 for d in shape):
            raise self.fail(f"negative dimension in shape {shape}")
        signature = (
            tuple(int(d) for d in fb.ShapeSignatureAsNumpy().tolist()) if fb.ShapeSignatureLength() else shape
        )
        if len(signature) != len(shape):
            raise self.fail(f"shape_signature {signature} does not match shape {shape}")
        buffer_index = fb.Buffer()
        if not 0 <= buffer_index < max(1, len(buffers)):
            raise self.fail(f"buffer index {buffer_index} out of range ({len(buffers)} buffers)")
        raw = buffers[buffer_index] if buffers else None
        sparsity = self._sparsity(fb.Sparsity()) if fb.Sparsity() is not None else None
        data = None
        if raw is not None:
            data = self._tensor_data(raw, dtype, shape, sparse=sparsity is not None)
        quantization = self._quantization(fb.Quantization())
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
            is_variable=bool(fb.IsVariable()),
            has_rank=bool(fb.HasRank()) or bool(shape),
        )

    def _tensor_data(self, raw: np.ndarray, dtype: str, shape: tuple, sparse: bool) -> np.ndarray:
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
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

    def _quantization(self, fb: Any) -> "QuantParams | _Blockwise | None":
        if fb is not None and fb.DetailsType() == _BLOCKWISE_QUANTIZATION:
            table = fb.Details()
            fields = [
                table.Get(flatbuffers.number_types.Int32Flags, o + table.Pos) if (o := table.Offset(slot)) else default
                for slot, default in ((4, 0), (6, -1), (8, 0))
            ]
            return _Blockwise(*fields)
        if fb is None or fb.ScaleLength() == 0:
            return None
        scales = fb.ScaleAsNumpy().astype(np.float32)
        zero_points = (
            fb.ZeroPointAsNumpy().astype(np.int64) if fb.ZeroPointLength() else np.zeros(scales.shape, np.int64)
        )
        if zero_points.size == 1 and scales.size > 1:
            zero_points = np.broadcast_to(zero_points, scales.shape).copy()
        if zero_points.size != scales.size:
            raise self.fail(f"{scales.size} quantization scales but {zero_points.size} zero points")
        return QuantParams(
            scales=scales,
            zero_points=zero_points,
            quantized_dimension=fb.QuantizedDimension(),
            min=fb.MinAsNumpy().astype(np.float32) if fb.MinLength() else None,
            max=fb.MaxAsNumpy().astype(np.float32) if fb.MaxLength() else None,
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

    def _sparsity(self, fb: Any) -> Sparsity:
        dims = []
        for d in range(fb.DimMetadataLength()):
            meta = fb.DimMetadata(d)
            fmt = "DENSE" if meta.Format() == tflite.DimensionType.DENSE else "SPARSE_CSR"
            dims.append(
                DimensionMetadata(
                    format=fmt,
                    dense_size=meta.DenseSize(),
                    array_segments=_index_vector(meta.ArraySegmentsType(), meta.ArraySegments()),
                    array_indices=_index_vector(meta.ArrayIndicesType(), meta.ArrayIndices()),
                )
            )
        traversal = tuple(fb.TraversalOrderAsNumpy().tolist()) if fb.TraversalOrderLength() else ()
        block_map = tuple(fb.BlockMapAsNumpy().tolist()) if fb.BlockMapLength() else ()
        return Sparsity(traversal, block_map, tuple(dims))


def _raw_opcode_fields(code: Any) -> tuple[int | None, int | None]:
    """``deprecated_builtin_code`` (int8, vtable slot 0) and ``builtin_code`` (int32, slot 3) as
    stored, ``None`` when absent; not ``code.BuiltinCode()``, which substitutes the byte field for
    any int value below 127."""
    table = code._tab
    byte_offset, int_offset = table.Offset(4), table.Offset(10)
    deprecated = table.Get(flatbuffers.number_types.Int8Flags, byte_offset + table.Pos) if byte_offset else None
    builtin = table.Get(flatbuffers.number_types.Int32Flags, int_offset + table.Pos) if int_offset else None
    return deprecated, builtin


_BLOCKWISE_QUANTIZATION = 2  # QuantizationDetails union tag (newer than the `tflite` readers)


@dataclass(frozen=True)
class _Blockwise:
    """``BlockwiseQuantization`` details as stored: tensor indices and the block size."""

    scales: int
    zero_points: int  # -1: none
    block_size: int


_INDEX_VECTOR_CLASSES = {
    tflite.SparseIndexVector.Int32Vector: tflite.Int32Vector,
    tflite.SparseIndexVector.Uint16Vector: tflite.Uint16Vector,
    tflite.SparseIndexVector.Uint8Vector: tflite.Uint8Vector,
}


def _index_vector(kind: int, table: Any) -> np.ndarray | None:
    cls = _INDEX_VECTOR_CLASSES.get(kind)
    if cls is None or table is None:
        return None
    vector = cls()
    vector.Init(table.Bytes, table.Pos)
    values = vector.ValuesAsNumpy()
    return np.asarray(values, dtype=np.int64) if not isinstance(values, int) else np.zeros(0, np.int64)


def _unpack_low_bits(raw: np.ndarray, bits: int, signed: bool) -> np.ndarray:
    per_byte = 8 // bits
    mask = (1 << bits) - 1
    shifts = np.arange(per_byte, dtype=np.uint8) * bits
    values = ((raw[:, None] >> shifts) & mask).reshape(-1).astype(np.int8)
    if signed:
        values = np.where(values >= (1 << (bits - 1)), values - (1 << bits), values).astype(np.int8)
    return values


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
