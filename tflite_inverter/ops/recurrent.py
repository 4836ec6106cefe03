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
LSTM (UNIDIRECTIONAL_SEQUENCE_LSTM and the full LSTM kernel) are emulated in ``fake_quant`` mode (:func:`_svdf_integer`,
:class:`_IntegerLstm`); the others are refused there.

LiteRT behaviours followed here rather than the textbook recurrence: BIDIRECTIONAL_SEQUENCE_RNN in
batch-major non-stacking mode feeds the backward direction the forward input (its batch-major
loops read ``input``, not the aux input); its hybrid time-major kernel runs both passes
``max_time`` times, carrying the hidden states over. Refused: LSTM activation NONE (the kernels
leave their activation buffers unwritten: h = o * cell gate), a time-major BIDIRECTIONAL_SEQUENCE_RNN
aux input of another width than the input (read at the input's stride).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from ..build.context import apply_fused_activation
from ..quant.grids import fake_quantize_dynamic
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
        hs, h, c = _IntegerLstm(ctx, op).sequence(_time_major(x, time_major), inputs[18], inputs[19])
        ctx.write_variable(18, h)
        ctx.write_variable(19, c)
        return [_time_major(hs, time_major)]
    cell = _lstm_direction(ctx, op, inputs, 1, None, 20)
    hs, h, c = cell.sequence(_time_major(x, time_major), None, inputs[18], inputs[19])
    ctx.write_variable(18, h)
    ctx.write_variable(19, c)
    return [_time_major(hs, time_major)]


class _IntegerLstm:
    """TFLite's 8x8_16 LSTM kernel (``LstmStepInteger8x8_16``, tflite/kernels/lstm_eval.cc; scales
    from ``PopulateQuantizedLstmParams8x8_16``): int8 input and output state, int8 weights, int32
    biases, int16 gates and cell state.

    Each gate: the input and recurrent products (``W (x - zp)`` + bias, ``W (h - zp_h)``) are each
    rescaled to Q3.12 (``s_x s_W / 2**-12``) and added into an int16 accumulator with saturation;
    sigmoid (tanh for the cell gate) gives Q0.15. The cell: ``f c >> 15`` plus ``i g >> (30 +
    log2 s_c)`` (rounding shifts), saturated, clipped to the quantized cell clip. The output:
    ``o tanh(c)`` rescaled by ``2**-30 / s_hidden`` (intermediate 4) plus its zero point, clamped
    to int8. Peepholes (int16 weights) add ``w c`` rescaled by ``2**log2(s_c) s_w / 2**-12`` to
    their gates; a projection takes that product at the hidden intermediate's scale with the
    negated hidden zero point (as the kernel does), multiplies it by the int8 projection weights
    (bias + ``zp_hidden`` times the weights' row sums), rescales by ``s_P s_hidden / s_h`` and adds
    the output state's zero point, then clips to the quantized projection clip. Integer arithmetic
    is exact (float64 products, int64 rescaling); sigmoid and tanh are gemmlowp's int16 fixed-point
    functions, tabulated over all 65,536 inputs (they differ from the exact functions by up to 12
    Q0.15 steps). With layer norm the products are rescaled to the input-to-gate intermediates'
    scales and the gate bias is added by the integer layer norm (:func:`_integer_layer_norm`),
    which gives Q3.12. Diagonal recurrent weights and peepholes with a projection are refused."""

    def __init__(self, ctx, op):
        from ..quant.fixed_point import effective_scale, quantize_multiplier

        o = op.options
        tensor = ctx.input_tensor
        self.peephole = tensor(10) is not None
        self.projection = tensor(16) is not None
        self.layer_norm = any(tensor(p) is not None for p in (20, 21, 22, 23))
        refused = []
        if self.peephole and self.projection:
            # The kernel's peephole product steps through the cell state n_output at a time.
            refused.append("peepholes and a projection")
        if o.get("diagonal_recurrent_tensors"):
            refused.append("diagonal recurrent weights")
        if o.get("fused_activation_function", "TANH") != "TANH":
            refused.append(f"activation {o.get('fused_activation_function')}")
        if refused:
            raise ctx.fail(f"the integer LSTM kernel with {', '.join(refused)} is not emulated in fake_quant mode; "
                           "invert with quantized='dequantize' for the float recurrence")
        self.ctx = ctx
        x_t, h_t, c_t, out_t = tensor(0), tensor(18), tensor(19), ctx.output_tensor(0)
        if h_t.dtype != "int8" or c_t.dtype != "int16" or len(op.intermediates) != 5:
            raise ctx.fail("the integer LSTM kernel emulated is the 8x8_16 one: an int8 output state, an int16 cell "
                           f"state and 5 intermediates (this one has {len(op.intermediates)}); invert with "
                           "quantized='dequantize' for the float recurrence")
        hidden_t = ctx.subgraph.tensors[op.intermediates[4]]
        if any(t is None or t.quantization is None for t in (x_t, h_t, c_t, out_t, hidden_t)):
            raise ctx.fail("an integer LSTM needs quantization parameters on its input, states, output and hidden intermediate")

        def scale(t):
            return float(t.quantization.scales[0])

        def zero_point(t):
            return int(t.quantization.zero_points[0])

        cell_scale = math.log2(scale(c_t))
        if cell_scale != int(cell_scale):
            raise ctx.fail(f"the cell state scale {scale(c_t)} is not a power of two")
        self.cell_shift = 30 + int(cell_scale)
        self.cell_tanh_bits = 15 + int(cell_scale)
        if not 0 <= self.cell_tanh_bits <= 6:
            raise ctx.fail(f"the cell state scale 2**{int(cell_scale)} is outside what the kernel's tanh takes")
        # The gates' accumulator scale: Q3.12 (the activations' input) without layer norm; with it,
        # the input-to-gate intermediates' scales (layer norm then gives Q3.12).
        gate_scales = [2.0 ** -12] * 4
        if self.layer_norm:
            for k in range(4):
                intermediate = ctx.subgraph.tensors[op.intermediates[k]]
                if intermediate.quantization is None and not (k == 0 and tensor(1) is None):
                    raise ctx.fail(f"layer norm: intermediate {k} has no quantization parameters")
                if intermediate.quantization is not None:
                    gate_scales[k] = float(intermediate.quantization.scales[0])
        from ..quant.fixed_point import gemmlowp_logistic_table, gemmlowp_tanh_table

        self.sigmoid = tf.constant(gemmlowp_logistic_table(3).astype(np.int64))
        self.tanh = tf.constant(gemmlowp_tanh_table(3).astype(np.int64))
        self.cell_tanh = tf.constant(gemmlowp_tanh_table(self.cell_tanh_bits).astype(np.int64))
        self.cifg = tensor(1) is None
        self.weights, self.multipliers, self.biases = [], [], []
        for k in range(4):
            if k == 0 and self.cifg:
                self.weights.append(None)
                self.multipliers.append(None)
                self.biases.append(None)
                continue
            gate_scale = gate_scales[k]
            wx, wh = ctx.constant(1 + k), ctx.constant(5 + k)
            if wx is None or wh is None or tensor(1 + k).dtype != "int8" or tensor(5 + k).dtype != "int8":
                raise ctx.fail(f"gate {k}: an integer LSTM needs constant int8 weights")
            self.weights.append((tf.constant(np.asarray(wx, np.float64).T), tf.constant(np.asarray(wh, np.float64).T)))
            self.multipliers.append((
                quantize_multiplier(effective_scale(scale(tensor(1 + k)), scale(x_t), divisor=gate_scale)),
                quantize_multiplier(effective_scale(scale(tensor(5 + k)), scale(h_t), divisor=gate_scale))))
            bias = ctx.constant(12 + k)
            # With layer norm the gate bias is added after the normalization, not to the products.
            use = bias is not None and not self.layer_norm
            self.biases.append(tf.constant(np.asarray(bias, np.float64)) if use else None)
        self.peepholes = [None, None, None, None]  # (int16 weights as float64, multiplier) per gate
        if self.peephole:
            for k, position in ((0, 9), (1, 10), (3, 11)):
                if k == 0 and self.cifg:
                    continue
                w = ctx.constant(position)
                if w is None or tensor(position).dtype != "int16":
                    raise ctx.fail(f"peephole input {position}: an integer LSTM needs constant int16 weights")
                # 2**cell_scale * s_w / 2**-12 in double, stored as a float
                real = float(np.float32(2.0 ** cell_scale * float(scale(tensor(position)))
                                        / float(np.float32(gate_scales[k]))))
                self.peepholes[k] = (tf.constant(np.asarray(w, np.float64)), quantize_multiplier(real))
        self.norms = [None, None, None, None]  # (coefficients, bias, multiplier, variance guard) per gate
        if self.layer_norm:
            for k in range(4):
                if k == 0 and self.cifg:
                    continue
                coefficients, bias = ctx.constant(20 + k), ctx.constant(12 + k)
                if coefficients is None or tensor(20 + k).dtype != "int16" or bias is None:
                    raise ctx.fail(f"layer norm of gate {k}: an integer LSTM needs constant int16 coefficients "
                                   "and an int32 bias")
                coefficient_scale = np.float32(scale(tensor(20 + k)))
                guard = max(1, int(np.float32(10000) * coefficient_scale))
                self.norms[k] = (tf.constant(np.asarray(coefficients, np.int64)), tf.constant(np.asarray(bias, np.int64)),
                                 quantize_multiplier(float(coefficient_scale)), guard)
        # effective_hidden_scale = 2**-15 / s_hidden * 2**-15 in double, stored as a float
        self.hidden_multiplier = quantize_multiplier(float(np.float32(2.0 ** -15 / scale(hidden_t) * 2.0 ** -15)))
        self.hidden_zp = zero_point(hidden_t)
        if self.projection:
            w = ctx.constant(16)
            if w is None or tensor(16).dtype != "int8":
                raise ctx.fail("an integer LSTM projection needs constant int8 weights")
            w = np.asarray(w, np.int64)
            bias = ctx.constant(17)
            effective_bias = (np.zeros(w.shape[0], np.int64) if bias is None else np.asarray(bias, np.int64)) \
                + self.hidden_zp * w.sum(axis=1)
            self.projection_weights = tf.constant(w.T.astype(np.float64))
            self.projection_bias = tf.constant(effective_bias.astype(np.float64))
            self.projection_multiplier = quantize_multiplier(
                effective_scale(scale(tensor(16)), scale(hidden_t), divisor=scale(h_t)))
            proj_clip = float(o.get("proj_clip", 0.0))
            self.proj_clip = int(min(max(np.float32(proj_clip) / np.float32(scale(out_t)), -128.0), 127.0)) \
                if proj_clip > 0 else 0
        cell_clip = float(o.get("cell_clip", 0.0))
        # static_cast<int16_t>(min(max(clip / s_c, -32768), 32767)) in float
        self.cell_clip = int(min(max(np.float32(cell_clip) / np.float32(scale(c_t)), -32768.0), 32767.0)) if cell_clip > 0 else 0
        self.x_scale, self.x_zp = scale(x_t), zero_point(x_t)
        self.h_scale, self.h_zp = scale(h_t), zero_point(h_t)
        self.c_scale = scale(c_t)
        self.out_scale, self.out_zp = scale(out_t), zero_point(out_t)

    def _gate(self, k, x, h, c, activation):
        from ..quant.fixed_point import multiply_by_quantized_multiplier

        wx, wh = self.weights[k]
        mx, mh = self.multipliers[k]
        acc = tf.linalg.matmul(x, wx)
        if self.biases[k] is not None:
            acc = acc + self.biases[k]
        gate = tf.clip_by_value(multiply_by_quantized_multiplier(tf.cast(acc, tf.int64), *mx), -32768, 32767)
        gate = gate + multiply_by_quantized_multiplier(tf.cast(tf.linalg.matmul(h, wh), tf.int64), *mh)
        gate = tf.clip_by_value(gate, -32768, 32767)
        if self.peepholes[k] is not None:
            w, multiplier = self.peepholes[k]
            product = tf.cast(tf.cast(c, tf.float64) * w, tf.int64)
            gate = tf.clip_by_value(gate + multiply_by_quantized_multiplier(product, *multiplier), -32768, 32767)
        if self.norms[k] is not None:
            gate = _integer_layer_norm(gate, *self.norms[k])
        return _lookup(activation, gate)

    def step(self, x, h, c):
        """One step on integers (float64/int64 tensors): x and h less their zero points, c raw."""
        from ..quant.fixed_point import multiply_by_quantized_multiplier, rounding_divide_by_pot

        forget = self._gate(1, x, h, c, self.sigmoid)
        cell_gate = self._gate(2, x, h, c, self.tanh)
        input_gate = 32767 - forget if self.cifg else self._gate(0, x, h, c, self.sigmoid)
        kept = rounding_divide_by_pot(forget * c, 15)
        added = rounding_divide_by_pot(input_gate * cell_gate, self.cell_shift)
        c = tf.clip_by_value(kept + added, -32768, 32767)
        if self.cell_clip > 0:
            c = tf.clip_by_value(c, -self.cell_clip, self.cell_clip)
        output_gate = self._gate(3, x, h, c, self.sigmoid)
        tanh_c = _lookup(self.cell_tanh, c)
        if not self.projection:
            h = multiply_by_quantized_multiplier(output_gate * tanh_c, *self.hidden_multiplier) + self.hidden_zp
            return tf.clip_by_value(h, -128, 127), c
        hidden = multiply_by_quantized_multiplier(output_gate * tanh_c, *self.hidden_multiplier) - self.hidden_zp
        hidden = tf.cast(tf.clip_by_value(hidden, -128, 127), tf.float64)
        acc = tf.linalg.matmul(hidden, self.projection_weights) + self.projection_bias
        h = tf.clip_by_value(multiply_by_quantized_multiplier(tf.cast(acc, tf.int64), *self.projection_multiplier)
                             + self.h_zp, -128, 127)
        if self.proj_clip > 0:
            h = tf.clip_by_value(h, -self.proj_clip, self.proj_clip)
        return h, c

    def sequence(self, x, h0, c0):
        """Time-major real ``x`` and real states in; the real outputs and last states out."""
        x_int = tf.round(tf.cast(x, tf.float64) / self.x_scale)  # x - zp_x on the grid
        h_raw = tf.cast(tf.round(tf.cast(h0, tf.float64) / self.h_scale), tf.int64) + self.h_zp
        c_raw = tf.cast(tf.round(tf.cast(c0, tf.float64) / self.c_scale), tf.int64)

        def body(state, x_t):
            h, c = state
            return self.step(x_t, tf.cast(h - self.h_zp, tf.float64), c)

        hs, cs = tf.scan(body, x_int, initializer=(h_raw, c_raw))
        outputs = tf.cast(tf.cast(hs - self.out_zp, tf.float64) * self.out_scale, tf.float32)
        h_last = tf.cast(tf.cast(hs[-1] - self.h_zp, tf.float64) * self.h_scale, tf.float32)
        c_last = tf.cast(tf.cast(cs[-1], tf.float64) * self.c_scale, tf.float32)
        return outputs, h_last, c_last


def _integer_layer_norm(gate, coefficients, bias, multiplier, variance_guard):
    """``ApplyLayerNorm`` (tflite/kernels/internal/reference/portable_tensor_utils.cc) on int16
    gate accumulators [batch, n_cell] held in int64: mean and variance in units of 2**-10, the
    inverse square root as a run-time fixed-point multiplier, the int16 coefficients and the int32
    bias, a rounding division by 1024, then the coefficients' scale (shift + 12) to Q3.12."""
    from ..quant.fixed_point import (inverse_sqrt_multiplier, multiply_by_quantized_multiplier,
                                     multiply_by_quantized_multiplier_tensor)

    n = int(gate.shape[-1])
    total = tf.reduce_sum(gate, axis=-1, keepdims=True)
    squares = tf.reduce_sum(gate * gate, axis=-1, keepdims=True)
    mean = tf.truncatediv(total * 1024, tf.constant(n, tf.int64))
    variance = squares * ((1 << 20) // n) - mean * mean
    variance = tf.truncatediv(variance, tf.constant(1 << 20, tf.int64))
    variance = tf.where(variance < 1, tf.constant(variance_guard, tf.int64), variance)
    inverse, shift = inverse_sqrt_multiplier(variance)
    shifted = 1024 * gate - mean
    rescaled = multiply_by_quantized_multiplier_tensor(shifted, inverse * tf.ones_like(shifted), shift * tf.ones_like(shifted))
    value = rescaled * coefficients + bias
    value = tf.truncatediv(tf.where(value > 0, value + 512, value - 512), tf.constant(1024, tf.int64))
    scale_multiplier, scale_shift = multiplier
    return tf.clip_by_value(multiply_by_quantized_multiplier(value, scale_multiplier, scale_shift + 12), -32768, 32767)


def _lookup(table, raw):
    """gemmlowp's logistic or tanh of int16 values (in int64), from its table (quant/fixed_point.py)."""
    return tf.gather(table, raw + 32768)


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
        hs, h, c = _IntegerLstm(ctx, op).sequence(inputs[0][None], inputs[18], inputs[19])
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
    An int8 SVDF in ``fake_quant`` mode runs TFLite's integer kernel (:func:`_svdf_integer`)."""
    x, feature_weights, time_weights, bias, state = inputs[:5]
    rank = int(op.options["rank"])
    filters, memory = time_weights.shape
    if filters is None or memory is None or filters % rank:
        raise ctx.fail(f"time weights of shape {time_weights.shape} do not fit rank {rank}")
    data = ctx.input_tensor(0)
    integer = data is not None and data.dtype in ("int8", "uint8", "int16")
    if integer and _fake_quant_mode(ctx):
        return [_svdf_integer(ctx, op, x, state, rank, int(filters), int(memory))]
    activation = _matmul(_hybrid_quantizer(ctx, op, 1)(x), feature_weights)  # [batch, filters]
    state = tf.reshape(state, [-1, filters, memory])
    state = tf.concat([state[:, :, 1:], activation[:, :, None]], axis=2)
    ctx.write_variable(4, tf.reshape(state, [-1, filters * memory]))
    per_filter = tf.reduce_sum(state * tf.cast(time_weights, state.dtype), axis=2)  # [batch, filters]
    y = tf.reduce_sum(tf.reshape(per_filter, [-1, filters // rank, rank]), axis=2)
    y = y if bias is None else y + bias
    # The integer kernel applies no activation (see _svdf_integer): neither does its float twin.
    return [y if integer else _svdf_activation(ctx, op, y)]


def _svdf_integer(ctx, op, x, state, rank: int, filters: int, memory: int):
    """TFLite's full-integer SVDF (``EvalIntegerSVDF``, tflite/kernels/internal/reference/svdf.h),
    exactly: int8 input and feature weights, int16 time weights and state, int32 bias.

    The feature product ``sum w_f * (x - zp_in)`` is rescaled by ``s_in * s_wf / s_state`` and
    clamped to int16 into the state's newest column; the time product over the int16 memory is
    summed over the rank, the bias added, rescaled by ``s_state * s_wt / s_out``, the output zero
    point added and clamped to int8. No activation is applied: the kernel requires RELU in the
    options but its integer path only clamps to the int8 range. Products are exact in float64
    (integers far below 2**53); the rescaling is TFLite's fixed-point multiply on int64."""
    from ..quant.fixed_point import effective_scale, multiply_by_quantized_multiplier, quantize_multiplier

    tensors = [ctx.input_tensor(p) for p in range(5)]
    x_t, wf_t, wt_t, bias_t, state_t = tensors
    output_t = ctx.output_tensor(0)
    wf, wt = ctx.constant(1), ctx.constant(2)
    if wf is None or wt is None or wf_t.dtype != "int8" or wt_t.dtype != "int16" or state_t.dtype != "int16":
        raise ctx.fail("an integer SVDF needs constant int8 feature weights, int16 time weights and an int16 state")
    if output_t.dtype != "int8" or any(t.quantization is None for t in (x_t, wf_t, wt_t, state_t, output_t)):
        raise ctx.fail("an integer SVDF needs quantization parameters on its input, weights, state and int8 output")

    def scale(t):
        return float(t.quantization.scales[0])

    def zero_point(t):
        return int(t.quantization.zero_points[0])

    s_state = scale(state_t)
    multiplier_1 = quantize_multiplier(effective_scale(scale(x_t), scale(wf_t), divisor=s_state))
    multiplier_2 = quantize_multiplier(effective_scale(s_state, scale(wt_t), divisor=scale(output_t)))
    x_int = tf.round(tf.cast(x, tf.float64) / scale(x_t))  # the input on its grid, less the zero point
    feature = tf.linalg.matmul(x_int, tf.constant(np.asarray(wf, np.float64).T))  # [batch, filters]
    newest = tf.clip_by_value(multiply_by_quantized_multiplier(tf.cast(feature, tf.int64), *multiplier_1), -32768, 32767)
    memory_int = tf.reshape(tf.round(tf.cast(state, tf.float64) / s_state), [-1, filters, memory])
    window = tf.concat([memory_int[:, :, 1:], tf.cast(newest, tf.float64)[:, :, None]], axis=2)
    ctx.write_variable(4, tf.cast(tf.reshape(window, [-1, filters * memory]) * s_state, tf.float32))
    per_filter = tf.reduce_sum(window * tf.constant(np.asarray(wt, np.float64)), axis=2)  # [batch, filters]
    total = tf.reduce_sum(tf.reshape(per_filter, [-1, filters // rank, rank]), axis=2)
    bias = ctx.constant(3)
    if bias is not None:
        total = total + tf.constant(np.asarray(bias, np.float64))
    rescaled = multiply_by_quantized_multiplier(tf.cast(total, tf.int64), *multiplier_2) + zero_point(output_t)
    q = tf.clip_by_value(rescaled, -128, 127)
    return tf.cast(tf.cast(q - zero_point(output_t), tf.float64) * scale(output_t), tf.float32)
