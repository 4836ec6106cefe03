"""The validation pass: check a model read from an untrusted file before anything is built.

``validate(model)`` returns the model unchanged, or raises one :class:`InvalidModelError` naming the
subgraph, the operator (index and opcode) and the tensor at fault. It checks what the reader cannot
(the reader checks the flatbuffer: offsets, indices, buffer sizes):

- the model has a main subgraph; signatures map their names to that subgraph's inputs and outputs,
  and the names stay distinct function arguments after sanitising;
- every tensor: a bounded size (static shapes of at most :data:`MAX_ELEMENTS` values; a sparse
  constant's dense size, or a variable's initial zeros, at most :data:`DENSE_BYTES_PER_FILE_BYTE`
  times the file), finite and
  positive quantization scales with consistent lengths and axis, sparsity metadata that densifies;
- every operator: its declared :class:`~.signatures.OpSignature` (inputs, outputs, ranks, dtypes,
  options, shape relations), positive strides, dilations and filter sizes, subgraph references in
  range, no RESOURCE / VARIANT output from an op that cannot make one;
- control flow and composites: no recursion through subgraph references.

No TensorFlow is imported.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from .. import ir
from ..errors import InvalidModelError
from ..names import python_identifier, sanitize_name
from .signatures import OpSignature, OpView, signature_of

# A static tensor shape may hold at most this many values (TFLite sizes tensors with 32-bit ints).
MAX_ELEMENTS = 1 << 28
# A sparse constant is densified at load, a variable tensor without data starts as zeros: either may
# take at most this many times the file (plus :data:`DENSE_BYTES_FLOOR`), so that a small file cannot
# make the library allocate gigabytes.
DENSE_BYTES_PER_FILE_BYTE = 64
DENSE_BYTES_FLOOR = 1 << 24
# Subgraph references nested deeper than this are refused (each level is a Python call when traced).
MAX_SUBGRAPH_DEPTH = 64

_POSITIVE_OPTIONS = ("stride_h", "stride_w", "stride_d", "dilation_h_factor", "dilation_w_factor",
                     "dilation_d_factor", "filter_height", "filter_width", "filter_depth")
_RESOURCE_DTYPES = ("resource", "variant")

def validate(model: ir.Model) -> ir.Model:
    """``model`` unchanged if it can be built safely; else one :class:`InvalidModelError`."""
    problem = next(_problems(model), None)
    if problem is not None:
        raise InvalidModelError(f"{model.source}: {problem}")
    return model


def _problems(model: ir.Model) -> Iterator[str]:
    if not model.subgraphs:
        yield "the model has no subgraphs (nothing to run)"
        return
    yield from _signature_problems(model)
    for sg in model.subgraphs:
        for tensor in sg.tensors:
            reason = _tensor_problem(model, tensor)
            if reason is not None:
                yield f"subgraph {sg.index} tensor {tensor.index} {tensor.name!r}: {reason}"
        for op in sg.operators:
            reason = _operator_problem(model, sg, op)
            if reason is not None:
                yield f"subgraph {sg.index} operator {op.index} {op.opcode} (output {_output_name(sg, op)!r}): {reason}"
    yield from _recursion_problems(model)


def _output_name(sg: ir.Subgraph, op: ir.Operator) -> str:
    return sg.tensors[op.outputs[0]].name if op.outputs and op.outputs[0] is not None else "?"


# -- names and signatures ----------------------------------------------------------------------------------
def _argument_name(name: str) -> str:
    """The function argument an input name becomes in the inverted model."""
    return python_identifier(sanitize_name(name))


def _signature_problems(model: ir.Model) -> Iterator[str]:
    main = model.main
    groups = [(f"signature {sig.key!r}", sig.subgraph_index, list(sig.inputs), list(sig.inputs.values()),
               list(sig.outputs.values())) for sig in model.signatures]
    if not groups:
        groups = [("subgraph 0", 0, [main.tensors[i].name for i in main.inputs], list(main.inputs), list(main.outputs))]
    for label, index, names, inputs, outputs in groups:
        sg = model.subgraphs[index]
        for tensor in inputs:
            if tensor not in sg.inputs:
                yield f"{label}: input tensor {tensor} {sg.tensors[tensor].name!r} is not an input of subgraph {index}"
        for tensor in outputs:
            if tensor not in sg.outputs:
                yield f"{label}: output tensor {tensor} {sg.tensors[tensor].name!r} is not an output of subgraph {index}"
        seen: dict[str, str] = {}
        for name in names:
            argument = _argument_name(name)
            if argument in seen:
                yield (f"{label}: input names {seen[argument]!r} and {name!r} both become the argument "
                       f"{argument!r} after sanitising")
            seen.setdefault(argument, name)


# -- tensors ---------------------------------------------------------------------------------------------------
def _tensor_problem(model: ir.Model, tensor: ir.Tensor) -> str | None:
    elements = math.prod(max(d, 1) for d in tensor.shape_signature) if tensor.shape_signature else 1
    elements = max(elements, math.prod(tensor.shape) if tensor.shape else 1)
    if elements > MAX_ELEMENTS:
        return f"shape {list(tensor.shape_signature)} holds {elements} values, more than the limit of {MAX_ELEMENTS}"
    if tensor.is_variable and tensor.data is None and tensor.dtype in ir.NUMPY_DTYPES:
        zeros = elements * ir.NUMPY_DTYPES[tensor.dtype].itemsize
        if zeros > _allocation_limit(model):
            return (f"variable tensor of shape {list(tensor.shape_signature)} starts as {zeros} bytes of zeros, more "
                    f"than {DENSE_BYTES_PER_FILE_BYTE} times the file ({model.size_bytes} bytes)")
    if tensor.quantization is not None:
        reason = _quantization_problem(tensor)
        if reason is not None:
            return reason
    if tensor.sparsity is not None and tensor.data is not None:
        return _sparsity_problem(model, tensor)
    return None


def _allocation_limit(model: ir.Model) -> int:
    """Bytes the library may allocate for one tensor made from the file's data (densified, zeros)."""
    return DENSE_BYTES_PER_FILE_BYTE * max(model.size_bytes, 1) + DENSE_BYTES_FLOOR


def _quantization_problem(tensor: ir.Tensor) -> str | None:
    q = tensor.quantization
    scales = np.asarray(q.scales, np.float64)
    if not np.all(np.isfinite(scales)):
        return f"quantization scale {_first_bad(scales, ~np.isfinite(scales))} is not finite"
    if tensor.data is None and np.any(scales <= 0):
        return f"quantization scale {_first_bad(scales, scales <= 0)} of an activation is not positive"
    if np.any(scales < 0):
        return f"quantization scale {_first_bad(scales, scales < 0)} is negative"
    if q.zero_points.size != scales.size:
        return f"{scales.size} quantization scales but {q.zero_points.size} zero points"
    for label, values in (("min", q.min), ("max", q.max)):
        if values is not None and values.size not in (0, scales.size):
            return f"{values.size} quantization {label} values for {scales.size} scales"
    if scales.size > 1 and not getattr(q, "blockwise", False):  # blockwise: one scale per block (checked by the reader)
        rank = len(tensor.shape)
        if not 0 <= q.quantized_dimension < max(rank, 1) or rank == 0:
            return f"quantized_dimension {q.quantized_dimension} is out of range for shape {list(tensor.shape)}"
        if tensor.shape[q.quantized_dimension] != scales.size:
            return (f"{scales.size} quantization scales for dimension {q.quantized_dimension} of shape "
                    f"{list(tensor.shape)}")
    return None


def _first_bad(values: np.ndarray, mask: np.ndarray) -> str:
    return f"{float(values[np.argmax(mask)]):g}"


def _sparsity_problem(model: ir.Model, tensor: ir.Tensor) -> str | None:
    sparsity, shape = tensor.sparsity, tensor.shape
    rank = len(shape)
    if tensor.dtype not in ir.NUMPY_DTYPES:
        return f"sparse constant of type {tensor.dtype}: only numeric tensors can be densified"
    if rank == 0:
        return "a scalar cannot be sparse"
    dense_bytes = math.prod(shape) * ir.NUMPY_DTYPES[tensor.dtype].itemsize
    if dense_bytes > _allocation_limit(model):
        return (f"sparse constant of shape {list(shape)} densifies to {dense_bytes} bytes, more than "
                f"{DENSE_BYTES_PER_FILE_BYTE} times the file ({model.size_bytes} bytes)")
    order = sparsity.traversal_order or tuple(range(rank))
    blocks = len(sparsity.block_map)
    if sorted(order) != list(range(rank + blocks)):
        return f"sparsity traversal_order {list(order)} is not a permutation of {rank + blocks} dimensions"
    if any(not 0 <= d < rank for d in sparsity.block_map) or len(set(sparsity.block_map)) != blocks:
        return f"sparsity block_map {list(sparsity.block_map)} does not name distinct dimensions of rank {rank}"
    if len(sparsity.dim_metadata) != len(order):
        return f"{len(sparsity.dim_metadata)} sparsity dim_metadata for {len(order)} traversal levels"
    block_size = {}
    for level, dim in enumerate(order):
        if dim >= rank:
            block_size[sparsity.block_map[dim - rank]] = sparsity.dim_metadata[level].dense_size
    expected_values = 1
    for level, dim in enumerate(order):
        meta = sparsity.dim_metadata[level]
        if dim >= rank:
            expected = meta.dense_size
            if expected < 1:
                return f"sparsity block size {expected} at level {level} is below 1"
        else:
            block = block_size.get(dim, 1)
            if block < 1 or shape[dim] % block:
                return f"sparsity block size {block} does not divide dimension {dim} ({shape[dim]})"
            expected = shape[dim] // block
        if meta.format == "DENSE":
            if meta.dense_size != expected:
                return f"sparsity level {level} is dense of size {meta.dense_size}, the shape needs {expected}"
            expected_values *= expected
        else:
            segments, indices = meta.array_segments, meta.array_indices
            if segments is None or indices is None:
                return f"sparsity level {level} is SPARSE_CSR without array_segments and array_indices"
            if segments.size != expected_values + 1:
                return f"sparsity level {level} has {segments.size} array_segments, needs {expected_values + 1}"
            if segments.size and (segments[0] != 0 or np.any(np.diff(segments) < 0) or segments[-1] > indices.size):
                return f"sparsity level {level} array_segments are not increasing within the {indices.size} indices"
            if indices.size and (indices.min() < 0 or indices.max() >= expected):
                return f"sparsity level {level} array_indices are out of range 0..{expected - 1}"
            expected_values = int(segments[-1]) if segments.size else 0
    values = np.asarray(tensor.data).size
    if expected_values > values:
        return f"sparsity metadata addresses {expected_values} values, the buffer holds {values}"
    return None


# -- operators ---------------------------------------------------------------------------------------------------
def _operator_problem(model: ir.Model, sg: ir.Subgraph, op: ir.Operator) -> str | None:
    signature = signature_of(op.opcode)
    view = OpView(model, sg, op)
    if signature is not None:
        reason = _signature_problem(view, signature)
        if reason is not None:
            return reason
    for key in _POSITIVE_OPTIONS:
        value = op.options.get(key)
        if isinstance(value, int) and value < 1:
            return f"option {key} is {value}, below 1"
    for key, index in _subgraph_references(op):
        if not 0 <= index < len(model.subgraphs):
            return f"option {key} names subgraph {index}, the model has {len(model.subgraphs)}"
    may_make_resources = (signature is not None and signature.resource_outputs) or any(_subgraph_references(op))
    for position, index in enumerate(op.outputs):
        if index is None:
            continue
        tensor = sg.tensors[index]
        if tensor.dtype in _RESOURCE_DTYPES and not may_make_resources:
            return f"output {position} {tensor.name!r} is typed {tensor.dtype.upper()}, which {op.opcode} cannot produce"
    if signature is not None:
        for check in signature.checks:
            reason = check(view)
            if reason is not None:
                return reason
    return None


def _signature_problem(view: OpView, signature: OpSignature) -> str | None:
    op = view.op
    low, high = signature.inputs
    if len(op.inputs) < low or (high is not None and len(op.inputs) > high):
        return f"has {len(op.inputs)} inputs, {op.opcode} takes {_count_text(low, high)}"
    for position in range(min(signature.required_inputs, len(op.inputs))):
        if op.inputs[position] is None:
            return f"input {position} is missing (-1), {op.opcode} needs it"
    low, high = signature.outputs
    if len(op.outputs) < low or (high is not None and len(op.outputs) > high):
        return f"has {len(op.outputs)} outputs, {op.opcode} gives {_count_text(low, high)}"
    for position in range(low):
        if op.outputs[position] is None:
            return f"output {position} is missing (-1)"
    missing = [key for key in signature.options if key not in op.options]
    if missing:
        return f"options {missing} are missing (the operator has {'no options' if not op.options else 'other options'})"
    for position, (min_rank, max_rank) in signature.ranks.items():
        tensor = view.input(position)
        if tensor is None or not tensor.has_rank:
            continue
        rank = len(tensor.shape_signature)
        if not min_rank <= rank <= max_rank:
            allowed = str(min_rank) if min_rank == max_rank else f"{min_rank} to {max_rank}"
            return f"input {position} {tensor.name!r} has rank {rank} (shape {list(tensor.shape_signature)}), {op.opcode} takes {allowed}"
    for position, allowed in signature.dtypes.items():
        tensor = view.input(position)
        if tensor is not None and tensor.dtype not in allowed:
            return f"input {position} {tensor.name!r} is {tensor.dtype}, {op.opcode} takes {sorted(allowed)}"
    for position, allowed in signature.output_dtypes.items():
        tensor = view.output(position)
        if tensor is not None and tensor.dtype not in allowed:
            return f"output {position} {tensor.name!r} is {tensor.dtype}, {op.opcode} gives {sorted(allowed)}"
    return None


def _count_text(low: int, high: int | None) -> str:
    if high is None:
        return f"at least {low}"
    return str(low) if low == high else f"{low} to {high}"


def _subgraph_references(op: ir.Operator) -> list[tuple[str, int]]:
    found = []
    for key, value in op.options.items():
        if key == "subgraph" or key.endswith("subgraph_index"):
            if isinstance(value, int):
                found.append((key, value))
        elif key.endswith("subgraph_indices") and isinstance(value, tuple):
            found.extend((key, v) for v in value if isinstance(v, int))
    return found


def _recursion_problems(model: ir.Model) -> Iterator[str]:
    """A subgraph that reaches itself through control-flow or composite references would be traced
    forever; a chain deeper than :data:`MAX_SUBGRAPH_DEPTH` would exhaust the Python stack."""
    calls: dict[int, list[tuple[int, ir.Operator]]] = {sg.index: [] for sg in model.subgraphs}
    for sg in model.subgraphs:
        for op in sg.operators:
            for _, index in _subgraph_references(op):
                calls[sg.index].append((index, op))
    state: dict[int, int] = {}  # 1 on the stack, 2 done
    depth: dict[int, int] = {}
    for root in calls:
        if root in state:
            continue
        # Iterative depth-first search: a fuzzed file may chain thousands of subgraphs.
        path, iterators = [root], [iter(calls[root])]
        state[root] = 1
        while path:
            node = path[-1]
            step = next(iterators[-1], None)
            if step is None:
                state[node] = 2
                depth[node] = max((depth[callee] + 1 for callee, _ in calls[node]), default=0)
                path.pop()
                iterators.pop()
                continue
            callee, op = step
            if state.get(callee) == 1:
                cycle = " -> ".join(str(i) for i in path[path.index(callee):] + [callee])
                yield (f"subgraph {node} operator {op.index} {op.opcode} (output "
                       f"{_output_name(model.subgraphs[node], op)!r}): calls subgraph {callee} recursively "
                       f"(subgraphs {cycle})")
                return
            if state.get(callee) is None:
                state[callee] = 1
                path.append(callee)
                iterators.append(iter(calls[callee]))
        if depth[root] > MAX_SUBGRAPH_DEPTH:
            yield f"subgraph {root}: control flow nests {depth[root]} subgraphs deep, more than {MAX_SUBGRAPH_DEPTH}"
            return
