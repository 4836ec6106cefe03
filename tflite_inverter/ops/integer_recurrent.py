"""TFLite's full-integer recurrent kernels, emulated exactly for ``fake_quant`` mode: the 8x8_16
LSTM (``LstmStepInteger8x8_16`` in tflite/kernels/lstm_eval.cc, with CIFG, peepholes, projection and
layer norm) and the integer SVDF (``EvalIntegerSVDF``, tflite/kernels/internal/reference/svdf.h).

The graph carries quantized activations as real values: each emulation takes its operands back
to their integers (exactly, they lie on their grids), computes as the kernel does (integer
products exact in float64, rescaling in int64 with :mod:`tflite_inverter.quant.fixed_point`,
gemmlowp's int16 sigmoid/tanh as tables) and returns real values on the output's grid. Helpers of
:mod:`tflite_inverter.ops.recurrent`; no builder is registered here.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

class IntegerLstm:
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
    scales and the gate bias is added by the integer layer norm (:func:`integer_layer_norm`),
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

        # int16 tables (128 KB each in the graph), widened after the lookup
        self.sigmoid = tf.constant(gemmlowp_logistic_table(3))
        self.tanh = tf.constant(gemmlowp_tanh_table(3))
        self.cell_tanh = tf.constant(gemmlowp_tanh_table(self.cell_tanh_bits))
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
            gate = integer_layer_norm(gate, *self.norms[k])
        return lookup(activation, gate)

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
        tanh_c = lookup(self.cell_tanh, c)
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


def integer_layer_norm(gate, coefficients, bias, multiplier, variance_guard):
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


def lookup(table, raw):
    """gemmlowp's logistic or tanh of int16 values (in int64), from its table (quant/fixed_point.py)."""
    return tf.cast(tf.gather(table, raw + 32768), tf.int64)


def svdf_integer(ctx, op, x, state, rank: int, filters: int, memory: int):
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
