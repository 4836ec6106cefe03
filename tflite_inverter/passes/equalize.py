"""Cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization Through Weight
Equalization and Bias Correction", section 4.1).

Two consecutive layers ``y = f(W1 x + b1)``, ``z = W2 y + b2`` compute the same function after
rescaling channel ``i`` between them by ``s_i > 0``::

    W1[i] / s_i,  b1[i] / s_i,  W2[:, i] * s_i

because ``f`` is positively homogeneous per channel: ``relu(x / s) = relu(x) / s``, and the
identity (activation NONE) too. ReLU6 is not (``min(x / s, 6) != min(x, 6) / s``); DFQ replaces it
by ReLU, which changes the function. Here the bound moves with the channel instead:
``min(relu(x / s), 6 / s) = relu6(x) / s`` exactly, so a rescaled RELU6 layer gets a *per-channel*
clip vector ``6 / s`` (:attr:`ir.Operator.activation_clip`; the builder applies
``minimum(relu(x), clip)`` in place of the fused activation).

With ``r1_i`` the largest magnitude of output channel ``i`` of ``W1`` and ``r2_i`` that of input
channel ``i`` of ``W2``, ``s_i = sqrt(r1_i / r2_i)`` makes both ranges ``sqrt(r1_i r2_i)``: channels
of one tensor then span similar ranges, so one quantization scale per weight tensor suffices.
A layer in two pairs (a depthwise convolution between an expansion and a projection) is rescaled
from both sides, so the pairs are swept repeatedly until the scales settle.

Channel-wise operators between the pair are allowed, as they commute with a positive per-channel
scale: zero PAD, AVERAGE_POOL_2D and MAX_POOL_2D without activation, MEAN over other axes than the
channel axis (the global pooling before a classifier), and RESHAPE keeping the last axis.

A channel whose consumer weights are all zero is cleared in the producer (weights and bias): its
value is never used, and its range, which the pair cannot balance, would set the tensor's scale.

:func:`tflite_inverter.quant.bias_correction.correct_biases` adds the empirical bias correction of
DFQ section 4.2 for per-tensor int8 weights, from calibration data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

import dataclasses

from .. import ir
from ..quant.grids import dequantize_array
from .densify import densify_constants
from .edit import with_subgraphs, with_tensors
from .fold import fold_constants

# producer -> axis of its output channels in the TFLite filter layout
_PRODUCERS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3}
# consumer -> axis of its input channels in the TFLite filter layout
_CONSUMERS = {"CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 1}
# fused activation -> its upper bound (positively homogeneous up to that bound)
_BOUNDS = {"NONE": None, "RELU": np.inf, "RELU6": 6.0}
_WEIGHT_DTYPES = ("float32", "float16", "int8", "uint8")
_BIAS_DTYPES = ("float32", "float16", "int32", "int64")
_POOLS = ("AVERAGE_POOL_2D", "MAX_POOL_2D")

ROUNDS = 50  # MobileNet v2 settles in 22 sweeps
TOLERANCE = 1e-3  # stop when every scale of a sweep is within exp(±TOLERANCE) of 1


@dataclass(frozen=True)
class Pair:
    """Producer ``first`` whose output channels feed consumer ``second`` (input channels)."""

    first: ir.Operator
    second: ir.Operator

    @property
    def first_weights(self) -> int:
        return self.first.inputs[1]

    @property
    def first_bias(self) -> int | None:
        return self.first.inputs[2] if len(self.first.inputs) > 2 else None

    @property
    def second_weights(self) -> int:
        return self.second.inputs[1]


def equalize(model: ir.Model) -> ir.Model:
    """Equalize every eligible layer pair of the main subgraph.

    Rescaled weights and biases get their new real values in :attr:`ir.Tensor.real` (float32; the
    file's arrays are never written), and each rescaled producer whose fused activation has a finite
    bound (RELU6) gets :attr:`ir.Operator.activation_clip`, the per-output-channel bound replacing it.
    Run after constant folding.
    """
    sg = model.main
    constants = {t.index: t.data for t in sg.tensors if t.data is not None and not t.is_variable}
    pairs = find_pairs(sg, constants, set())
    if not pairs:
        return model
    values = _FloatConstants(sg, constants)
    scales = {pair.first.index: np.ones(_channels(values, pair), np.float64) for pair in pairs}
    for _ in range(ROUNDS):
        largest = 0.0
        for pair in pairs:
            step = _equalize_pair(values, pair)
            scales[pair.first.index] *= step
            largest = max(largest, float(np.abs(np.log(step)).max()))
        if largest < TOLERANCE:
            break
    tensors = {index: dataclasses.replace(sg.tensors[index], real=value) for index, value in values.rescaled().items()}
    clips = _clips(sg, pairs, scales)
    operators = tuple(dataclasses.replace(op, activation_clip=clips[op.index]) if op.index in clips else op
                      for op in sg.operators)
    return with_subgraphs(model, {sg.index: dataclasses.replace(with_tensors(sg, tensors), operators=operators)})


def count_pairs(model: ir.Model) -> int:
    """How many layer pairs of the main subgraph :func:`equalize` rescales (for reports)."""
    sg = fold_constants(densify_constants(model)).main
    return len(find_pairs(sg, {t.index: t.data for t in sg.tensors if t.data is not None and not t.is_variable}, set()))


# -- finding pairs -----------------------------------------------------------------------------------
def find_pairs(sg: ir.Subgraph, constants: Mapping[int, np.ndarray], folded_ops: set[int]) -> list[Pair]:
    """Producer/consumer pairs that can be rescaled exactly, in graph order."""
    live = [op for op in sg.operators if op.index not in folded_ops]
    consumers: dict[int, list[ir.Operator]] = {}
    uses: dict[int, int] = {}
    for op in sg.operators:
        for index in op.inputs:
            if index is not None:
                uses[index] = uses.get(index, 0) + 1
    for op in live:
        for index in op.inputs:
            if index is not None:
                consumers.setdefault(index, []).append(op)
    pairs = []
    for op in live:
        if not _is_producer(sg, op, constants, uses):
            continue
        second = _single_consumer_through_channelwise(sg, op.outputs[0], consumers, constants)
        if second is not None and _is_consumer(sg, second, constants, uses, _channel_count(sg, op, constants)):
            pairs.append(Pair(op, second))
    return pairs


def _private_constant(sg: ir.Subgraph, index: int | None, constants: Mapping[int, np.ndarray],
                      uses: Mapping[int, int], dtypes: tuple[str, ...]) -> bool:
    """A constant only this operator reads, not an output, of a type equalization can rewrite."""
    if index is None or index not in constants or index in sg.outputs or uses.get(index, 0) != 1:
        return False
    tensor = sg.tensors[index]
    if tensor.is_variable:
        return False
    if np.asarray(constants[index]).dtype.kind == "f":
        return True
    return tensor.dtype in dtypes and tensor.quantization is not None


def _is_hybrid(sg: ir.Subgraph, op: ir.Operator, constants: Mapping[int, np.ndarray]) -> bool:
    """Float input, integer weights: a dynamic-range kernel, left alone."""
    data, weights = sg.tensors[op.inputs[0]], op.inputs[1]
    return data.dtype in ("float32", "float16") and np.asarray(constants[weights]).dtype.kind in "iu"


def _is_producer(sg: ir.Subgraph, op: ir.Operator, constants: Mapping[int, np.ndarray], uses: Mapping[int, int]) -> bool:
    if op.opcode not in _PRODUCERS or len(op.inputs) < 2 or op.inputs[0] is None or len(op.outputs) != 1:
        return False
    if op.options.get("fused_activation_function", "NONE") not in _BOUNDS:
        return False
    weights = op.inputs[1]
    bias = op.inputs[2] if len(op.inputs) > 2 else None
    if not _private_constant(sg, weights, constants, uses, _WEIGHT_DTYPES) or np.ndim(constants[weights]) != 4:
        return False
    if bias is not None and not _private_constant(sg, bias, constants, uses, _BIAS_DTYPES):
        return False
    output = sg.tensors[op.outputs[0]]
    return not _is_hybrid(sg, op, constants) and output.has_rank and bool(output.shape) \
        and output.shape[-1] == _channel_count(sg, op, constants)


def _channel_count(sg: ir.Subgraph, op: ir.Operator, constants: Mapping[int, np.ndarray]) -> int:
    return int(np.shape(constants[op.inputs[1]])[_PRODUCERS[op.opcode]])


def _single_consumer_through_channelwise(sg: ir.Subgraph, index: int, consumers: Mapping[int, list[ir.Operator]],
                                         constants: Mapping[int, np.ndarray]) -> ir.Operator | None:
    """The one operator reading ``index`` at input 0, past channel-wise operators; None if the
    value branches, is an output, or reaches anything else."""
    while True:
        readers = consumers.get(index, [])
        if index in sg.outputs or len(readers) != 1:
            return None
        (reader,) = readers
        if reader.inputs[0] != index or index in reader.inputs[1:]:
            return None
        if not _is_channelwise(sg, reader, constants):
            return reader
        index = reader.outputs[0]


def _is_channelwise(sg: ir.Subgraph, op: ir.Operator, constants: Mapping[int, np.ndarray]) -> bool:
    """An operator that commutes with a positive scale per channel (last axis) and keeps the
    channel axis last."""
    if len(op.outputs) != 1:
        return False
    if op.opcode in _POOLS:
        return op.options.get("fused_activation_function", "NONE") == "NONE"
    if op.opcode in ("PAD", "PADV2"):
        value = op.inputs[2] if op.opcode == "PADV2" and len(op.inputs) > 2 else None
        return value is None or (value in constants and not np.any(np.asarray(constants[value])))
    if op.opcode == "RESHAPE":
        before, after = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
        # Row-major order is kept, so the same last axis means every element keeps its channel.
        return bool(before.shape and after.shape) and before.shape_signature[-1] == after.shape_signature[-1] > 0
    if op.opcode == "MEAN":
        rank = len(sg.tensors[op.inputs[0]].shape)
        if op.inputs[1] not in constants or not rank:
            return False
        axes = {int(a) % rank for a in np.ravel(constants[op.inputs[1]])}
        return rank - 1 not in axes  # reducing earlier axes leaves the channel axis last
    return False


def _is_consumer(sg: ir.Subgraph, op: ir.Operator, constants: Mapping[int, np.ndarray], uses: Mapping[int, int],
                 channels: int) -> bool:
    if op.opcode not in _CONSUMERS or len(op.inputs) < 2:
        return False
    weights = op.inputs[1]
    if not _private_constant(sg, weights, constants, uses, _WEIGHT_DTYPES) or _is_hybrid(sg, op, constants):
        return False
    shape = np.shape(constants[weights])
    if op.opcode == "FULLY_CONNECTED":
        # FC flattens its input to [-1, in]: the channel stays the last axis only when in == C.
        return len(shape) == 2 and shape[1] == channels and op.options.get("weights_format", "DEFAULT") == "DEFAULT"
    if op.opcode == "DEPTHWISE_CONV_2D" and op.options.get("depth_multiplier", 1) not in (0, 1):
        return False
    return len(shape) == 4 and shape[3] == channels


# -- rescaling ------------------------------------------------------------------------------------------
class _FloatConstants:
    """Float32 copies of the constants being rescaled (``constants`` itself is never written)."""

    def __init__(self, sg: ir.Subgraph, constants: dict[int, np.ndarray]):
        self._sg = sg
        self._constants = constants
        self._values: dict[int, np.ndarray] = {}

    def __getitem__(self, index: int) -> np.ndarray:
        if index not in self._values:
            value = np.asarray(self._constants[index])
            tensor = self._sg.tensors[index]
            if value.dtype.kind != "f":
                value = dequantize_array(value, tensor.quantization)
            self._values[index] = np.array(value, dtype=np.float32)  # a private, writable copy
        return self._values[index]

    def __setitem__(self, index: int, value: np.ndarray) -> None:
        self._values[index] = value.astype(np.float32)

    def rescaled(self) -> dict[int, np.ndarray]:
        """The new real value of every constant read or rescaled, by tensor index."""
        return dict(self._values)


def _channels(values: _FloatConstants, pair: Pair) -> int:
    return values[pair.first_weights].shape[_PRODUCERS[pair.first.opcode]]


def _channel_ranges(weights: np.ndarray, axis: int) -> np.ndarray:
    """The largest magnitude of each slice along ``axis``."""
    others = tuple(a for a in range(weights.ndim) if a != axis)
    return np.abs(weights).max(axis=others).astype(np.float64)


def _broadcast(vector: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return vector.reshape(shape)


def _equalize_pair(values: _FloatConstants, pair: Pair) -> np.ndarray:
    """Rescale one pair in ``values``; returns the scales ``s`` applied (the producer's output
    channels were divided by them)."""
    out_axis, in_axis = _PRODUCERS[pair.first.opcode], _CONSUMERS[pair.second.opcode]
    w1, w2 = values[pair.first_weights], values[pair.second_weights]
    r1, r2 = _channel_ranges(w1, out_axis), _channel_ranges(w2, in_axis)
    usable = (r1 > 0) & (r2 > 0) & np.isfinite(r1) & np.isfinite(r2)
    s = np.ones_like(r1)
    s[usable] = np.sqrt(r1[usable] / r2[usable])
    # A channel the consumer ignores (all its weights zero) is cleared in the producer too: its
    # value never matters, and its weights would otherwise keep a range nothing can balance.
    kept = (r2 > 0).astype(np.float64)
    values[pair.first_weights] = w1 * _broadcast(kept / s, w1.ndim, out_axis)
    values[pair.second_weights] = w2 * _broadcast(s, w2.ndim, in_axis)
    if pair.first_bias is not None:
        values[pair.first_bias] = values[pair.first_bias] * (kept / s)
    return s


def _clips(sg: ir.Subgraph, pairs: list[Pair], scales: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Per-channel bounds for rescaled producers whose fused activation has a finite bound."""
    clips = {}
    for pair in pairs:
        bound = _BOUNDS[pair.first.options.get("fused_activation_function", "NONE")]
        s = scales[pair.first.index]
        if bound is None or not np.isfinite(bound) or np.all(s == 1.0):
            continue
        clips[pair.first.index] = (bound / s).astype(np.float32)
    return clips
