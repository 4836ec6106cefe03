"""DEQUANTIZE, QUANTIZE and DENSIFY.

Both fold at load time when their input is constant (float16 or int8 weights, sparse
weights): ``graph.py`` runs the folder in numpy and the result becomes a weight. At run time
DEQUANTIZE widens float16; integer activations are already real-valued in the graph.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..quantization import dequantize_array
from .registry import register


def _fold_dequantize(ctx, op, values):
    # Sparse inputs (block-sparse float16 FULLY_CONNECTED weights go straight into DEQUANTIZE)
    # arrive densified: graph.py densifies every sparse constant at load.
    return [dequantize_array(values[0], ctx.input_tensor(0).quantization)]


def _fold_densify(ctx, op, values):
    # graph.py has already densified the sparse constant; DENSIFY's output is that dense value.
    return [np.asarray(values[0])]


@register("DEQUANTIZE", max_version=3, folder=_fold_dequantize)
def build_dequantize(ctx, op, inputs):
    # Quantized activations already travel as real values (graph.py); float16 widens.
    return [tf.cast(inputs[0], tf.float32)]


@register("QUANTIZE", max_version=2)
def build_quantize(ctx, op, inputs):
    # In the real-valued graph, QUANTIZE (float -> int, or int -> int requantization) keeps the value;
    # graph.py snaps the output to its grid in fake_quant mode, as for every quantized activation.
    if ctx.output_dtype(0) != tf.float32:
        raise ctx.fail(f"QUANTIZE to {ctx.output_tensor(0).dtype} without quantization parameters")
    return [tf.cast(inputs[0], tf.float32)]


@register("DENSIFY", max_version=1, folder=_fold_densify)
def build_densify(ctx, op, inputs):
    raise ctx.fail("DENSIFY needs a constant sparse input; this one is computed at run time")
