"""DEQUANTIZE and DENSIFY.

Both fold at load time when their input is constant (float16 or int8 weights, sparse
weights): ``graph.py`` runs the folder in numpy and the result becomes a weight. At run time
DEQUANTIZE widens float16 and dequantizes integer tensors with the parameters in the file.
"""

from __future__ import annotations

import numpy as np

from ..quantization import dequantize_array, dequantize_tensor
from ..sparsity import densify
from .registry import register


def _fold_dequantize(ctx, op, values):
    return [dequantize_array(values[0], ctx.input_tensor(0).quantization)]


def _fold_densify(ctx, op, values):
    tensor = ctx.input_tensor(0)
    where = f"{ctx.model.source}: subgraph {ctx.subgraph.index} tensor {tensor.name!r}"
    if tensor.sparsity is None:
        return [np.asarray(values[0])]
    return [densify(np.asarray(values[0]), tensor.shape, tensor.sparsity, where)]


@register("DEQUANTIZE", max_version=5, folder=_fold_dequantize)
def build_dequantize(ctx, op, inputs):
    return [dequantize_tensor(inputs[0], ctx.input_tensor(0).quantization)]


@register("DENSIFY", max_version=1, folder=_fold_densify)
def build_densify(ctx, op, inputs):
    raise ctx.fail("DENSIFY needs a constant sparse input; this one is computed at run time")
