"""What ``requantize`` returns: the report on a re-quantized model, and the last step every back end
shares (write the file, compare it with the reference, report)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import ir
from ..display import html_block, html_lines, html_table
from ..emit.atomic import write_bytes_atomic
from ..reader import load
from .request import EDGE_QUANTIZER_MODES, Request


@dataclass
class RequantizeReport:
    path: str
    mode: str
    size_bytes: int
    op_histogram: dict[str, int]
    float_ops: dict[str, int]  # ops computing in float in the new model (no integer accelerator for them)
    inputs: list[str]
    outputs: list[str]
    comparison: Any = None  # CompareReport against the reference .tflite, when there is one
    notes: list[str] = field(default_factory=list)
    float_reasons: dict[str, str] = field(default_factory=dict)  # opcode in float_ops -> why it stayed float

    def table(self) -> str:
        lines = [f"wrote {self.path} ({self.mode}, {self.size_bytes / 1e6:.2f} MB)",
                 "inputs:  " + "; ".join(self.inputs), "outputs: " + "; ".join(self.outputs),
                 "ops: " + ", ".join(f"{name} x{count}" for name, count in sorted(self.op_histogram.items()))]
        if self.mode not in ("float16", "dynamic_range") + EDGE_QUANTIZER_MODES:
            lines.append("ops left in float: " + (", ".join(f"{k} x{v}" for k, v in sorted(self.float_ops.items())) or "none"))
            lines.extend(f"  {k}: {reason}" for k, reason in sorted(self.float_reasons.items()))
        if self.comparison is not None:
            lines.append(self.comparison.table())
        lines.extend(self.notes)
        return "\n".join(lines)

    __str__ = table

    def __repr__(self) -> str:
        floats = sum(self.float_ops.values())
        return (f"<RequantizeReport {self.path} ({self.mode}, {self.size_bytes / 1e6:.2f} MB, "
                f"{sum(self.op_histogram.values())} ops, {floats} in float)>")

    def _repr_html_(self) -> str:
        io = html_table(("", "tensor"), [("input", t) for t in self.inputs] + [("output", t) for t in self.outputs])
        ops = html_table(("operator", "count", "in float"), [(name, count, self.float_ops.get(name, 0))
                                                            for name, count in sorted(self.op_histogram.items())])
        comparison = self.comparison._repr_html_() if self.comparison is not None else ""
        return html_block(f"wrote {self.path} ({self.mode}, {self.size_bytes / 1e6:.2f} MB)", io, ops, comparison,
                          html_lines(self.notes))


def float_ops(model: ir.Model) -> Counter:
    """Operators that read or write float tensors computed at run time (QUANTIZE/DEQUANTIZE at the
    edges excluded): these will not run on an integer-only accelerator."""
    counts: Counter = Counter()
    for sg in model.subgraphs:
        for op in sg.operators:
            if op.opcode in ("QUANTIZE", "DEQUANTIZE"):
                continue
            tensors = [sg.tensors[i] for i in (*op.inputs, *op.outputs) if i is not None]
            if any(t.dtype in ("float32", "float16") and t.data is None for t in tensors):
                counts[op.opcode] += 1
    return counts


def describe_io(model: ir.Model) -> tuple[list[str], list[str]]:
    sg = model.main
    return [sg.tensors[i].describe() for i in sg.inputs], [sg.tensors[i].describe() for i in sg.outputs]


# MediaPipe custom operators stock LiteRT has no kernel for (Convolution2DTransposeBias runs: XNNPACK has it)
NO_LITERT_KERNEL = {"CUSTOM:Landmarks2TransformMatrix", "CUSTOM:TransformLandmarks", "CUSTOM:TransformTensorBilinear",
                    "CUSTOM:MaxPoolingWithArgmax2D", "CUSTOM:MaxUnpooling2D"}


def runs_in_litert(model: ir.Model) -> bool:
    """False for models with a custom operator LiteRT cannot run (the comparison is then skipped, said so)."""
    return not any(op.opcode in NO_LITERT_KERNEL for sg in model.subgraphs for op in sg.operators)


def written_report(data: bytes, out_path: Path, request: Request, *, reference: str | None, samples: Any,
                   notes: list[str], reasons: Callable[[dict[str, int]], dict[str, str]] | None = None,
                   mode: str | None = None, count_float: bool = True, model: ir.Model | None = None) -> RequantizeReport:
    """``data`` written to ``out_path`` (atomically), compared with ``reference`` on ``samples`` (or
    seeded inputs) unless ``request.compare`` is off or LiteRT cannot run it, and reported;
    ``reasons`` says why each op left in float is (given the op counts of :func:`float_ops`, which
    ``count_float=False`` leaves empty). ``model``: ``data`` as read, when the caller has it."""
    path = write_bytes_atomic(out_path, data, overwrite=request.overwrite)
    model = model if model is not None else load(data)
    inputs, outputs = describe_io(model)
    comparison = None
    if reference is not None and request.compare:
        if runs_in_litert(load(reference)):
            from ..check.compare import compare as compare_models

            comparison = compare_models(reference, str(path), inputs=samples, draws=3)
        else:
            notes.append(f"not compared: LiteRT cannot run {reference} (custom operators)")
    left_float = dict(float_ops(model)) if count_float else {}
    return RequantizeReport(path=str(path), mode=mode or request.mode, size_bytes=len(data),
                            op_histogram=dict(model.op_histogram()), float_ops=left_float, inputs=inputs,
                            outputs=outputs, comparison=comparison, notes=notes,
                            float_reasons=reasons(left_float) if reasons is not None else {})
