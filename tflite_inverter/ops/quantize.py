"""DEQUANTIZE, QUANTIZE and DENSIFY.

Both fold at load time when their input is constant (float16 or int8 weights, sparse
weights): the fold pass (:mod:`tflite_inverter.passes.fold`) computes them in numpy and the
result becomes a weight. At run time DEQUANTIZE widens float16; integer activations are already
real-valued in the graph.
"""

from __future__ import annotations

import tensorflow as tf

from .registry import register


@register("DEQUANTIZE", max_version=3)
def build_dequantize(ctx, op, inputs):
    # Quantized activations already travel as real values (build/); float16 widens.
    return [tf.cast(inputs[0], tf.float32)]


@register("QUANTIZE", max_version=2)
def build_quantize(ctx, op, inputs):
    # In the real-valued graph, QUANTIZE (float -> int, or int -> int requantization) keeps the value;
    # build/ snaps the output to its grid in fake_quant mode, as for every quantized activation.
    if ctx.output_dtype(0) != tf.float32:
        raise ctx.fail(f"QUANTIZE to {ctx.output_tensor(0).dtype} without quantization parameters")
    return [tf.cast(inputs[0], tf.float32)]


@register("DENSIFY", max_version=1)
def build_densify(ctx, op, inputs):
    raise ctx.fail("DENSIFY needs a constant sparse input; this one is computed at run time")
