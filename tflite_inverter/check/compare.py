"""Comparing two ``.tflite`` models on the same real-valued inputs (float vs int8, before vs after
re-quantization): per output, the error in real units and in quantization steps, and top-1
agreement for classifier-shaped outputs.

Each model runs in LiteRT in a subprocess; inputs are real values, quantized to each model's own
input grid where its input is integer, and outputs are dequantized before they are compared.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import ir
from ..display import html_block, html_lines, html_table, require_matplotlib, require_pandas, text_table
from ..errors import TfliteInverterError
from ..ir import NUMPY_DTYPES
from ..quant.grids import dequantize_array, is_quantized_activation
from ..reader import load
from .runner import run_reference, to_model_input


@dataclass
class OutputComparison:
    name: str
    shape: tuple[int, ...]
    max_abs_error: float  # real units
    mean_abs_error: float
    magnitude: float  # max |a|
    step: float | None  # the coarser quantization step of the two outputs, if any
    max_steps: float | None  # max_abs_error / step
    within_one_step: float | None
    top1_agreement: float | None  # classifier-shaped outputs [N, classes]
    # Per input row, (a's top-1 class, b's), named by the label file of a's TFLite metadata (or b's).
    top1_classes: list[tuple[str, str]] | None = None


@dataclass
class TensorComparison:
    """One intermediate tensor present in both models (matched by name), in real units."""

    name: str
    opcode_a: str
    opcode_b: str
    max_abs_error: float
    mean_abs_error: float
    magnitude: float
    step: float | None
    max_steps: float | None


@dataclass
class CompareReport:
    a: str
    b: str
    samples: int
    outputs: list[OutputComparison] = field(default_factory=list)
    tensors: list[TensorComparison] = field(default_factory=list)  # per_tensor=True: largest error first

    random_inputs: bool = False  # the inputs were seeded random values, not real data

    def to_dict(self) -> dict:
        return asdict(self)

    _HEADERS = ("output", "shape", "max abs", "mean abs", "magnitude", "step", "max steps", "<=1 step", "top-1")

    def _inputs_label(self) -> str:
        return f"{self.samples} random inputs" if self.random_inputs else f"{self.samples} inputs"

    def _rows(self) -> list[tuple]:
        def fmt(value, spec):
            return format(value, spec) if value is not None else "-"

        top1_label = " (random inputs)" if self.random_inputs else ""
        return [(o.name, "x".join(map(str, o.shape)) or "scalar", f"{o.max_abs_error:.4g}", f"{o.mean_abs_error:.4g}",
                 f"{o.magnitude:.4g}", fmt(o.step, ".4g"), fmt(o.max_steps, ".2f"), fmt(o.within_one_step, ".2%"),
                 fmt(o.top1_agreement, ".0%") + (top1_label if o.top1_agreement is not None else ""))
                for o in self.outputs]

    def _tensor_rows(self, limit: int = 15) -> list[tuple]:
        return [(t.opcode_a, t.name, f"{t.max_abs_error:.4g}", f"{t.max_abs_error / max(t.magnitude, 1e-12):.2%}",
                 f"{t.max_steps:.1f}" if t.max_steps is not None else "-") for t in self.tensors[:limit]]

    def _notes(self, shown: int = 8) -> list[str]:
        notes = []
        for o in self.outputs:
            if o.top1_classes:
                pairs = [f"{x!r}" if x == y else f"{x!r} / {y!r} (differs)" for x, y in o.top1_classes[:shown]]
                more = f", ... ({len(o.top1_classes)} in all)" if len(o.top1_classes) > shown else ""
                notes.append(f"top-1 of {o.name} per input (a / b where they differ): {', '.join(pairs)}{more}")
        if self.random_inputs and any(o.top1_agreement is not None for o in self.outputs):
            notes.append("top-1 agreement on random inputs says little about accuracy: give real data (inputs=, --data)")
        return notes

    def table(self) -> str:
        lines = [f"compare {self.b} against {self.a} ({self._inputs_label()})",
                 text_table(self._HEADERS, self._rows(), [False, False] + [True] * 7)]
        if self.tensors:
            lines.append(f"per tensor: {len(self.tensors)} tensors matched; largest errors first "
                         "(relative = max abs error / max |a|):")
            lines.extend("  " + line for line in text_table(("opcode", "tensor", "max abs", "relative", "steps"),
                                                             self._tensor_rows(), [False, False, True, True, True]).splitlines())
        lines.extend(self._notes())
        return "\n".join(lines)

    __str__ = table

    def __repr__(self) -> str:
        worst = max(self.outputs, key=lambda o: o.max_steps or 0.0, default=None)
        detail = f"; largest error {worst.max_abs_error:.4g} on {worst.name!r}" if worst is not None else ""
        return f"<CompareReport {self.b} against {self.a}: {len(self.outputs)} outputs on {self._inputs_label()}{detail}>"

    def to_pandas(self, what: str | None = None):
        """A DataFrame of the per-tensor rows (default after ``per_tensor=True``) or of the outputs."""
        pandas = require_pandas()
        what = what or ("tensors" if self.tensors else "outputs")
        if what not in ("tensors", "outputs"):
            raise TfliteInverterError(f"to_pandas: what must be 'tensors' or 'outputs', not {what!r}")
        frame = pandas.DataFrame([asdict(r) for r in (self.tensors if what == "tensors" else self.outputs)])
        if what == "tensors" and len(frame):
            frame["relative_error"] = frame["max_abs_error"] / frame["magnitude"].clip(lower=1e-12)
        return frame

    def plot(self, ax: Any = None, limit: int = 30):
        """The ``limit`` tensors with the largest errors: in quantization steps where both are
        quantized, else relative to max |a|; returns the matplotlib figure. Needs ``per_tensor=True``."""
        if not self.tensors:
            raise TfliteInverterError("plot() shows the per-tensor comparison: compare with per_tensor=True")
        plt = require_matplotlib()
        shown = self.tensors[:limit]
        steps = all(t.max_steps is not None for t in shown)
        values = [t.max_steps if steps else t.max_abs_error / max(t.magnitude, 1e-12) for t in shown]
        figure = ax.figure if ax is not None else plt.figure(figsize=(9, 0.25 * len(shown) + 1.2))
        ax = ax or figure.add_subplot(1, 1, 1)
        labels = [t.name if len(t.name) <= 60 else "..." + t.name[-57:] for t in shown]
        ax.barh(range(len(shown)), values, color="#c62828")
        ax.set_yticks(range(len(shown)), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("max error (quantization steps)" if steps else "max abs error / max |a|")
        ax.set_title(f"largest per-tensor errors, {self.b} against {self.a} ({self._inputs_label()})", fontsize=9)
        return figure

    def _repr_html_(self) -> str:
        tensors = html_table(("opcode", "tensor", "max abs", "relative", "steps"), self._tensor_rows(),
                             caption=f"per tensor: {len(self.tensors)} matched, largest errors first") if self.tensors else ""
        return html_block(f"compare {self.b} against {self.a} ({self._inputs_label()})",
                          html_table(self._HEADERS, self._rows()), html_lines(self._notes()), tensors)


def _io(model: ir.Model) -> dict:
    if model.signatures:
        sig = model.signatures[0]
        sg = model.subgraphs[sig.subgraph_index]
        return dict(signature=sig.key, input_names=list(sig.inputs), input_tensors=list(sig.inputs.values()),
                    output_names=list(sig.outputs), output_tensors=list(sig.outputs.values()), subgraph=sg)
    sg = model.main
    return dict(signature=None, input_names=[sg.tensors[i].name for i in sg.inputs], input_tensors=list(sg.inputs),
                output_names=[sg.tensors[i].name for i in sg.outputs], output_tensors=list(sg.outputs), subgraph=sg)


def _real(value: np.ndarray, tensor: ir.Tensor) -> np.ndarray:
    if is_quantized_activation(tensor):
        return dequantize_array(value, tensor.quantization).astype(np.float64)
    return np.asarray(value, np.float64)


def _step(tensor: ir.Tensor) -> float | None:
    return float(tensor.quantization.scales[0]) if is_quantized_activation(tensor) else None


def random_real_inputs(tensors: Sequence[ir.Tensor], count: int, seed: int = 0,
                       float_range: tuple[float, float] = (-1.0, 1.0)) -> list[list[np.ndarray]]:
    """Real-valued inputs: the representable range of quantized inputs, ``float_range`` otherwise."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        sample = []
        for tensor in tensors:
            shape = tuple(1 if d < 0 else d for d in tensor.shape_signature)
            low, high = float_range
            if is_quantized_activation(tensor):
                q = tensor.quantization
                info = np.iinfo(NUMPY_DTYPES[tensor.dtype])
                low = (info.min - int(q.zero_points[0])) * float(q.scales[0])
                high = (info.max - int(q.zero_points[0])) * float(q.scales[0])
            sample.append(rng.uniform(low, high, size=shape).astype(np.float32))
        samples.append(sample)
    return samples


def _run(path: str, model: ir.Model, samples: list[list[np.ndarray]], all_tensors: bool = False):
    """Outputs per sample (real values); with ``all_tensors``, also {tensor name: [real value per sample]}
    of every tensor an operator computes (read from the builtin kernels, which keep them all)."""
    io = _io(model)
    sg = io.pop("subgraph")
    tensors = [sg.tensors[i] for i in io["input_tensors"]]
    draws = [[to_model_input(v, t) for v, t in zip(sample, tensors)] for sample in samples]
    if all_tensors and io["signature"] is not None and model.signatures[0].subgraph_index != 0:
        raise TfliteInverterError(f"{path}: per-tensor comparison covers models whose signature is subgraph 0")
    if all_tensors:
        io = dict(io, signature=None, input_names=[sg.tensors[i].name for i in io["input_tensors"]])
    resolver = "builtin_without_default_delegates" if all_tensors else "default"
    results = run_reference(path, draws, resolvers=(resolver,), all_tensors=all_tensors, **io)
    outputs = [sg.tensors[i] for i in io["output_tensors"]]
    per_sample = [[_real(results[f"{resolver}/{d}/out/{i}"], t) for i, t in enumerate(outputs)] for d in range(len(samples))]
    if not all_tensors:
        return per_sample
    producers = {out: op.opcode for op in sg.operators for out in op.outputs if out is not None}
    by_name = {}
    for index, opcode in producers.items():
        keys = [f"{resolver}/{d}/tensor/{index}" for d in range(len(samples))]
        if all(k in results for k in keys):
            by_name[sg.tensors[index].name] = (opcode, sg.tensors[index], [_real(results[k], sg.tensors[index]) for k in keys])
    return per_sample, by_name


def match_tensor_names(names_a: Sequence[str], names_b: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs of intermediate tensors, ``a``'s name first. The same name matches (a float model and
    its int8 conversion keep the converter's names). A model re-converted from an inversion names
    its tensors after the inverted graph's op scopes, which are the original's tensor names made
    TensorFlow-safe (``graph.sanitize_name``), plus the TF op (``.../Relu``), several of them joined
    by ``;`` where the converter fused ops. Such a tensor matches the original tensor whose scope it
    carries; of several (a convolution and its activation), the last computed, which holds the value
    the original's tensor holds. ``names_b`` must be in computation order."""
    from ..names import sanitize_name

    pairs = [(name, name) for name in names_a if name in set(names_b)]
    matched = {a for a, _ in pairs}
    wanted = {sanitize_name(name): name for name in names_a if name not in matched}
    last: dict[str, str] = {}
    for name_b in names_b:
        for part in name_b.split(";"):
            scope = part.rsplit("/", 1)[0] if "/" in part else part
            if scope in wanted:
                last[wanted[scope]] = name_b
    return sorted(pairs + list(last.items()))


def _output_labels(models: Sequence[ir.Model], ios: Sequence[dict], positions: Sequence[int]) -> tuple[str, ...] | None:
    """The class names of an output from the first of ``models`` whose TFLite metadata has a label
    file for it (metadata describes the main subgraph's outputs, in its order)."""
    for model, io, position in zip(models, ios, positions):
        described = model.tflite_metadata
        if described is None or described.error or (model.signatures and model.signatures[0].subgraph_index != 0):
            continue
        index = io["output_tensors"][position]
        if index in model.main.outputs and model.main.outputs.index(index) < len(described.outputs):
            labels = described.outputs[model.main.outputs.index(index)].labels
            if labels:
                return labels
    return None


def _class_name(labels: Sequence[str], index: int) -> str:
    return labels[index] if 0 <= index < len(labels) else f"class {index}"


def _pair_outputs(io_a: dict, io_b: dict, paths: list[str]) -> list[tuple[str, int]]:
    """(``a``'s output name, the position of its counterpart among ``b``'s outputs), in ``a``'s
    order: by name when both models name the same outputs, else by position. Static shapes are
    checked here, before either model runs."""
    names_a, names_b = io_a["output_names"], io_b["output_names"]
    if sorted(names_a) == sorted(names_b) and len(set(names_a)) == len(names_a):
        pairs = [(name, names_b.index(name)) for name in names_a]
    else:
        pairs = list(zip(names_a, range(len(names_a))))
    for (name, j), index_a in zip(pairs, io_a["output_tensors"]):
        shape_a = io_a["subgraph"].tensors[index_a].shape_signature
        shape_b = io_b["subgraph"].tensors[io_b["output_tensors"][j]].shape_signature
        if len(shape_a) != len(shape_b) or any(x != y and x >= 0 and y >= 0 for x, y in zip(shape_a, shape_b)):
            raise TfliteInverterError(f"{paths[1]}: output {names_b[j]!r} (paired with {paths[0]}'s output {name!r}) has "
                                      f"shape {list(shape_b)}, not {list(shape_a)}")
    return pairs


def compare(a: str | os.PathLike | bytes, b: str | os.PathLike | bytes, *, inputs: Sequence[Sequence[np.ndarray]] | None = None,
            draws: int = 3, seed: int = 0, float_range: tuple[float, float] = (-1.0, 1.0),
            per_tensor: bool = False) -> CompareReport:
    """Run ``a`` and ``b`` (``.tflite`` paths or bytes) on the same real-valued inputs and compare outputs.

    ``inputs`` is a list of samples (each a list of arrays in ``a``'s input order, real values);
    without it, ``draws`` seeded random samples are used. Outputs are paired by name when both
    models name the same outputs (else by position), and their shapes checked before anything runs.
    ``per_tensor=True`` also compares every intermediate tensor the two models share (by name, or by
    the original's name carried in a re-converted model's op scopes: :func:`match_tensor_names`),
    largest error first: the per-layer report that shows where accuracy is lost.
    """
    with tempfile.TemporaryDirectory(prefix="tflite_inverter_compare_") as work:
        paths = []
        for label, source in (("a", a), ("b", b)):
            if isinstance(source, (bytes, bytearray)):
                path = os.path.join(work, f"{label}.tflite")
                Path(path).write_bytes(bytes(source))
                paths.append(path)
            else:
                paths.append(str(source))
        model_a, model_b = load(paths[0]), load(paths[1])
        io_a, io_b = _io(model_a), _io(model_b)
        if len(io_a["input_tensors"]) != len(io_b["input_tensors"]) or len(io_a["output_tensors"]) != len(io_b["output_tensors"]):
            raise TfliteInverterError(f"{paths[0]} and {paths[1]} have different numbers of inputs or outputs")
        pairs = _pair_outputs(io_a, io_b, paths)
        input_tensors = [io_a["subgraph"].tensors[i] for i in io_a["input_tensors"]]
        samples = [list(s) for s in inputs] if inputs is not None else random_real_inputs(input_tensors, draws, seed, float_range)
        out_a, out_b = _run(paths[0], model_a, samples, per_tensor), _run(paths[1], model_b, samples, per_tensor)
        if per_tensor:
            (out_a, tensors_a), (out_b, tensors_b) = out_a, out_b
    report = CompareReport(a=str(paths[0]) if not isinstance(a, bytes) else "<bytes>",
                           b=str(paths[1]) if not isinstance(b, bytes) else "<bytes>", samples=len(samples),
                           random_inputs=inputs is None)
    for i, (name, j) in enumerate(pairs):
        tensor_a = io_a["subgraph"].tensors[io_a["output_tensors"][i]]
        tensor_b = io_b["subgraph"].tensors[io_b["output_tensors"][j]]
        values_a = np.stack([o[i] for o in out_a])
        values_b = np.stack([o[j] for o in out_b])
        if values_a.shape != values_b.shape:
            raise TfliteInverterError(f"output {name}: shapes {values_a.shape[1:]} and {values_b.shape[1:]} differ")
        diff = np.abs(values_a - values_b)
        steps = [s for s in (_step(tensor_a), _step(tensor_b)) if s]
        step = max(steps) if steps else None
        top1 = classes = None
        if values_a.ndim == 3 and values_a.shape[-1] > 1:  # samples x batch x classes
            top1 = float(np.mean(values_a.argmax(-1) == values_b.argmax(-1)))
            labels = _output_labels((model_a, model_b), (io_a, io_b), (i, j))
            if labels is not None:
                classes = [(_class_name(labels, int(x)), _class_name(labels, int(y)))
                           for x, y in zip(values_a.argmax(-1).ravel(), values_b.argmax(-1).ravel())]
        report.outputs.append(OutputComparison(
            name=name, shape=tuple(values_a.shape[1:]), max_abs_error=float(diff.max()), mean_abs_error=float(diff.mean()),
            magnitude=float(np.abs(values_a).max()), step=step,
            max_steps=float(diff.max() / step) if step else None,
            within_one_step=float(np.mean(diff <= step * (1 + 1e-4))) if step else None, top1_agreement=top1,
            top1_classes=classes,
        ))
    if per_tensor:
        for name, name_b in match_tensor_names(list(tensors_a), list(tensors_b)):
            opcode_a, tensor_a, values_a = tensors_a[name]
            opcode_b, tensor_b, values_b = tensors_b[name_b]
            if any(np.shape(x) != np.shape(y) for x, y in zip(values_a, values_b)):
                continue
            diff = np.abs(np.stack(values_a) - np.stack(values_b))
            steps = [s for s in (_step(tensor_a), _step(tensor_b)) if s]
            step = max(steps) if steps else None
            report.tensors.append(TensorComparison(
                name=name, opcode_a=opcode_a, opcode_b=opcode_b, max_abs_error=float(diff.max()),
                mean_abs_error=float(diff.mean()), magnitude=float(np.abs(np.stack(values_a)).max()), step=step,
                max_steps=float(diff.max() / step) if step else None))
        report.tensors.sort(key=lambda t: t.max_abs_error / max(t.magnitude, 1e-12), reverse=True)
    return report
