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

import numpy as np

from .. import ir
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

    def to_dict(self) -> dict:
        return asdict(self)

    def table(self) -> str:
        lines = [f"compare {self.b} against {self.a} ({self.samples} inputs)",
                 f"{'output':36} {'max abs':>10} {'mean abs':>10} {'magnitude':>10} {'step':>10} {'max steps':>9} {'<=1 step':>8} {'top-1':>7}"]
        for o in self.outputs:
            def fmt(value, spec):
                return format(value, spec) if value is not None else "-"

            lines.append(f"{o.name[:36]:36} {o.max_abs_error:10.4g} {o.mean_abs_error:10.4g} {o.magnitude:10.4g} "
                         f"{fmt(o.step, '10.4g'):>10} {fmt(o.max_steps, '9.2f'):>9} {fmt(o.within_one_step, '8.2%'):>8} "
                         f"{fmt(o.top1_agreement, '7.0%'):>7}")
        if self.tensors:
            lines.append(f"per tensor: {len(self.tensors)} tensors matched; largest errors first "
                         "(relative = max abs error / max |a|):")
            for t in self.tensors[:15]:
                steps = f"{t.max_steps:8.1f} steps" if t.max_steps is not None else ""
                lines.append(f"  {t.opcode_a:22} {t.name[:48]:48} max abs {t.max_abs_error:10.4g} "
                             f"({t.max_abs_error / max(t.magnitude, 1e-12):7.2%}) {steps}")
        return "\n".join(lines)

    __str__ = table


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
                           b=str(paths[1]) if not isinstance(b, bytes) else "<bytes>", samples=len(samples))
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
        top1 = None
        if values_a.ndim == 3 and values_a.shape[-1] > 1:  # samples x batch x classes
            top1 = float(np.mean(values_a.argmax(-1) == values_b.argmax(-1)))
        report.outputs.append(OutputComparison(
            name=name, shape=tuple(values_a.shape[1:]), max_abs_error=float(diff.max()), mean_abs_error=float(diff.mean()),
            magnitude=float(np.abs(values_a).max()), step=step,
            max_steps=float(diff.max() / step) if step else None,
            within_one_step=float(np.mean(diff <= step * (1 + 1e-4))) if step else None, top1_agreement=top1,
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
