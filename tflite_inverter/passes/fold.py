"""Constant folding: operators whose inputs are all constant and that have a numpy folder
(DEQUANTIZE of float16 / int8 weights, DENSIFY of sparse weights) are computed at load.

Their outputs become constant tensors (``data`` set) and the operators leave the subgraph; the
remaining operators keep their indices (:attr:`ir.Operator.index`), which name them in errors,
reports and cuts. Run after :func:`~tflite_inverter.passes.densify.densify_constants`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from .. import ir
from ..errors import TfliteInverterError, with_cause
from ..quant.grids import dequantize_array
from .edit import with_subgraphs, with_tensors

# folder(subgraph, op, input values) -> output values, in numpy.
Folder = Callable[[ir.Subgraph, ir.Operator, Sequence[np.ndarray | None]], list[np.ndarray]]


def _fold_dequantize(sg: ir.Subgraph, op: ir.Operator, values: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    # Sparse inputs (block-sparse float16 FULLY_CONNECTED weights go straight into DEQUANTIZE)
    # arrive densified by the densify pass.
    return [dequantize_array(np.asarray(values[0]), sg.tensors[op.inputs[0]].quantization)]


def _fold_densify(sg: ir.Subgraph, op: ir.Operator, values: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    # The densify pass has already made the sparse constant dense: DENSIFY's output is that value.
    return [np.asarray(values[0])]


FOLDERS: dict[str, Folder] = {"DEQUANTIZE": _fold_dequantize, "DENSIFY": _fold_densify}


def foldable(sg: ir.Subgraph, op: ir.Operator, constant: set[int] | None = None) -> bool:
    """Whether ``op`` has a folder and only constant inputs (``constant``: indices known constant)."""
    present = [i for i in op.inputs if i is not None]
    known = constant if constant is not None else {t.index for t in sg.tensors if t.data is not None}
    return op.opcode in FOLDERS and bool(present) and all(i in known for i in present)


def fold_constants(model: ir.Model) -> ir.Model:
    """Fold every foldable operator of every subgraph; give empty constants (a zero-size tensor no
    operator computes, which the file stores without a buffer) their zeros."""
    subgraphs = {}
    for sg in model.subgraphs:
        produced = {i for op in sg.operators for i in op.outputs if i is not None} | set(sg.inputs)
        tensors: dict[int, ir.Tensor] = {}
        for t in sg.tensors:
            if (t.data is None and not t.is_variable and t.index not in produced and t.shape and 0 in t.shape
                    and t.dtype in ir.NUMPY_DTYPES):
                tensors[t.index] = dataclasses.replace(t, data=np.zeros(t.shape, ir.NUMPY_DTYPES[t.dtype]))
        constant = {t.index for t in sg.tensors if t.data is not None and not t.is_variable} | set(tensors)
        kept = []
        for op in sg.operators:
            if not foldable(sg, op, constant):
                kept.append(op)
                continue
            values = [None if i is None else (tensors.get(i) or sg.tensors[i]).data for i in op.inputs]
            try:
                outputs = FOLDERS[op.opcode](sg, op, values)
            except TfliteInverterError:
                raise
            except Exception as exc:  # a folder bug must name the operator
                raise with_cause(TfliteInverterError(f"{model.source}: subgraph {sg.index} operator {op.index} {op.opcode}: "
                                                     f"folding constants failed: {type(exc).__name__}: {exc}"), exc) from None
            for index, value in zip(op.outputs, outputs):
                if index is not None:
                    tensors[index] = dataclasses.replace(sg.tensors[index], data=value)
                    constant.add(index)
        if tensors or len(kept) != len(sg.operators):
            subgraphs[sg.index] = dataclasses.replace(with_tensors(sg, tensors), operators=tuple(kept))
    return with_subgraphs(model, subgraphs)
