"""The pre-build scan: one error listing every unsupported operator, before anything is built."""

from __future__ import annotations

import warnings

from .. import ir
from ..errors import UnsupportedOp, UnsupportedOpsError
from ..ops import registry
from ..passes.fold import foldable as can_fold
from ..quant.grids import is_quantized_activation
from .context import output_name
from .passthrough import Passthrough


def check_supported(model: ir.Model, *, strict: bool = False, main_operators: frozenset[int] | None = None,
                    passthrough: "Passthrough | None" = None) -> None:
    """Raise one :class:`UnsupportedOpsError` listing every unsupported op, before building
    (in the main subgraph, only ``main_operators`` when the model is cut). Custom ops that
    ``passthrough`` covers are not unsupported: they become opaque nodes."""
    problems: dict[str, UnsupportedOp] = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            if sg.index == 0 and main_operators is not None and op.index not in main_operators:
                continue
            spec = registry.lookup(op.opcode)
            location = f"subgraph {sg.index} operator {op.index}, output {output_name(sg, op)!r}"
            if passthrough is not None and passthrough.covers(op):
                if (refusal := passthrough.refusal(sg, op)) is not None:
                    problems.setdefault(op.opcode, UnsupportedOp(location, refusal)).count += 1
                continue
            if spec is None:
                key, reason = op.opcode, "no builder registered"
                if op.is_custom:
                    reason = "custom operator with no registered builder (see tflite_inverter.register_custom)"
            elif spec.validator is not None and (refusal := spec.validator(op)) is not None:
                key, reason = op.opcode, refusal
            elif op.version > spec.max_version:
                key = f"{op.opcode} v{op.version}"
                reason = f"op version {op.version} is above the highest tested version {spec.max_version}"
                if not strict:
                    warnings.warn(f"{model.source}: {location}: {op.opcode} {reason}", stacklevel=3)
                    continue
            else:
                continue
            problems.setdefault(key, UnsupportedOp(location, reason)).count += 1
        constant = {t.index for t in sg.tensors if t.data is not None}
        foldable = {i for op in sg.operators if can_fold(sg, op, constant) for i in op.outputs}
        for tensor in sg.tensors:
            if tensor.index in foldable:
                continue
            if is_quantized_activation(tensor) and tensor.quantization.per_channel:
                key = "per-channel quantized activations"
                reason = "an activation quantized per channel (TFLite kernels quantize activations per tensor)"
                problems.setdefault(key, UnsupportedOp(f"subgraph {sg.index} tensor {tensor.name!r}", reason)).count += 1
    if problems:
        raise UnsupportedOpsError(model.source, problems)
