"""BATCH_MATMUL: a batched matrix product with broadcast batch dimensions.

``adj_x`` / ``adj_y`` transpose the last two axes of an operand (TFLite has no complex
BATCH_MATMUL, so the adjoint is a transpose). Batch dimensions broadcast like NumPy's
``matmul``, which ``tf.linalg.matmul`` (BatchMatMulV3) does too. A hybrid model (float LHS,
constant int8 RHS) gets its LHS quantized on the fly by ``build/module.py`` (``HYBRID_INPUTS``): per row
of the product, which with ``adj_x`` is per column of the stored LHS (the kernel transposes it first).
"""

from __future__ import annotations

import tensorflow as tf

from .registry import register


@register("BATCH_MATMUL", max_version=4)
def build_batch_matmul(ctx, op, inputs):
    x, y = inputs[0], inputs[1]
    o = op.options
    dtype = ctx.output_dtype(0)
    x, y = tf.cast(x, dtype), tf.cast(y, dtype)
    return [tf.linalg.matmul(x, y, transpose_a=bool(o.get("adj_x")), transpose_b=bool(o.get("adj_y")))]
