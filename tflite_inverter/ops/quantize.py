"""DEQUANTIZE and DENSIFY.

Both fold at load time when their input is constant (float16 or int8 weights, sparse
weights): ``graph.py`` runs the folder in numpy and the result becomes a weight. At run time
DEQUANTIZE widens float16; integer activations are already real-valued in the graph.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..quantization import dequantize_array
from ..sparsity import densify
from .registry import register


def _fold_dequantize(ctx, op, values):
    # A sparse constant input (block-sparse float16 FULLY_CONNECTED weights) is densified by
    # TFLite's DEQUANTIZE itself, with no DENSIFY before it.
    value = _fold_densify(ctx, op, values)[0] if ctx.input_tensor(0).sparsity is not None else values[0]
    return [dequantize_array(value, ctx.input_tensor(0).quantization)]


def _fold_densify(ctx, op, values):
    tensor = ctx.input_tensor(0)
    where = f"{ctx.model.source}: subgraph {ctx.subgraph.index} tensor {tensor.name!r}"
    if tensor.sparsity is None:
        return [np.asarray(values[0])]
    return [densify(np.asarray(values[0]), tensor.shape, tensor.sparsity, where)]


@register("DEQUANTIZE", max_version=5, folder=_fold_dequantize)
def build_dequantize(ctx, op, inputs):
    # Quantized activations already travel as real values (graph.py); float16 widens.
    return [tf.cast(inputs[0], tf.float32)]


@register("QUANTIZE", max_version=3)
def build_quantize(ctx, op, inputs):
    # In the real-valued graph, QUANTIZE (float -> int, or int -> int requantization) keeps the value;
    # graph.py snaps the output to its grid in fake_quant mode, as for every quantized activation.
    if ctx.output_dtype(0) != tf.float32:
        raise ctx.fail(f"QUANTIZE to {ctx.output_tensor(0).dtype} without quantization parameters")
    return [tf.cast(inputs[0], tf.float32)]


@register("DENSIFY", max_version=1, folder=_fold_densify)
def build_densify(ctx, op, inputs):
    raise ctx.fail("DENSIFY needs a constant sparse input; this one is computed at run time")
