"""Per-tensor verification: every intermediate tensor of the inversion against LiteRT's (all
tensors preserved, builtin kernels without delegates), in operator order."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import ir
from ..errors import VerificationError
from .runner import run_reference
from .tolerance import compare_output
from .verify_report import TensorReport


def _verify_tensors(model_path: str, model: ir.Model, info: Any, candidate: Any, draws: list, ref_kwargs: dict,
                    rtol: float, notes: list[str]) -> list[TensorReport]:
    from ..build.inverted import InvertedModel
    from ..names import python_identifier
    from ..quant.grids import dequantize_array, is_quantized_activation

    if info.subgraph_index != 0:
        raise VerificationError("per-tensor verification covers signatures of subgraph 0")
    # A fresh inversion: state (variables, random-op counters) must start where the fresh interpreter's does.
    mode = candidate.quantized_mode if isinstance(candidate, InvertedModel) else "fake_quant"
    rescale = candidate.module.integer_rescale if isinstance(candidate, InvertedModel) else False
    inverted = InvertedModel(model, quantized=mode, stateless=True,  # each draw from reset state, as here in LiteRT
                             integer_rescale=rescale)
    sg = model.subgraphs[0]
    kwargs = dict(ref_kwargs, signature=None, all_tensors=True, sequence=False,
                  input_names=[sg.tensors[i].name for i in info.input_tensors])
    # XNNPACK fuses operators, so intermediate tensors are read from the builtin kernels.
    try:
        reference = run_reference(model_path, draws, resolvers=("builtin_without_default_delegates", "reference"), **kwargs)
        floors = True
    except VerificationError:
        reference = run_reference(model_path, draws, resolvers=("builtin_without_default_delegates",), **kwargs)
        floors = False
        notes.append("note: per-tensor comparison without noise floors (no reference kernels for this model)")
    keys = [python_identifier(n) for n in info.input_names]
    ours = [inverted.tensor_values(dict(zip(keys, values)), signature=info.key) for values in draws]
    reports = []
    for op in sg.operators:
        for index in op.outputs:
            if index is None or any(index not in o for o in ours):
                continue
            name = f"builtin_without_default_delegates/{{d}}/tensor/{index}"
            if any(name.format(d=d) not in reference for d in range(len(draws))):
                continue
            tensor = sg.tensors[index]
            ref = [reference[name.format(d=d)] for d in range(len(draws))]
            floor = [reference[f"reference/{d}/tensor/{index}"] for d in range(len(draws))] if floors else None
            step = None
            if is_quantized_activation(tensor):
                ref = [dequantize_array(r, tensor.quantization) for r in ref]
                floor = [dequantize_array(f, tensor.quantization) for f in floor] if floor else None
                step = float(tensor.quantization.scales[0])
            got = [o[index] for o in ours]
            if any(np.shape(r) != np.shape(g) for r, g in zip(ref, got)):
                reports.append(TensorReport(op.index, op.opcode, tensor.name, float("inf"), 0.0, 0.0, False, "shape"))
                continue
            result = compare_output(tensor.name, tensor, ref, got, floor, rtol, step)
            reports.append(TensorReport(op.index, op.opcode, tensor.name, result.max_abs_error, result.magnitude,
                                        result.tolerance, result.passed, result.unit))
    return reports
