"""Recurrent operators: the LSTM family (LSTM, UNIDIRECTIONAL_SEQUENCE_LSTM,
BIDIRECTIONAL_SEQUENCE_LSTM), the RNN family (RNN, UNIDIRECTIONAL_SEQUENCE_RNN,
BIDIRECTIONAL_SEQUENCE_RNN) and SVDF, after TFLite's float and hybrid kernels
(``tensorflow/lite/kernels/lstm_eval.cc``, ``internal/kernel_utils.cc``, ``internal/reference/svdf.h``).

Inputs (TFLite order). LSTM full kernel and UNIDIRECTIONAL_SEQUENCE_LSTM: 0 input, 1-4 input-to-
{input, forget, cell, output} weights ``[n_cell, n_input]``, 5-8 recurrent-to-gate weights
``[n_cell, n_output]`` (``[n_cell]`` when diagonal), 9-11 peephole (cell-to-{input, forget, output})
``[n_cell]``, 12-15 gate biases, 16 projection ``[n_output, n_cell]``, 17 projection bias, 18 output
state, 19 cell state (variables), 20-23 layer-norm coefficients. The input gate's weights are
absent in a CIFG LSTM (input gate = 1 - forget gate). BIDIRECTIONAL_SEQUENCE_LSTM: 1-17 forward and
18-34 backward weights (as 1-17 above), 35-38 fw/bw output and cell states, 39 aux input, 40-47
fw/bw aux-input-to-gate weights. LSTM basic kernel (``kernel_type`` BASIC): input, previous
activation, weights ``[4 * depth, input + depth]`` (gates i, g, f, o), biases, previous state; four
outputs (activation, state, concatenation, gate pre-activations).

RNN family: input, weights ``[units, input]``, recurrent weights ``[units, units]``, bias, hidden
state; BIDIRECTIONAL_SEQUENCE_RNN: 1-4 forward, 5-8 backward, 9 aux input, 10-11 fw/bw aux weights.
An aux input without aux weights is the backward direction's input (TFLite's non-stacking mode).

SVDF: input ``[batch, input]``, feature weights ``[filters, input]``, time weights
``[filters, memory]``, bias ``[units]``, state ``[batch, memory * filters]``; filters = units * rank.

The options' ``fused_activation_function`` is, for the LSTM and RNN families, the cell's own
activation (applied inside the recurrence), so these builders apply it; for SVDF it is an output
activation. Variable states arrive as the module holds them (zeros after a reset), and each builder
hands back what LiteRT's kernel writes into them (``ctx.write_variable``): the last step's output
and cell states of each direction (the backward direction's last step is time 0), an RNN's last
hidden state, SVDF's shifted memory. Matrices are transposed once to TensorFlow's ``[in, out]`` layout (weight layouts).

Hybrid kernels (float data, int8 weights): in ``fake_quant`` mode each matrix product with an int8
weight sees its float operand quantized per batch row, as the kernel does at every time step (the
input, the previous output state, the aux input, the projection input); symmetric, or asymmetric
with ``asymmetric_quantize_inputs``. In ``dequantize`` mode everything is float. Full-integer
kernels (int8/int16 activations) are fixed point throughout: the integer SVDF and the 8x8_16
LSTM (UNIDIRECTIONAL_SEQUENCE_LSTM and the full LSTM kernel) are emulated in ``fake_quant`` mode
(:mod:`tflite_inverter.ops.integer_recurrent`); the others are refused there.

LiteRT behaviours followed here rather than the textbook recurrence: BIDIRECTIONAL_SEQUENCE_RNN in
batch-major non-stacking mode feeds the backward direction the forward input (its batch-major
loops read ``input``, not the aux input); its hybrid time-major kernel runs both passes
``max_time`` times, carrying the hidden states over. Refused: LSTM activation NONE (the kernels
leave their activation buffers unwritten: h = o * cell gate), a time-major BIDIRECTIONAL_SEQUENCE_RNN
aux input of another width than the input (read at the input's stride).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import tensorflow as tf

from ..build.context import apply_fused_activation
from ..quant.grids import fake_quantize_dynamic
from .integer_recurrent import IntegerLstm, svdf_integer
from .registry import register

_LAYER_NORM_EPSILON = 1e-8  # kNormalizationConstant of MeanStddevNormalization

# build/module.py applies the options' fused_activation_function to output 0; for the LSTM and RNN families
# it is the cell activation, applied inside the recurrence here, so those specs opt out.
_CELL_ACTIVATION = {"fused_activation": False}


def _transpose_matrix(w, ctx, lib):
    """[out, in] -> [in, out]; vectors (diagonal recurrent weights) are left as they are."""
    return lib.transpose(w, (1, 0)) if len(w.shape) == 2 else w


def _layouts(*positions: int) -> dict:
    return {p: _transpose_matrix for p in positions}


def _activation(name: str) -> Callable:

    return lambda x: apply_fused_activation(x, name)


def _fake_quant_mode(ctx) -> bool:
    return ctx.quantized_mode == "fake_quant"


def _refuse_integer_kernel(ctx) -> None:
    """Integer activations select TFLite's fixed-point kernels (int16 gate pre-activations at the
    intermediates' scales, fixed-point sigmoid/tanh, an int16 cell/state): not emulated in
    ``fake_quant`` mode; ``dequantize`` mode computes the float recurrence on real values."""
    data = ctx.input_tensor(0)
    if _fake_quant_mode(ctx) and data is not None and data.dtype in ("int8", "uint8", "int16"):
        raise ctx.fail(f"{data.dtype} activations (TFLite's integer kernel) are not emulated in fake_quant mode; "
                       "invert with quantized='dequantize' for the float recurrence")


def _hybrid_quantizer(ctx, op, position: int | None) -> Callable:
    """What the hybrid kernel does to a float operand of a product with weight input ``position``:
    per-row dynamic quantization when that weight is int8 (and the mode emulates it), else nothing."""
    tensor = ctx.input_tensor(position) if position is not None else None
    if tensor is None or tensor.dtype not in ("int8", "uint8") or not _fake_quant_mode(ctx):
        return lambda x: x
    asymmetric = bool(op.options.get("asymmetric_quantize_inputs", False))
    return lambda x: fake_quantize_dynamic(x, "row", asymmetric)


def _time_major(x, time_major: bool):
    return x if time_major else tf.transpose(x, [1, 0, 2])


def _matmul(x, w):
    return tf.linalg.matmul(x, tf.cast(w, x.dtype))


# -- LSTM ---------------------------------------------------------------------------------------


@dataclass
class _Lstm:
    """One direction of an LSTM, with the TFLite float/hybrid step."""

    input_weights: list  # [i, f, c, o] of [n_input, n_cell]; i is None for CIFG
    recurrent_weights: list  # [i, f, c, o] of [n_output, n_cell], or [n_cell] when diagonal
    aux_weights: list | None
    peephole: list  # [i, f, o] of [n_cell] or None
    biases: list
    layer_norm: list  # [i, f, c, o] or None
    projection: Any
    projection_bias: Any
    activation: Callable
    cell_clip: float
    proj_clip: float
    quantize_input: Callable
    quantize_state: Callable
    quantize_aux: Callable
    quantize_projection: Callable

    def step(self, x, aux, h, c):
        xq = self.quantize_input(x)
        hq = self.quantize_state(h)
        auxq = self.quantize_aux(aux) if aux is not None else None

        def gate(k, activation, cell):
            acc = _matmul(xq, self.input_weights[k])
            if auxq is not None and self.aux_weights is not None and self.aux_weights[k] is not None:
                acc = acc + _matmul(auxq, self.aux_weights[k])
            recurrent = self.recurrent_weights[k]
            acc = acc + (h * recurrent if recurrent.shape.rank == 1 else _matmul(hq, recurrent))
            peephole = None if cell is None else self.peephole[{0: 0, 1: 1, 3: 2}[k]]
            if peephole is not None:
                acc = acc + cell * peephole
            norm = self.layer_norm[k]
            if norm is not None:
                mean = tf.reduce_mean(acc, axis=-1, keepdims=True)
                variance = tf.reduce_mean(tf.square(acc - mean), axis=-1, keepdims=True)
                acc = (acc - mean) / tf.sqrt(variance + _LAYER_NORM_EPSILON) * norm
            return activation(acc + self.biases[k])

        forget = gate(1, tf.sigmoid, c)
        if self.input_weights[0] is None:  # CIFG: coupled input and forget gates
            input_gate = 1.0 - forget
        else:
            input_gate = gate(0, tf.sigmoid, c)
        cell_gate = gate(2, self.activation, None)
        c_new = forget * c + input_gate * cell_gate
        if self.cell_clip > 0:
            c_new = tf.clip_by_value(c_new, -self.cell_clip, self.cell_clip)
        output_gate = gate(3, tf.sigmoid, c_new)
        h_new = output_gate * self.activation(c_new)
        if self.projection is not None:
            h_new = _matmul(self.quantize_projection(h_new), self.projection)
            if self.projection_bias is not None:
                h_new = h_new + self.projection_bias
            if self.proj_clip > 0:
                h_new = tf.clip_by_value(h_new, -self.proj_clip, self.proj_clip)
        return h_new, c_new

    def sequence(self, x, aux, h0, c0, reverse: bool = False):
        """Run over time-major ``x`` ([time, batch, input]); the outputs [time, batch, n_output]."""

        def body(state, elems):
            h, c = state
            x_t, aux_t = elems if aux is not None else (elems, None)
            return self.step(x_t, aux_t, h, c)

        elems = (x, aux) if aux is not None else x
        hs, cs = tf.scan(body, elems, initializer=(h0, c0), reverse=reverse)
        last = 0 if reverse else -1
        return hs, hs[last], cs[last]


def _lstm_direction(ctx, op, inputs, first: int, aux_first: int | None, layer_norm_first: int | None) -> _Lstm:
    """The LSTM weights of one direction: ``first`` is the position of its input-to-input weights
    (1 forward, 18 backward); aux weights start at ``aux_first``, layer norm at ``layer_norm_first``."""
    _refuse_integer_kernel(ctx)
    o = op.options
    if o.get("fused_activation_function", "TANH") == "NONE":
        # tensor_utils::ApplyActivationToVector returns without writing its output for kTfLiteActNone:
        # the kernel then reads stale scratch (h = output gate * cell gate, not * cell state).
        raise ctx.fail("fused_activation_function NONE: TFLite's LSTM kernels leave their activation "
                       "buffers unwritten for it (h = o * cell gate); not reproduced")

    def get(position):
        return inputs[position] if position is not None and position < len(inputs) else None

    input_weights = [get(first + k) for k in range(4)]
    recurrent_weights = [get(first + 4 + k) for k in range(4)]
    peephole = [get(first + 8 + k) for k in range(3)]
    biases = [get(first + 11 + k) for k in range(4)]
    if any(w is None for w in input_weights[1:] + recurrent_weights[1:] + biases[1:]):
        raise ctx.fail("missing forget/cell/output weights or biases")
    cifg = input_weights[0] is None
    if cifg != (recurrent_weights[0] is None):
        raise ctx.fail("input-to-input and recurrent-to-input weights must be both present or both absent (CIFG)")
    if cifg:
        biases[0] = None
    elif biases[0] is None:
        raise ctx.fail("the input gate bias is missing")
    aux_weights = [get(aux_first + k) for k in range(4)] if aux_first is not None else None
    if aux_weights is not None and all(w is None for w in aux_weights):
        aux_weights = None
    layer_norm = [get(layer_norm_first + k) for k in range(4)] if layer_norm_first is not None else [None] * 4
    needed = peephole[1:] if cifg else peephole
    if any(p is not None for p in peephole) and any(p is None for p in needed):
        raise ctx.fail("peephole weights must be all present or all absent")
    projection_position = first + 15
    matrix_state = next((first + 4 + k for k in range(4) if recurrent_weights[k] is not None
                         and recurrent_weights[k].shape.rank == 2), None)
    return _Lstm(
        input_weights=input_weights,
        recurrent_weights=recurrent_weights,
        aux_weights=aux_weights,
        peephole=peephole,
        biases=biases,
        layer_norm=layer_norm,
        projection=get(projection_position),
        projection_bias=get(projection_position + 1),
        activation=_activation(o.get("fused_activation_function", "TANH")),
        cell_clip=float(o.get("cell_clip", 0.0)),
        proj_clip=float(o.get("proj_clip", 0.0)),
        quantize_input=_hybrid_quantizer(ctx, op, first + 3),
        quantize_state=_hybrid_quantizer(ctx, op, matrix_state),
        quantize_aux=_hybrid_quantizer(ctx, op, None if aux_first is None else aux_first + 3),
        quantize_projection=_hybrid_quantizer(ctx, op, projection_position),
    )


_LSTM_MATRICES = (1, 2, 3, 4, 5, 6, 7, 8, 16)


@register("UNIDIRECTIONAL_SEQUENCE_LSTM", max_version=4, **_CELL_ACTIVATION, weight_layouts=_layouts(*_LSTM_MATRICES),
          writes_inputs=(18, 19))
def build_unidirectional_sequence_lstm(ctx, op, inputs):
    x = inputs[0]
    time_major = bool(op.options.get("time_major", False))
    data = ctx.input_tensor(0)
    if _fake_quant_mode(ctx) and data.dtype == "int8":
        hs, h, c = IntegerLstm(ctx, op).sequence(_time_major(x, time_major), inputs[18], inputs[19])
        ctx.write_variable(18, h)
        ctx.write_variable(19, c)
        return [_time_major(hs, time_major)]
    cell = _lstm_direction(ctx, op, inputs, 1, None, 20)
    hs, h, c = cell.sequence(_time_major(x, time_major), None, inputs[18], inputs[19])
    ctx.write_variable(18, h)
    ctx.write_variable(19, c)
    return [_time_major(hs, time_major)]


def _lstm_basic(ctx, op, inputs):
    """The BASIC kernel: one FC over [input, previous activation], gates i, g, f, o."""
    _refuse_integer_kernel(ctx)  # the BASIC kernel's uint8 variant is fixed point too
    x, prev_activation, weights, bias, prev_state = inputs[:5]
    concat = tf.concat([x, prev_activation], axis=-1)
    gates = _matmul(concat, weights) + bias
    input_gate, new_input, forget_gate, output_gate = tf.split(gates, 4, axis=-1)
    state = tf.sigmoid(input_gate) * tf.tanh(new_input) + tf.sigmoid(forget_gate) * prev_state
    activation = tf.sigmoid(output_gate) * tf.tanh(state)
    return [activation, state, concat, gates]


def _lstm_layouts():
    full = _layouts(*_LSTM_MATRICES)
    basic = _transpose_matrix

    def layout_for(position):
        matrix = full.get(position)

        def layout(w, ctx, lib):
            if ctx.op.options.get("kernel_type", "FULL") == "BASIC":
                return basic(w, ctx, lib) if position == 2 else w
            return matrix(w, ctx, lib) if matrix is not None else w

        return layout

    return {p: layout_for(p) for p in set(full) | {2}}


def _lstm_writes(options) -> tuple[int, ...]:
    """The full kernel updates its output and cell states in place; the BASIC kernel writes its
    new activation and state to outputs 0 and 1 and leaves its inputs alone."""
    return () if options.get("kernel_type", "FULL") == "BASIC" else (18, 19)


@register("LSTM", max_version=4, **_CELL_ACTIVATION, weight_layouts=_lstm_layouts(), writes_inputs=_lstm_writes)
def build_lstm(ctx, op, inputs):
    if op.options.get("kernel_type", "FULL") == "BASIC":
        return _lstm_basic(ctx, op, inputs)
    if _fake_quant_mode(ctx) and ctx.input_tensor(0).dtype == "int8":  # the 8x8_16 kernel, one step
        hs, h, c = IntegerLstm(ctx, op).sequence(inputs[0][None], inputs[18], inputs[19])
        ctx.write_variable(18, h)
        ctx.write_variable(19, c)
        return [hs[0]]
    cell = _lstm_direction(ctx, op, inputs, 1, None, 20)
    h, c = cell.step(inputs[0], None, inputs[18], inputs[19])
    ctx.write_variable(18, h)
    ctx.write_variable(19, c)
    return [h]


@register("BIDIRECTIONAL_SEQUENCE_LSTM", max_version=3, **_CELL_ACTIVATION,
          weight_layouts=_layouts(*_LSTM_MATRICES, *(p + 17 for p in _LSTM_MATRICES), *range(40, 48)),
          writes_inputs=(35, 36, 37, 38))
def build_bidirectional_sequence_lstm(ctx, op, inputs):
    o = op.options
    time_major = bool(o.get("time_major", False))
    x = _time_major(inputs[0], time_major)
    aux = inputs[39] if len(inputs) > 39 else None
    forward = _lstm_direction(ctx, op, inputs, 1, 40, None)
    backward = _lstm_direction(ctx, op, inputs, 18, 44, None)
    aux = None if aux is None else _time_major(aux, time_major)
    if aux is not None and forward.aux_weights is None:
        bw_x, aux = aux, None  # non-stacking mode: the aux input is the backward direction's input
    else:
        bw_x = x
    fw, fw_h, fw_c = forward.sequence(x, aux, inputs[35], inputs[36])
    bw, bw_h, bw_c = backward.sequence(bw_x, aux, inputs[37], inputs[38], reverse=True)
    for position, value in zip((35, 36, 37, 38), (fw_h, fw_c, bw_h, bw_c)):
        ctx.write_variable(position, value)
    if o.get("merge_outputs"):
        return [_time_major(tf.concat([fw, bw], axis=-1), time_major)]
    return [_time_major(fw, time_major), _time_major(bw, time_major)]


# -- RNN ----------------------------------------------------------------------------------------


@dataclass
class _Rnn:
    weights: Any  # [input, units]
    recurrent: Any  # [units, units]
    bias: Any
    aux_weights: Any
    activation: Callable
    quantize_input: Callable
    quantize_state: Callable
    quantize_aux: Callable

    def step(self, x, aux, h):
        acc = _matmul(self.quantize_input(x), self.weights)
        if aux is not None and self.aux_weights is not None:
            acc = acc + _matmul(self.quantize_aux(aux), self.aux_weights)
        acc = acc + _matmul(self.quantize_state(h), self.recurrent)
        return self.activation(acc + self.bias)

    def sequence(self, x, aux, h0, reverse: bool = False):
        def body(h, elems):
            x_t, aux_t = elems if aux is not None else (elems, None)
            return self.step(x_t, aux_t, h)

        return tf.scan(body, (x, aux) if aux is not None else x, initializer=h0, reverse=reverse)


def _rnn_direction(ctx, op, inputs, first: int, aux_position: int | None) -> _Rnn:
    _refuse_integer_kernel(ctx)
    aux_weights = inputs[aux_position] if aux_position is not None and aux_position < len(inputs) else None
    return _Rnn(
        weights=inputs[first],
        recurrent=inputs[first + 1],
        bias=inputs[first + 2],
        aux_weights=aux_weights,
        activation=_activation(op.options.get("fused_activation_function", "NONE")),
        quantize_input=_hybrid_quantizer(ctx, op, first),
        quantize_state=_hybrid_quantizer(ctx, op, first + 1),
        quantize_aux=_hybrid_quantizer(ctx, op, aux_position if aux_weights is not None else None),
    )


@register("RNN", max_version=3, **_CELL_ACTIVATION, weight_layouts=_layouts(1, 2), writes_inputs=(4,))
def build_rnn(ctx, op, inputs):
    h = _rnn_direction(ctx, op, inputs, 1, None).step(inputs[0], None, inputs[4])
    ctx.write_variable(4, h)
    return [h]


@register("UNIDIRECTIONAL_SEQUENCE_RNN", max_version=3, **_CELL_ACTIVATION, weight_layouts=_layouts(1, 2),
          writes_inputs=(4,))
def build_unidirectional_sequence_rnn(ctx, op, inputs):
    time_major = bool(op.options.get("time_major", False))
    cell = _rnn_direction(ctx, op, inputs, 1, None)
    hs = cell.sequence(_time_major(inputs[0], time_major), None, inputs[4])
    ctx.write_variable(4, hs[-1])
    return [_time_major(hs, time_major)]


@register("BIDIRECTIONAL_SEQUENCE_RNN", max_version=3, **_CELL_ACTIVATION, weight_layouts=_layouts(1, 2, 5, 6, 10, 11),
          writes_inputs=(4, 8))
def build_bidirectional_sequence_rnn(ctx, op, inputs):
    o = op.options
    time_major = bool(o.get("time_major", False))
    x = _time_major(inputs[0], time_major)
    aux = inputs[9] if len(inputs) > 9 else None
    forward = _rnn_direction(ctx, op, inputs, 1, 10)
    backward = _rnn_direction(ctx, op, inputs, 5, 11)
    if aux is not None and time_major and aux.shape[-1] != inputs[0].shape[-1]:
        # The time-major kernels step through the aux input with the input's row size.
        raise ctx.fail(f"time-major aux input of size {aux.shape[-1]} != input size {inputs[0].shape[-1]}: "
                       "TFLite's kernel reads it at the input's stride")
    aux = None if aux is None else _time_major(aux, time_major)
    if aux is not None and forward.aux_weights is None:
        # Non-stacking mode: the aux input is the backward direction's input, except that the
        # batch-major kernels (float and hybrid) read the forward input there: followed here.
        bw_x, aux = (aux if time_major else x), None
    else:
        bw_x = x
    repeats = 1
    if time_major and ctx.input_tensor(1).dtype in ("int8", "uint8"):
        # The hybrid time-major kernel (EvalHybrid) wraps both passes in an extra loop over time:
        # they run max_time times, each starting from the hidden states the previous one left.
        repeats = x.shape[0]
        if repeats is None:
            raise ctx.fail("a hybrid time-major BIDIRECTIONAL_SEQUENCE_RNN needs a static sequence length")
    fw_state, bw_state = inputs[4], inputs[8]
    for _ in range(repeats):
        fw = forward.sequence(x, aux, fw_state)
        bw = backward.sequence(bw_x, aux, bw_state, reverse=True)
        fw_state, bw_state = fw[-1], bw[0]
    ctx.write_variable(4, fw_state)
    ctx.write_variable(8, bw_state)
    if o.get("merge_outputs"):
        return [_time_major(tf.concat([fw, bw], axis=-1), time_major)]
    return [_time_major(fw, time_major), _time_major(bw, time_major)]


# -- SVDF ---------------------------------------------------------------------------------------


def _svdf_activation(ctx, op, y):
    return apply_fused_activation(y, op.options.get("fused_activation_function", "NONE"))


@register("SVDF", max_version=4, weight_layouts=_layouts(1), writes_inputs=(4,), fused_activation=False)
def build_svdf(ctx, op, inputs):
    """One step: shift each filter's memory left, append the feature projection of the input,
    weigh the memory by the time weights, sum the ``rank`` filters of each unit, add the bias,
    apply the fused activation (on the output). The new memory is written back into the state.
    An int8 SVDF in ``fake_quant`` mode runs TFLite's integer kernel (``integer_recurrent.svdf_integer``)."""
    x, feature_weights, time_weights, bias, state = inputs[:5]
    rank = int(op.options["rank"])
    filters, memory = time_weights.shape
    if filters is None or memory is None or filters % rank:
        raise ctx.fail(f"time weights of shape {time_weights.shape} do not fit rank {rank}")
    data = ctx.input_tensor(0)
    integer = data is not None and data.dtype in ("int8", "uint8", "int16")
    if integer and _fake_quant_mode(ctx):
        return [svdf_integer(ctx, op, x, state, rank, int(filters), int(memory))]
    activation = _matmul(_hybrid_quantizer(ctx, op, 1)(x), feature_weights)  # [batch, filters]
    state = tf.reshape(state, [-1, filters, memory])
    state = tf.concat([state[:, :, 1:], activation[:, :, None]], axis=2)
    ctx.write_variable(4, tf.reshape(state, [-1, filters * memory]))
    per_filter = tf.reduce_sum(state * tf.cast(time_weights, state.dtype), axis=2)  # [batch, filters]
    y = tf.reduce_sum(tf.reshape(per_filter, [-1, filters // rank, rank]), axis=2)
    y = y if bias is None else y + bias
    # The integer kernel applies no activation (see svdf_integer): neither does its float twin.
    return [y if integer else _svdf_activation(ctx, op, y)]
