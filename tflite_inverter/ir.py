"""The model as plain data: no TensorFlow, no files.

The reader fills these from a ``.tflite`` flatbuffer. Constant data are numpy views on
the memory-mapped file (zero copy). Optional operator inputs (index -1 in the file)
are ``None``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from .errors import TfliteInverterError
from .display import html_block, html_lines, html_table, shape_text, text_table


# IR dtype names that are plain numpy dtypes (everything but string, resource, variant, int4, ...).
NUMPY_DTYPES: dict[str, np.dtype] = {name: np.dtype(name) for name in (
    "float32", "float16", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "bool")}


@dataclass(frozen=True)
class QuantParams:
    """Affine quantization of a tensor: real = scale * (q - zero_point).

    Blockwise quantization (``block_size`` > 0, the schema's ``BlockwiseQuantization`` details):
    ``scales`` and ``zero_points`` have the tensor's shape with the last dimension divided by
    ``block_size``; element ``[..., i]`` uses entry ``[..., i // block_size]``."""

    scales: np.ndarray  # float32, one per channel (length 1 when per-tensor); one per block if blockwise
    zero_points: np.ndarray  # int64, same length as scales
    quantized_dimension: int = 0
    min: np.ndarray | None = None
    max: np.ndarray | None = None
    block_size: int = 0
    block_tensors: tuple[int, ...] = ()  # blockwise: the scale tensor's index (and the zero points')

    @property
    def per_channel(self) -> bool:
        return self.scales.size > 1

    @property
    def blockwise(self) -> bool:
        return self.block_size > 0

    def describe(self) -> str:
        if self.blockwise:
            return (
                f"blockwise, blocks of {self.block_size} along the last axis: {self.scales.size} scales "
                f"in [{self.scales.min():.6g}, {self.scales.max():.6g}]"
                + ("" if not self.zero_points.any() else ", with zero points")
            )
        if self.per_channel:
            return (
                f"per-channel on axis {self.quantized_dimension}: {self.scales.size} scales "
                f"in [{self.scales.min():.6g}, {self.scales.max():.6g}]"
            )
        return f"scale={float(self.scales[0]):.9g} zero_point={int(self.zero_points[0])}"

    def __repr__(self) -> str:
        return f"QuantParams({self.describe()})"


@dataclass(frozen=True)
class DimensionMetadata:
    format: str  # "DENSE" or "SPARSE_CSR"
    dense_size: int
    array_segments: np.ndarray | None
    array_indices: np.ndarray | None


@dataclass(frozen=True)
class Sparsity:
    traversal_order: tuple[int, ...]
    block_map: tuple[int, ...]
    dim_metadata: tuple[DimensionMetadata, ...]


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]  # -1 marks a dynamic dimension
    dtype: str  # numpy-style name: "float32", "int8", ...; "string", "resource", "variant", "int4"
    buffer: int
    data: np.ndarray | None = field(default=None, repr=False, compare=False)
    quantization: QuantParams | None = field(default=None, repr=False, compare=False)
    sparsity: Sparsity | None = field(default=None, repr=False, compare=False)
    is_variable: bool = False
    has_rank: bool = True
    # The constant in real units, as an operator consumes it: set by the passes (dequantized integer
    # weights, equalized float weights); ``None`` means ``data`` is consumed as it is. ``data`` keeps
    # what the file stores.
    real: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def value(self) -> np.ndarray | None:
        """The constant as operators consume it: :attr:`real` when a pass set it, else :attr:`data`."""
        return self.real if self.real is not None else self.data

    @property
    def is_dynamic(self) -> bool:
        return any(d < 0 for d in self.shape_signature)

    def describe(self) -> str:
        dims = ",".join("?" if d < 0 else str(d) for d in self.shape_signature)
        text = f"{self.name} {self.dtype}[{dims}]"
        if self.quantization is not None:
            text += f" ({self.quantization.describe()})"
        return text

    def __repr__(self) -> str:
        kind = ", constant" if self.data is not None else (", variable" if self.is_variable else "")
        return f"Tensor({self.index}: {self.describe()}{kind})"


@dataclass(frozen=True)
class Operator:
    index: int
    opcode: str  # builtin name ("CONV_2D") or "CUSTOM:<custom_code>"
    version: int
    inputs: tuple[int | None, ...]
    outputs: tuple[int, ...]
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    custom_options: bytes | None = field(default=None, repr=False)
    intermediates: tuple[int, ...] = ()
    # Set by cross-layer equalization: the per-output-channel upper bound that replaces the fused
    # RELU/RELU6 of a rescaled operator (output = min(relu(x), activation_clip)).
    activation_clip: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def is_custom(self) -> bool:
        return self.opcode.startswith("CUSTOM:")

    @property
    def custom_code(self) -> str:
        """The custom code of a custom operator (``"CUSTOM:Foo"`` -> ``"Foo"``)."""
        return self.opcode[len("CUSTOM:"):] if self.is_custom else ""

    def __repr__(self) -> str:
        inputs = ",".join("-" if i is None else str(i) for i in self.inputs)
        return f"Operator({self.index}: {self.opcode} v{self.version}, inputs [{inputs}] -> outputs {list(self.outputs)})"


@dataclass(frozen=True)
class Subgraph:
    index: int
    name: str
    tensors: tuple[Tensor, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    operators: tuple[Operator, ...]

    def __repr__(self) -> str:
        return (f"Subgraph({self.index} {self.name!r}: {len(self.operators)} operators, {len(self.tensors)} tensors, "
                f"inputs {[self.tensors[i].name for i in self.inputs]}, outputs {[self.tensors[i].name for i in self.outputs]})")

    def tensor_table(self) -> "TensorTable":
        """Every tensor: name, shape, dtype, quantization and the operator that computes it."""
        producer = {out: op for op in self.operators for out in op.outputs if out is not None}
        inputs, outputs = set(self.inputs), set(self.outputs)
        rows = []
        for tensor in self.tensors:
            op = producer.get(tensor.index)
            if op is not None:
                made_by = f"{op.index} {op.opcode}"
            elif tensor.index in inputs:
                made_by = "(input)"
            elif tensor.data is not None:
                made_by = "(constant)"
            elif tensor.is_variable:
                made_by = "(variable)"
            else:
                made_by = "-"
            role = "output" if tensor.index in outputs else ""
            rows.append(TensorRow(tensor.index, tensor.name, tuple(tensor.shape_signature), tensor.dtype,
                                  tensor.quantization.describe() if tensor.quantization is not None else "",
                                  made_by, role))
        return TensorTable(rows, f"subgraph {self.index} {self.name!r}: {len(rows)} tensors")


@dataclass(frozen=True)
class TensorRow:
    index: int
    name: str
    shape: tuple[int, ...]  # -1 marks a dynamic dimension
    dtype: str
    quantization: str  # "" when not quantized
    producer: str  # "12 CONV_2D", "(input)", "(constant)", "(variable)" or "-"
    role: str = ""  # "output" for a subgraph output

    @property
    def is_constant(self) -> bool:
        return self.producer == "(constant)"


class TensorTable(list):
    """A list of :class:`TensorRow` that prints as a table (and as HTML in a notebook)."""

    _HEADERS = ("index", "name", "shape", "dtype", "quantization", "producer", "")

    def __init__(self, rows: list[TensorRow], title: str = ""):
        super().__init__(rows)
        self.title = title

    def names(self) -> list[str]:
        return [row.name for row in self]

    def computed(self) -> "TensorTable":
        """Only the tensors operators compute (the names ``outputs=`` cuts accept, besides the inputs)."""
        return TensorTable([r for r in self if r.producer[:1].isdigit()], self.title + " (computed)")

    def _rows(self) -> list[tuple]:
        return [(r.index, r.name, shape_text(r.shape), r.dtype, r.quantization, r.producer, r.role) for r in self]

    def table(self) -> str:
        return "\n".join(filter(None, [self.title, text_table(self._HEADERS, self._rows())]))

    def __repr__(self) -> str:
        return self.table()

    __str__ = table

    def _repr_html_(self) -> str:
        return html_table(self._HEADERS, self._rows(), caption=self.title)


@dataclass(frozen=True)
class Signature:
    key: str
    subgraph_index: int
    inputs: Mapping[str, int]  # signature name -> tensor index in the subgraph
    outputs: Mapping[str, int]


@dataclass(frozen=True)
class TensorDescription:
    """What a model's TFLite metadata says of one input or output."""

    name: str = ""
    description: str = ""
    mean: tuple[float, ...] | None = None  # input normalization: (x - mean) / std
    std: tuple[float, ...] | None = None
    labels: tuple[str, ...] | None = None  # from an associated label file
    associated_files: tuple[str, ...] = ()

    def describe(self) -> str:
        details = []
        if self.mean is not None or self.std is not None:
            details.append(f"normalization (x - {list(self.mean or [])}) / {list(self.std or [])}")
        if self.labels:
            details.append(f"{len(self.labels)} labels ({', '.join(map(repr, self.labels[:3]))}"
                           + (", ...)" if len(self.labels) > 3 else ")"))
        elif self.associated_files:
            details.append(f"files {list(self.associated_files)}")
        name = self.name or "(unnamed)"
        return f"{name}: {', '.join(details)}" if details else name


@dataclass(frozen=True)
class ModelDescription:
    """The model's TFLite metadata (``TFLITE_METADATA``), when it has one."""

    name: str = ""
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""
    inputs: tuple[TensorDescription, ...] = ()
    outputs: tuple[TensorDescription, ...] = ()
    associated_files: tuple[str, ...] = ()
    error: str | None = None  # unreadable metadata (the model itself loads)

    def lines(self) -> list[str]:
        if self.error:
            return [f"metadata: {self.error}"]
        head = " ".join(filter(None, [self.name, f"v{self.version}" if self.version else "", f"by {self.author}" if self.author else ""]))
        lines = [f"metadata: {head or '(unnamed)'}" + (f" ({self.license})" if self.license else "")]
        lines += [f"  input  {t.describe()}" for t in self.inputs]
        lines += [f"  output {t.describe()}" for t in self.outputs]
        return lines


@dataclass(frozen=True)
class Model:
    source: str  # file path or "<bytes>"
    version: int
    description: str
    subgraphs: tuple[Subgraph, ...]
    signatures: tuple[Signature, ...]
    metadata: Mapping[str, bytes] = field(repr=False, default_factory=dict)
    size_bytes: int = 0
    # The TFLITE_METADATA buffer read (reader/metadata.py): normalization, labels; None without one.
    tflite_metadata: ModelDescription | None = field(default=None, repr=False, compare=False)

    @property
    def main(self) -> Subgraph:
        return self.subgraphs[0]

    def tensors(self, subgraph: int = 0) -> TensorTable:
        """The tensors of a subgraph (default: the main one) with name, shape, dtype, quantization and
        producing operator: the names that ``invert(outputs=..., inputs=...)`` accepts."""
        if not 0 <= subgraph < len(self.subgraphs):
            raise TfliteInverterError(f"{self.source}: no subgraph {subgraph}; it has {len(self.subgraphs)}")
        return self.subgraphs[subgraph].tensor_table()

    def __repr__(self) -> str:
        sg = self.main
        ios = []
        for label, indices in (("inputs", sg.inputs), ("outputs", sg.outputs)):
            described = [f"{sg.tensors[i].name} {sg.tensors[i].dtype}{shape_text(sg.tensors[i].shape_signature)}"
                         for i in indices[:3]]
            more = f", +{len(indices) - 3} more" if len(indices) > 3 else ""
            ios.append(f"{label} [{', '.join(described)}{more}]")
        operators = sum(len(s.operators) for s in self.subgraphs)
        return (f"<Model {self.source!r}: {len(self.subgraphs)} subgraph(s), {operators} operators, "
                f"{'; '.join(ios)}>")

    def _repr_html_(self) -> str:
        parts = []
        for sg in self.subgraphs:
            rows = []
            for label, indices in (("input", sg.inputs), ("output", sg.outputs)):
                for i in indices:
                    t = sg.tensors[i]
                    rows.append((label, t.name, shape_text(t.shape_signature), t.dtype,
                                 t.quantization.describe() if t.quantization is not None else ""))
            parts.append(html_table(("", "name", "shape", "dtype", "quantization"), rows,
                                    caption=f"subgraph {sg.index} {sg.name!r}: {len(sg.operators)} operators, "
                                            f"{len(sg.tensors)} tensors"))
        signatures = [f"signature {s.key!r} (subgraph {s.subgraph_index}): inputs {list(s.inputs)} "
                      f"outputs {list(s.outputs)}" for s in self.signatures]
        ops = html_table(("operator", "count"), self.op_histogram().most_common(), caption="operators")
        if self.tflite_metadata is not None:
            signatures = self.tflite_metadata.lines() + signatures
        title = (f"model {self.source}: schema v{self.version}, {self.size_bytes / 1e6:.2f} MB, "
                 f"constants {self.weight_bytes() / 1e6:.2f} MB")
        return html_block(title, html_lines(signatures), *parts, ops)

    def op_histogram(self) -> Counter:
        return Counter(op.opcode for sg in self.subgraphs for op in sg.operators)

    def weight_bytes(self) -> int:
        # int4/int2 constants are unpacked to one int8 per value at load; count them as stored.
        per_byte = {"int4": 2, "uint4": 2, "int2": 4}
        return sum(
            -(-t.data.nbytes // per_byte.get(t.dtype, 1)) if t.sparsity is None else t.data.nbytes
            for sg in self.subgraphs for t in sg.tensors if t.data is not None
        )

    def weight_encodings(self) -> Counter:
        """How the model's constant weights are stored: encoding -> number of tensors. Covers
        quantized integer constants (int8/int4/int2/uint8/int16 per tensor, per channel or
        blockwise, symmetric or with zero points, and the int32/int64 biases) and float16
        constants; ``behind DEQUANTIZE`` marks weights a DEQUANTIZE operator widens."""
        counts: Counter = Counter()
        for sg in self.subgraphs:
            dequantized = {i for op in sg.operators if op.opcode == "DEQUANTIZE" for i in op.inputs if i is not None}
            tables = {i for t in sg.tensors if t.quantization is not None for i in t.quantization.block_tensors}
            for tensor in sg.tensors:
                if tensor.data is None or tensor.is_variable or tensor.index in tables:
                    continue
                q = tensor.quantization
                if q is not None:
                    if q.blockwise:
                        scale_type = sg.tensors[q.block_tensors[0]].dtype if q.block_tensors else "float32"
                        layout = f"blockwise (blocks of {q.block_size}, {scale_type} scales)"
                    elif q.per_channel:
                        layout = f"per-channel (axis {q.quantized_dimension})"
                    else:
                        layout = "per-tensor"
                    zero = "with zero points" if np.asarray(q.zero_points).any() else "symmetric"
                    encoding = f"{tensor.dtype} {layout}, {zero}"
                elif tensor.dtype == "float16":
                    encoding = "float16"
                else:
                    continue
                if tensor.sparsity is not None:
                    encoding += ", sparse"
                if tensor.index in dequantized:
                    encoding += ", behind DEQUANTIZE"
                counts[encoding] += 1
        return counts

    def summary(self) -> str:
        """A readable overview: I/O with shapes, dtypes and quantization; ops and counts."""
        lines = [
            f"model {self.source}: schema v{self.version}, {len(self.subgraphs)} subgraph(s), "
            f"{self.size_bytes / 1e6:.2f} MB, constants {self.weight_bytes() / 1e6:.2f} MB",
        ]
        if self.description:
            lines.append(f"description: {self.description}")
        if self.tflite_metadata is not None:
            lines.extend(self.tflite_metadata.lines())
        for sg in self.subgraphs:
            lines.append(
                f"subgraph {sg.index} {sg.name!r}: {len(sg.operators)} operators, "
                f"{len(sg.tensors)} tensors"
            )
            for label, indices in (("input", sg.inputs), ("output", sg.outputs)):
                for i in indices:
                    tensor = sg.tensors[i]
                    lines.append(f"  {label:6} {tensor.describe()}")
                    q = tensor.quantization
                    if q is not None and not q.per_channel:
                        scale, zp = float(q.scales[0]), int(q.zero_points[0])
                        if label == "input":
                            lines.append(
                                f"         feed q = round(x / {scale:.9g}) + {zp}"
                            )
                        else:
                            lines.append(f"         read x = (q - {zp}) * {scale:.9g}")
        for sig in self.signatures:
            lines.append(
                f"signature {sig.key!r} (subgraph {sig.subgraph_index}): "
                f"inputs {list(sig.inputs)} outputs {list(sig.outputs)}"
            )
        lines.append("operators:")
        for name, count in self.op_histogram().most_common():
            lines.append(f"  {name:32} {count}")
        quantized = sum(
            1
            for sg in self.subgraphs
            for t in sg.tensors
            if t.quantization is not None and t.data is None
        )
        if quantized:
            lines.append(f"quantized activations: {quantized} tensors")
        encodings = self.weight_encodings()
        if encodings:
            lines.append("weight encodings:")
            for encoding, count in sorted(encodings.items()):
                lines.append(f"  {encoding:56} {count}")
        return "\n".join(lines)
