"""New input shapes that the graph can follow: constants that hard-code the file's batch or
resolution rewritten, and the operators that cannot follow named before anything is traced.

A converter writes the batch it traced with into constants: a RESHAPE to ``[1, -1, 18]`` turns a
batch of 3 into one row of 3x as many boxes (LiteRT resized to batch 3 does exactly that), a
STRIDED_SLICE ending at 1 keeps only the first image. When ``input_shapes`` makes the batch dynamic
(or another number), :func:`follow_new_shapes` walks the main subgraph from the changed inputs and

- gives a RESHAPE whose shape starts with the old batch the shape ``[-1, *file's output shape[1:]]``
  (its own new constant: shape constants are shared between operators of different sizes);
- lets STRIDED_SLICE and SLICE take the whole batch where they took all of the old one;
- names every operator that mixes the batch with other dimensions (a RESHAPE that folds it, a
  CONCATENATION / PACK / GATHER / SPLIT along axis 0, a TRANSPOSE that moves it, a reduction over it).

For a new height and width (NHWC), spatial sizes are followed as ratios of the file's: a RESIZE
with a constant size gets the size scaled by the same ratio when that is a whole number, and an
operator that hard-codes a spatial size it cannot scale (a RESHAPE to a fixed shape, a RESIZE whose
scaled size is fractional) is an error naming it and the shapes.

Numpy only; the IR's tensor and operator indices are kept (new shape constants are appended).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType

import numpy as np

from .. import ir
from ..errors import TfliteInverterError
from .edit import with_subgraphs

_AXIS_OPS = {"CONCATENATION", "PACK", "UNPACK", "GATHER", "SPLIT", "SPLIT_V"}
_REDUCTIONS = {"MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "REDUCE_ANY", "REDUCE_ALL", "ARG_MAX", "ARG_MIN"}
_RESIZES = {"RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"}


@dataclass
class ShapeRewrite:
    """What :func:`follow_new_shapes` did: the model, the operators it changed, those that cannot follow."""

    model: ir.Model
    changed: list[str] = field(default_factory=list)  # "operator 238 RESHAPE: shape [1,-1,18] -> [-1,864,18]"
    problems: list[str] = field(default_factory=list)  # batch mixed with other dimensions: results will be wrong


@dataclass
class _State:
    batched: bool = False  # dimension 0 is the (changed) batch
    ratio: tuple[Fraction, Fraction] | None = None  # NHWC height/width as a ratio of the file's


def _fmt(values: Sequence[int]) -> str:
    return "[" + ",".join(str(int(v)) for v in values) + "]"


def follow_new_shapes(model: ir.Model, new_shapes: Mapping[int, Sequence[int | None]]) -> ShapeRewrite:
    """Rewrite the main subgraph so that inputs of ``new_shapes`` (tensor index -> shape, ``None``
    for a dynamic dimension) flow through. Raises :class:`TfliteInverterError` for a resolution the
    graph hard-codes; returns the problems of a batch it cannot follow (``invert`` warns or, with
    ``strict``, raises)."""
    sg = model.main
    result = ShapeRewrite(model)
    states: dict[int, _State] = {}
    for index, shape in new_shapes.items():
        tensor = sg.tensors[index]
        old = tensor.shape
        if len(old) != len(shape) or not old:
            continue
        state = _State()
        state.batched = shape[0] != old[0]
        if len(old) == 4 and all(d is not None for d in shape[1:3]) and tuple(shape[1:3]) != tuple(old[1:3]) \
                and old[1] > 0 and old[2] > 0:
            state.ratio = (Fraction(shape[1], old[1]), Fraction(shape[2], old[2]))
        if state.batched or state.ratio:
            states[index] = state
    if not states:
        return result
    tensors = list(sg.tensors)
    operators = list(sg.operators)
    for position, op in enumerate(operators):
        ins = [states.get(i) for i in op.inputs if i is not None]
        ins = [s for s in ins if s is not None]
        if not ins:
            continue
        batched = any(s.batched for s in ins)
        ratio = next((s.ratio for s in ins if s.ratio is not None), None)
        first = sg.tensors[op.inputs[0]] if op.inputs and op.inputs[0] is not None else None
        first_state = states.get(op.inputs[0]) if op.inputs and op.inputs[0] is not None else None
        where = f"operator {op.index} {op.opcode}"
        out_state = _State(batched=batched, ratio=ratio)
        new_op = op
        if op.opcode == "RESHAPE" and first_state is not None:
            new_op, out_state = _reshape(model, tensors, op, first, first_state, where, result)
        elif op.opcode in ("STRIDED_SLICE", "SLICE") and first_state is not None and first_state.batched:
            new_op = _slice(tensors, op, first, where, result)
        elif op.opcode in _RESIZES and first_state is not None and first_state.ratio is not None:
            new_op = _resize(model, tensors, op, first_state.ratio, where, result)
        elif batched:
            _check_batch_axis(sg, op, first, where, result)
        if ratio is not None and op.opcode not in _RESIZES and op.opcode != "RESHAPE":
            out_state.ratio = ratio if all(len(sg.tensors[o].shape) == 4 for o in op.outputs if o is not None) else None
        operators[position] = new_op
        for out in op.outputs:
            if out is not None and (out_state.batched or out_state.ratio):
                states[out] = _State(out_state.batched, out_state.ratio)
    new_sg = dataclasses.replace(sg, tensors=tuple(tensors), operators=tuple(operators))
    result.model = with_subgraphs(model, {sg.index: new_sg})
    return result


def _constant(tensors: list[ir.Tensor], index: int | None) -> np.ndarray | None:
    if index is None or index >= len(tensors) or tensors[index].data is None:
        return None
    return np.asarray(tensors[index].value).reshape(-1)


def _new_constant(tensors: list[ir.Tensor], like: ir.Tensor | None, values: np.ndarray, name: str) -> int:
    """Append an int32 constant (its own tensor: the file's may be shared by other operators)."""
    index = len(tensors)
    data = np.asarray(values, np.int32 if like is None or like.dtype != "int64" else np.int64)
    tensors.append(ir.Tensor(index=index, name=name, shape=tuple(data.shape), shape_signature=tuple(data.shape),
                             dtype=str(data.dtype), buffer=like.buffer if like is not None else 0, data=data))
    return index


def _with_input(op: ir.Operator, position: int, index: int) -> ir.Operator:
    inputs = list(op.inputs) + [None] * (position + 1 - len(op.inputs))
    inputs[position] = index
    return dataclasses.replace(op, inputs=tuple(inputs))


def _reshape(model, tensors, op, source, state, where, result):
    out = tensors[op.outputs[0]]
    shape_index = op.inputs[1] if len(op.inputs) > 1 else None
    shape = _constant(tensors, shape_index)
    from_options = shape is None or shape.size == 0
    if from_options:
        shape = np.asarray(op.options.get("new_shape") or out.shape, np.int64)
    if shape is None or (shape_index is not None and tensors[shape_index].data is None):
        return op, _State(state.batched, None)  # a computed shape follows the input
    out_shape = list(out.shape)
    if state.ratio is not None:
        if -1 in shape.tolist():
            if state.batched and shape.size and int(shape[0]) == source.shape[0] and int(shape[0]) != -1:
                result.problems.append(f"{where}: reshapes to {_fmt(shape)}, which keeps the file's batch of "
                                       f"{int(shape[0])} while the resolution changes too")
                return op, _State(False, None)
            return op, _State(state.batched, None)  # -1 absorbs the new resolution
        raise TfliteInverterError(
            f"{model.source}: {where} reshapes {tuple(source.shape)} to the fixed shape {_fmt(shape)}: at the new "
            f"resolution its input has {float(state.ratio[0]):.4g}x the height and {float(state.ratio[1]):.4g}x the width "
            "of the file's, which that shape cannot hold; invert at the file's resolution or cut the model before it")
    old_batch = source.shape[0]
    if shape.size and int(shape[0]) == old_batch and out_shape and out_shape[0] == old_batch \
            and all(d >= 0 for d in out_shape[1:]):
        new_shape = np.asarray([-1, *out_shape[1:]])
        name = f"{out.name}/batch_following_shape"
        new_index = _new_constant(tensors, tensors[shape_index] if not from_options else None, new_shape, name)
        new_op = _with_input(op, 1, new_index)
        if from_options:
            new_op = dataclasses.replace(new_op, options=MappingProxyType({**op.options, "new_shape": tuple(new_shape.tolist())}))
        result.changed.append(f"{where}: shape {_fmt(shape)} -> {_fmt(new_shape)} (the batch follows the input)")
        return new_op, _State(True, None)
    if shape.size and int(shape[0]) == -1 and out_shape and out_shape[0] == old_batch:
        return op, _State(True, None)  # already follows the batch
    result.problems.append(f"{where}: reshapes {tuple(source.shape)} to {_fmt(shape)}, folding the batch into "
                           f"other dimensions {tuple(out_shape)}: with another batch its output mixes the images")
    return op, _State(False, None)


def _slice(tensors, op, source, where, result):
    old_batch = source.shape[0]
    begin, end = _constant(tensors, op.inputs[1]), _constant(tensors, op.inputs[2])
    if begin is None or end is None or not begin.size:
        return op
    if op.opcode == "SLICE":
        if int(begin[0]) == 0 and int(end[0]) in (old_batch, -1):
            if int(end[0]) == -1:
                return op
            size = end.copy()
            size[0] = -1
            new_index = _new_constant(tensors, tensors[op.inputs[2]], size, f"{tensors[op.outputs[0]].name}/batch_following_size")
            result.changed.append(f"{where}: size {_fmt(end)} -> {_fmt(size)} (the whole batch)")
            return _with_input(op, 2, new_index)
        result.problems.append(f"{where}: takes batch rows {int(begin[0])}..{int(begin[0]) + int(end[0])} of "
                               f"{old_batch}: with another batch it still takes those rows only")
        return op
    o = op.options
    strides = _constant(tensors, op.inputs[3]) if len(op.inputs) > 3 else None
    if o.get("ellipsis_mask") or o.get("new_axis_mask") or o.get("offset"):
        return op
    whole = (o.get("begin_mask", 0) & 1 or int(begin[0]) == 0) and (o.get("end_mask", 0) & 1 or int(end[0]) >= old_batch)
    if whole and (strides is None or int(strides[0]) == 1) and not o.get("shrink_axis_mask", 0) & 1:
        if o.get("begin_mask", 0) & 1 and o.get("end_mask", 0) & 1:
            return op
        result.changed.append(f"{where}: dimension 0 taken whole (begin/end masks), not rows 0..{old_batch}")
        return dataclasses.replace(op, options=MappingProxyType({**o, "begin_mask": o.get("begin_mask", 0) | 1,
                                                                 "end_mask": o.get("end_mask", 0) | 1}))
    result.problems.append(f"{where}: slices dimension 0 (begin {int(begin[0])}, end {int(end[0])}) of a batch of "
                           f"{old_batch}: with another batch it still takes those rows only")
    return op


def _resize(model, tensors, op, ratio, where, result):
    size = _constant(tensors, op.inputs[1])
    if size is None:
        return op
    scaled = [Fraction(int(size[0])) * ratio[0], Fraction(int(size[1])) * ratio[1]]
    if any(s.denominator != 1 for s in scaled):
        raise TfliteInverterError(
            f"{model.source}: {where} resizes to the file's fixed size {_fmt(size)}; at the new resolution that would be "
            f"{float(scaled[0]):.4g}x{float(scaled[1]):.4g}, not whole numbers: choose a height and width the model's "
            "strides divide (a multiple of the file's by the same factor)")
    new_size = np.asarray([int(s) for s in scaled])
    new_index = _new_constant(tensors, tensors[op.inputs[1]], new_size, f"{tensors[op.outputs[0]].name}/scaled_size")
    result.changed.append(f"{where}: size {_fmt(size)} -> {_fmt(new_size)} (scaled with the input resolution)")
    return _with_input(op, 1, new_index)


def _check_batch_axis(sg: ir.Subgraph, op: ir.Operator, first: ir.Tensor | None, where: str, result: ShapeRewrite) -> None:
    """Name an operator that works along the batch axis (its result mixes the images)."""
    o = op.options
    rank = len(first.shape) if first is not None else 0
    if op.opcode in _AXIS_OPS:
        axis = o.get("axis", 0)
        if op.opcode in ("SPLIT", "SPLIT_V"):
            axis_tensor = op.inputs[0] if op.opcode == "SPLIT" else op.inputs[2]
            value = sg.tensors[axis_tensor].data if axis_tensor is not None else None
            axis = int(np.asarray(value).reshape(-1)[0]) if value is not None else None
            rank = len(sg.tensors[op.inputs[1 if op.opcode == "SPLIT" else 0]].shape)
        if axis is not None and rank and axis % rank == 0:
            result.problems.append(f"{where}: works along axis 0, the batch")
    elif op.opcode == "TRANSPOSE":
        perm = sg.tensors[op.inputs[1]].data if op.inputs[1] is not None else None
        if perm is not None and int(np.asarray(perm).reshape(-1)[0]) != 0:
            result.problems.append(f"{where}: moves the batch axis (perm {_fmt(np.asarray(perm).reshape(-1))})")
    elif op.opcode in _REDUCTIONS:
        axes = sg.tensors[op.inputs[1]].data if len(op.inputs) > 1 and op.inputs[1] is not None else None
        if axes is not None and rank and any(int(a) % rank == 0 for a in np.asarray(axes).reshape(-1)):
            result.problems.append(f"{where}: reduces over axis 0, the batch")
