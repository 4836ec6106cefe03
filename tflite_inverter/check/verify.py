"""Measuring an inverted model against the reference interpreter on the same inputs.

The original ``.tflite`` runs in LiteRT in a subprocess (it can crash on some models), once
with its default kernels and once with its reference kernels (``BUILTIN_REF``): how far those
two disagree is the output's *noise floor*. The candidate (an :class:`InvertedModel`, a
SavedModel, a frozen ``.pb`` with its JSON sidecar, or another ``.tflite``) runs on the same
seeded inputs. A float output passes when::

    max_abs_error <= max(rtol * max(1, max|reference|), 2 * noise_floor)

An integer output with quantization parameters passes within one quantization step (or twice
its noise floor, in steps).

A stateful model (variable tensors that its LSTM, RNN or SVDF kernels write back) is run twice:
each draw from reset state (a fresh interpreter; the candidate reset before each draw), and the
draws as one sequence of calls to one interpreter against one candidate reset once before the
first. Its outputs are reported for both, and it passes only if both match.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import ir
from ..display import (did_you_mean, figure_html, html_block, html_lines, html_status, html_table, require_matplotlib,
                       require_pandas, text_table)
from ..errors import TfliteInverterError, VerificationError
from ..logs import progress
from ..reader import load
from .runner import make_inputs, run_reference

DEFAULT_RTOL = 1e-4
_NUMPY_DTYPES = ir.NUMPY_DTYPES


@dataclass
class OutputReport:
    name: str
    tflite_tensor: str
    shape: tuple[int, ...]
    dtype: str
    max_abs_error: float
    max_rel_error: float
    mean_abs_error: float
    magnitude: float  # max |reference|
    noise_floor: float | None  # max |default kernels - reference kernels|
    tolerance: float
    passed: bool
    unit: str = "value"  # "value", or "LSB" for quantized integer outputs
    within_one_step: float | None = None  # quantized outputs: fraction of elements within 1 LSB


@dataclass
class TensorReport:
    """One intermediate tensor of a per-tensor verification."""

    operator: int
    opcode: str
    tensor: str
    max_abs_error: float
    magnitude: float
    tolerance: float
    passed: bool
    unit: str = "value"


@dataclass
class VerifyReport:
    model: str
    candidate: str
    signature: str
    draws: int
    outputs: list[OutputReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tensors: list[TensorReport] = field(default_factory=list)  # with per_tensor=True, in operator order
    # A model with several signatures verified without naming one: each signature's own report (the
    # rows above are theirs, prefixed "<signature>: ").
    by_signature: dict[str, "VerifyReport"] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.outputs) and all(o.passed for o in self.outputs)

    @property
    def first_divergence(self) -> TensorReport | None:
        """The first operator (in execution order) whose output diverges beyond tolerance."""
        return next((t for t in self.tensors if not t.passed), None)

    def to_dict(self) -> dict:
        result = asdict(self)
        result["passed"] = self.passed
        return result

    _HEADERS = ("output", "shape", "max abs", "mean abs", "max rel", "magnitude", "floor", "tolerance", "unit", "result")

    def _rows(self) -> list[tuple]:
        rows = []
        for o in self.outputs:
            unit = f"LSB ({o.within_one_step:.2%} within 1)" if o.unit == "LSB" and o.within_one_step is not None else o.unit
            rows.append((o.name, "x".join(map(str, o.shape)) or "scalar", f"{o.max_abs_error:.3g}", f"{o.mean_abs_error:.3g}",
                         f"{o.max_rel_error:.3g}", f"{o.magnitude:.4g}",
                         "n/a" if o.noise_floor is None else f"{o.noise_floor:.3g}", f"{o.tolerance:.3g}", unit,
                         "ok" if o.passed else "FAIL"))
        return rows

    def _title(self) -> str:
        if self.by_signature:
            keys = ", ".join(map(repr, self.by_signature))
            return f"verify {self.candidate} against {self.model} (signatures {keys}, {self.draws} draws each)"
        return f"verify {self.candidate} against {self.model} (signature {self.signature!r}, {self.draws} draws)"

    def _tensor_lines(self) -> list[str]:
        if not self.tensors:
            return []
        failing = [t for t in self.tensors if not t.passed]
        lines = [f"per tensor: {len(self.tensors)} intermediate tensors compared, {len(failing)} beyond tolerance"]
        first = self.first_divergence
        if first is not None:
            lines.append(f"first divergence: operator {first.operator} {first.opcode} -> {first.tensor!r}: max abs error "
                         f"{first.max_abs_error:.4g} {first.unit} (tolerance {first.tolerance:.3g}, magnitude {first.magnitude:.4g})")
        return lines

    def table(self) -> str:
        right = [False, False] + [True] * 6 + [False, False]
        lines = [self._title(), text_table(self._HEADERS, self._rows(), right)]
        lines.extend(self._tensor_lines())
        lines.extend(self.notes)
        lines.append("PASSED" if self.passed else "FAILED")
        return "\n".join(lines)

    __str__ = table

    def __repr__(self) -> str:
        ok = sum(o.passed for o in self.outputs)
        first = self.first_divergence
        diverges = f"; first divergence at operator {first.operator} {first.opcode}" if first is not None else ""
        return (f"<VerifyReport {'PASSED' if self.passed else 'FAILED'}: {ok}/{len(self.outputs)} outputs within "
                f"tolerance, {self.candidate} against {self.model}{diverges}>")

    def to_pandas(self, what: str | None = None):
        """A DataFrame of the per-tensor rows (``what="tensors"``, the default after ``per_tensor=True``)
        or of the outputs (``"outputs"``), with an ``error_over_tolerance`` column."""
        pandas = require_pandas()
        what = what or ("tensors" if self.tensors else "outputs")
        if what not in ("tensors", "outputs"):
            raise TfliteInverterError(f"to_pandas: what must be 'tensors' or 'outputs', not {what!r}")
        rows = [asdict(r) for r in (self.tensors if what == "tensors" else self.outputs)]
        frame = pandas.DataFrame(rows)
        if rows:
            frame["error_over_tolerance"] = [r["max_abs_error"] / r["tolerance"] if r["tolerance"] else float("inf")
                                             for r in rows]
        return frame

    def plot(self, ax: Any = None):
        """Per-tensor error over tolerance along the operator order (log scale), the tolerance line at
        1 and the first divergence marked; returns the matplotlib figure. Needs ``per_tensor=True``."""
        if not self.tensors:
            raise TfliteInverterError("plot() shows the per-tensor comparison: verify with per_tensor=True")
        plt = require_matplotlib()
        figure = ax.figure if ax is not None else plt.figure(figsize=(9, 3.2))
        ax = ax or figure.add_subplot(1, 1, 1)
        ratios = [max(t.max_abs_error / t.tolerance if t.tolerance else float("inf"), 1e-12) for t in self.tensors]
        ratios = [min(r, 1e12) for r in ratios]
        positions = list(range(len(self.tensors)))
        colours = ["#2e7d32" if t.passed else "#c62828" for t in self.tensors]
        ax.scatter(positions, ratios, c=colours, s=12)
        ax.plot(positions, ratios, color="#999999", linewidth=0.6)
        ax.axhline(1.0, color="#c62828", linestyle="--", linewidth=0.8, label="tolerance")
        ax.set_yscale("log")
        ax.set_xlabel("operator (execution order)")
        ax.set_ylabel("max abs error / tolerance")
        first = self.first_divergence
        if first is not None:
            at = self.tensors.index(first)
            ax.axvline(at, color="#c62828", linewidth=0.8)
            ax.annotate(f"first divergence: op {first.operator} {first.opcode}", (at, ratios[at]),
                        textcoords="offset points", xytext=(6, 8), color="#c62828", fontsize=8)
        ax.set_title(f"per-tensor error, {self.candidate}", fontsize=9)
        ax.legend(loc="upper left", fontsize=8)
        return figure

    def to_model_explorer(self, path: str | os.PathLike, model: Any = None, *, overwrite: bool = True) -> Path:
        """Write the per-tensor errors as a node-data overlay for Google's Model Explorer (JSON keyed by
        the operator node ids of its TFLite adapter); ``model``: the verified ``.tflite`` (default
        the report's). See :mod:`tflite_inverter.check.model_explorer`."""
        from .model_explorer import write_node_data

        return write_node_data(self, path, model, overwrite=overwrite)

    def _repr_html_(self) -> str:
        outputs = html_table(self._HEADERS, self._rows(), status=[o.passed for o in self.outputs])
        tensors = ""
        if self.tensors:
            shown = [t for t in self.tensors if not t.passed][:20] or self.tensors[:5]
            tensors = html_table(("operator", "opcode", "tensor", "max abs", "tolerance", "magnitude", "unit", "result"),
                                 [(t.operator, t.opcode, t.tensor, f"{t.max_abs_error:.3g}", f"{t.tolerance:.3g}",
                                   f"{t.magnitude:.4g}", t.unit, "ok" if t.passed else "FAIL") for t in shown],
                                 status=[t.passed for t in shown],
                                 caption="tensors beyond tolerance (first 20)" if not shown[0].passed else "tensors (first 5)")
        return html_block(self._title(), html_status(self.passed), outputs,
                          html_lines(self._tensor_lines() + list(self.notes)), tensors)


def quantization_step(subgraph: ir.Subgraph, index: int) -> float | None:
    """The grid step of an output, in the units of its values: 1 for a quantized integer output
    (compared in LSB), the input's scale for a float output made by DEQUANTIZE of a quantized tensor,
    ``None`` for a float output."""
    tensor = subgraph.tensors[index]
    q = tensor.quantization
    if q is not None and not q.per_channel and tensor.dtype in ("int8", "uint8", "int16", "int32"):
        return 1.0
    for op in subgraph.operators:
        if index in op.outputs and op.opcode == "DEQUANTIZE" and op.inputs[0] is not None:
            source = subgraph.tensors[op.inputs[0]]
            if source.quantization is not None and not source.quantization.per_channel and source.data is None:
                return float(source.quantization.scales[0])
    return None


def _to_grid(values: np.ndarray, tensor: ir.Tensor) -> np.ndarray:
    """Real values to the integers of a quantized tensor (a float candidate against an integer model)."""
    from ..quant.grids import quantize_array

    return quantize_array(values, tensor.quantization, tensor.dtype)


def compare_output(name: str, tensor: ir.Tensor, reference: list[np.ndarray], candidate: list[np.ndarray],
                   floor_runs: list[np.ndarray] | None, rtol: float, step: float | None = None) -> OutputReport:
    """Errors of one output over all draws. With a quantization ``step`` they are counted in steps
    (LSB) and the output passes within one step (or twice the noise floor)."""
    ref = np.stack([np.asarray(r) for r in reference])
    got = np.stack([np.asarray(c) for c in candidate])
    if ref.shape != got.shape:
        return OutputReport(name, tensor.name, tuple(ref.shape[1:]), tensor.dtype, float("inf"), float("inf"),
                            float("inf"), 0.0, None, 0.0, False)
    if ref.dtype.kind in "SUO" or got.dtype.kind in "SUO":  # strings: equal or not
        mismatched = float(np.mean(ref.astype(bytes) != got.astype(bytes))) if ref.size else 0.0
        return OutputReport(name, tensor.name, tuple(ref.shape[1:]), tensor.dtype, mismatched, mismatched, mismatched,
                            0.0, None, 0.0, mismatched == 0.0, unit="fraction of strings that differ")
    if np.issubdtype(ref.dtype, np.integer) and np.issubdtype(got.dtype, np.floating) and tensor.quantization is not None:
        got = _to_grid(got, tensor)
    unit_scale = step or 1.0
    ref64, got64 = ref.astype(np.float64) / unit_scale, got.astype(np.float64) / unit_scale
    same = (ref64 == got64) | (np.isnan(ref64) & np.isnan(got64))  # equal infinities and NaN count as equal
    with np.errstate(invalid="ignore"):
        diff = np.where(same, 0.0, np.abs(ref64 - got64))
    diff = np.where(np.isnan(diff), np.inf, diff)
    finite_ref = np.where(np.isfinite(ref64), np.abs(ref64), 0.0)
    magnitude = float(finite_ref.max()) if finite_ref.size else 0.0
    floor = None
    if floor_runs is not None:
        other = np.stack([np.asarray(r) for r in floor_runs]).astype(np.float64) / unit_scale
        # Only where both kernels give finite values: an infinity in one (float division by zero
        # saturates in the reference kernels) must not make the floor, and so the tolerance, infinite.
        finite = np.isfinite(ref64) & np.isfinite(other)
        with np.errstate(invalid="ignore"):
            floor = float(np.abs(ref64 - other)[finite].max()) if finite.any() else 0.0
    # Counting in steps, a float32 output far from zero carries rounding of its own (at 26,669 steps
    # one step reads as 1.0018): allow the float32 spacing of the magnitude.
    slack = magnitude * 2.0 ** -22 if step is not None else 0.0
    if step is not None:
        tolerance, unit = max(1.0, 2 * (floor or 0.0)), "LSB"
    elif ref.dtype.kind in "iub" and got.dtype.kind in "iub":
        # Indices, counts, shapes, random bits: exact (up to twice what LiteRT's own kernel sets
        # disagree by). A relative tolerance would let 32-bit values 400,000 apart pass.
        tolerance, unit = 2 * (floor or 0.0), "value"
    else:
        tolerance, unit = max(rtol * max(1.0, magnitude), 2 * (floor or 0.0)), "value"
    max_abs = float(diff.max()) if diff.size else 0.0
    # within one step by the rule that passes an output (float32 rounding of a dequantized output included)
    within = float(np.mean(diff <= 1.0 + 1e-4 + slack)) if step is not None and diff.size else None
    rel = diff / np.maximum(finite_ref, 1e-6)
    return OutputReport(
        name=name, tflite_tensor=tensor.name, shape=tuple(ref.shape[1:]), dtype=tensor.dtype,
        max_abs_error=max_abs, max_rel_error=float(rel.max()) if rel.size else 0.0,
        mean_abs_error=float(diff.mean()) if diff.size else 0.0, magnitude=magnitude,
        noise_floor=floor, tolerance=float(tolerance), passed=bool(max_abs <= tolerance * (1 + 1e-4) + slack), unit=unit,
        within_one_step=within,
    )


def _adapt_inputs(values: list[np.ndarray], tensors: Sequence[ir.Tensor], dtypes: Sequence[str]) -> list[np.ndarray]:
    """Dequantize integer inputs for a candidate that takes real values (``io="float"``)."""
    from ..quant.grids import dequantize_array

    adapted = []
    for value, tensor, dtype in zip(values, tensors, dtypes):
        if np.issubdtype(value.dtype, np.integer) and dtype.startswith("float") and tensor.quantization is not None:
            value = dequantize_array(value, tensor.quantization)
        adapted.append(value)
    return adapted


def _candidate_runner(candidate: Any, model: ir.Model, info: Any
                      ) -> tuple[str, Callable[[list[np.ndarray]], list[np.ndarray]], Callable[[], None] | None]:
    """A function mapping one draw's inputs (in signature order) to outputs (in signature order),
    and one that resets the candidate's state (``None`` when it keeps none)."""
    from ..build.inverted import InvertedModel
    from ..names import python_identifier

    input_keys = [python_identifier(n) for n in info.input_names]
    sg = model.subgraphs[info.subgraph_index]
    tensors = [sg.tensors[i] for i in info.input_tensors]
    if isinstance(candidate, InvertedModel):
        dtypes = [spec.dtype for spec in candidate.inputs(info.key)]

        def run_inverted(values):
            out = candidate.run(dict(zip(input_keys, _adapt_inputs(values, tensors, dtypes))), signature=info.key)
            return [out[name] for name in info.output_names]

        return "inverted model (in memory)", run_inverted, candidate.reset_state if candidate.stateful else None
    path = Path(candidate)
    if path.is_dir():
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        if info.key not in loaded.signatures:
            raise VerificationError(f"{path}: SavedModel has no signature {info.key!r} (has {sorted(loaded.signatures)})")
        function = loaded.signatures[info.key]
        specs = function.structured_input_signature[1]
        dtypes = [specs[k].dtype.name for k in input_keys]

        def run_saved_model(values):
            out = function(**{k: tf.constant(v) for k, v in zip(input_keys, _adapt_inputs(values, tensors, dtypes))})
            return [out[name].numpy() for name in info.output_names]

        def reset():
            loaded.reset_state()  # through ``loaded``: its variables live as long as it does

        reset = reset if hasattr(loaded, "reset_state") else None
        return f"SavedModel {path}", run_saved_model, reset
    if path.suffix == ".pb":
        return (f"frozen graph {path}", *_frozen_pb_runner(path, tensors))
    raise VerificationError(f"{path}: not a SavedModel directory, a .pb file or a .tflite file")


def _frozen_pb_runner(path: Path, tensors: Sequence[ir.Tensor]
                      ) -> tuple[Callable[[list[np.ndarray]], list[np.ndarray]], Callable[[], None] | None]:
    """The runner of a frozen pb and its reset. A stateful pb takes its states as inputs and returns
    them as outputs (the sidecar's ``state``): the runner feeds each call what the last one wrote."""
    import tensorflow as tf

    from ..emit.frozen_pb import sidecar_path

    sidecar = sidecar_path(path)
    if not sidecar.exists():
        raise VerificationError(f"{path}: its sidecar {sidecar.name} (input and output node names) is missing")
    description = json.loads(sidecar.read_text())
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(path.read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)
    feeds = [graph.get_tensor_by_name(i["tensor"]) for i in description["inputs"]]
    fetches = [graph.get_tensor_by_name(o["tensor"]) for o in description["outputs"]]

    dtypes = [i["dtype"] for i in description["inputs"]]
    states = description.get("state", [])
    state_feeds = [graph.get_tensor_by_name(s["input"]["tensor"]) for s in states]
    state_fetches = [graph.get_tensor_by_name(s["output"]["tensor"]) for s in states]

    def initial(state: dict) -> np.ndarray:
        if state["initial"] == "zeros":
            return np.zeros(state["shape"], state["dtype"])
        return np.asarray(state["initial"], state["dtype"])

    current = [initial(s) for s in states]

    def run_frozen(values):
        feed = dict(zip(feeds, _adapt_inputs(values, tensors, dtypes)))
        feed.update(zip(state_feeds, current))
        results = session.run(fetches + state_fetches, feed)
        current[:] = results[len(fetches):]
        return results[:len(fetches)]

    def reset():
        current[:] = [initial(s) for s in states]

    return run_frozen, reset if states else None


def _has_state(model: ir.Model, info: Any) -> bool:
    """Whether the signature's subgraph (its operators, if cut) has variable tensors its kernels write."""
    if not any(t.is_variable for t in model.subgraphs[info.subgraph_index].tensors):
        return False  # (the registry, which knows what each kernel writes, imports TensorFlow)
    from ..build.state import state_tensors

    return any(state.subgraph == info.subgraph_index and (info.operators is None or state.operator in info.operators)
               for state in state_tensors(model).values())


def _ordered_draw(draw: Any, info: Any, raw_signature: ir.Signature | None) -> list[np.ndarray]:
    """One draw of inputs as a list in the signature's order; a mapping may use the signature's
    input names (``x``), their Python-identifier form, or the input tensors' names."""
    if not isinstance(draw, Mapping):
        return [np.asarray(v) for v in draw]
    from ..names import python_identifier

    raw_names = list(raw_signature.inputs) if raw_signature else [None] * len(info.input_names)
    ordered = []
    for raw, name in zip(raw_names, info.input_names):
        for candidate in (raw, name, python_identifier(name)):
            if candidate is not None and candidate in draw:
                ordered.append(np.asarray(draw[candidate]))
                break
        else:
            raise VerificationError(f"inputs lack {raw or name!r} (given {sorted(draw)})")
    return ordered


def _tflite_io(model: ir.Model, key: str, n_inputs: int, n_outputs: int) -> dict:
    """Inputs and outputs of another ``.tflite`` to compare: the same signature key if it has
    one, otherwise its main subgraph's inputs and outputs in order."""
    for sig in model.signatures:
        if sig.key == key:
            return dict(input_names=list(sig.inputs), input_tensors=list(sig.inputs.values()),
                        output_names=list(sig.outputs), output_tensors=list(sig.outputs.values()), signature=key)
    sg = model.main
    if len(sg.inputs) != n_inputs or len(sg.outputs) != n_outputs:
        raise VerificationError(f"{model.source}: has {len(sg.inputs)} inputs and {len(sg.outputs)} outputs, "
                                f"the original {n_inputs} and {n_outputs}")
    return dict(input_names=[sg.tensors[i].name for i in sg.inputs], input_tensors=list(sg.inputs),
                output_names=[sg.tensors[i].name for i in sg.outputs], output_tensors=list(sg.outputs), signature=None)


def _run_reference_with_fallbacks(model_path: str, draws: list, ref_kwargs: dict, noise_floor: bool,
                                  notes: list[str], model: ir.Model | None = None) -> tuple[dict, str, bool]:
    """LiteRT's default kernels (with XNNPACK) are the reference; its reference kernels give the
    noise floor. Some models defeat one of them: the reference resolver lacks kernels (CEIL, int32
    ABS, STRIDED_SLICE v6/v8) and XNNPACK refuses some nodes (hybrid FULLY_CONNECTED). Then verify
    goes on with what runs, and says so in the report's notes.

    Blockwise-quantized FULLY_CONNECTED weights (``model`` given) are computed only by XNNPACK:
    LiteRT 2.3's builtin and reference FULLY_CONNECTED ignore the blockwise details (measured: the
    reference kernel returns zeros, the builtin one other wrong values), so neither may be the
    reference nor the noise floor. (EMBEDDING_LOOKUP's builtin kernel does read them.)"""
    last_error: VerificationError | None = None
    primaries = ("default", "builtin_without_default_delegates")
    if model is not None and (int2 := _int2_weights(model)):
        raise VerificationError(
            f"{model_path}: int2 weights outside FULLY_CONNECTED ({', '.join(repr(n) for n in int2[:3])}): no LiteRT "
            "2.3 kernel computes them (measured: NaN from XNNPACK, values near 1e31 from the builtin and reference "
            "kernels), so there is nothing to verify against; see docs/known-issues.md")
    if model is not None and _has_blockwise_weights(model):
        primaries, noise_floor = ("default",), False
        notes.append("note: blockwise-quantized weights: the reference is LiteRT's default kernels alone, without a "
                     "noise floor (LiteRT 2.3's FULLY_CONNECTED outside XNNPACK ignores blockwise quantization)")
    for primary in primaries:
        if noise_floor:
            try:
                return run_reference(model_path, draws, resolvers=(primary, "reference"), **ref_kwargs), primary, True
            except VerificationError as error:
                last_error = error
        try:
            results = run_reference(model_path, draws, resolvers=(primary,), **ref_kwargs)
        except VerificationError as error:
            last_error = error
            continue
        if primary != "default":
            notes.append(f"note: the default kernels could not run the model ({last_error}); "
                         "the reference is LiteRT's builtin kernels without delegates")
        if noise_floor:
            said = str(last_error).split(": ", 1)[-1] if last_error is not None else "no reason given"
            notes.append(f"note: no noise floor (LiteRT's reference kernels could not run the model: {said})")
        return results, primary, False
    raise last_error


def _int2_weights(model: ir.Model) -> list[str]:
    """int2 constants read by an operator other than FULLY_CONNECTED, the one LiteRT 2.3 computes
    with int2 weights (measured: CONV_2D with int2 weights gives NaN in XNNPACK, 1e31 in the
    builtin and reference kernels)."""
    return sorted({sg.tensors[i].name for sg in model.subgraphs for op in sg.operators if op.opcode != "FULLY_CONNECTED"
                   for i in op.inputs if i is not None and sg.tensors[i].dtype == "int2" and sg.tensors[i].data is not None})


def _has_blockwise_weights(model: ir.Model) -> bool:
    return any(t.quantization is not None and t.quantization.blockwise for sg in model.subgraphs for t in sg.tensors)


def verify(tflite_model: str | os.PathLike | bytes, candidate: Any, *, signature: str | None = None, draws: int = 3,
           seed: int = 0, inputs: Sequence[Sequence[np.ndarray]] | None = None, rtol: float = DEFAULT_RTOL,
           noise_floor: bool = True, float_range: tuple[float, float] = (-1.0, 1.0), timeout: float = 900,
           per_tensor: bool = False, segments: bool | None = None, inversion: Any = None, sequence: bool | None = None,
           _cut_applied: bool = False) -> VerifyReport:
    """Run ``tflite_model`` in LiteRT and ``candidate`` on the same inputs; report per-output errors.

    ``candidate`` is an :class:`InvertedModel`, a SavedModel directory, a frozen ``.pb`` (with its
    ``.json`` sidecar) or another ``.tflite`` file. ``inputs`` (a list of draws, each a mapping from
    input name to array, or a list of arrays in the signature's order, which for converter-made
    models is alphabetical) replaces the seeded random inputs.

    ``signature``: the key to verify. ``None``: every signature of a model that has several (each on
    its own seeded inputs; rows named ``"<signature>: <output>"``, each part in ``by_signature``), or
    with ``inputs``, ``serving_default`` or the first.

    ``segments``: when LiteRT cannot run the model (custom ops it does not know, Flex ops), the model
    is cut at its custom operators and the builtin part is verified in LiteRT, fed at the cuts with
    the inverted model's own values (``None``: only when needed; ``True``: always). Custom ops are
    then verified by their own tests against their documented semantics; the notes say so. A
    SavedModel or frozen ``.pb`` candidate is then also run on the same inputs and compared with the
    in-memory inversion (``inversion``, the :class:`InvertedModel` it was written from, or a fresh
    one), so what is on disk is always run.

    ``per_tensor=True`` also compares every intermediate tensor with LiteRT's (all tensors preserved,
    builtin kernels without delegates) and names the first operator whose output diverges
    (``report.first_divergence``); the candidate is then inverted in process if it is not already.

    ``sequence``: also run the draws as one sequence of calls (LiteRT's interpreter and the
    candidate keeping their state from call to call); ``None`` (default): when the model has
    state; ``False``: not, and the notes say so.
    """
    from ..build.signatures import model_signatures

    with tempfile.TemporaryDirectory(prefix="tflite_inverter_verify_") as work:
        if isinstance(tflite_model, (bytes, bytearray)):
            model_path = os.path.join(work, "model.tflite")
            Path(model_path).write_bytes(bytes(tflite_model))
        else:
            model_path = str(tflite_model)
        model = load(model_path)
        cut = getattr(candidate, "cut", None)
        if cut and not _cut_applied:
            # A cut inversion is verified against the same cut of the .tflite.
            from .segments import cut_model

            (info,) = candidate.signatures.values()
            data = cut_model(Path(model_path).read_bytes(), info.input_tensors, info.output_tensors, info.operators)
            report = verify(data, candidate, signature=signature, draws=draws, seed=seed, inputs=inputs, rtol=rtol,
                            noise_floor=noise_floor, float_range=float_range, timeout=timeout, per_tensor=per_tensor,
                            segments=segments, sequence=sequence, _cut_applied=True)
            report.model = f"{tflite_model if not isinstance(tflite_model, bytes) else '<bytes>'} (cut: {len(info.operators)} operators)"
            return report
        infos = {s.key: s for s in model_signatures(model)}
        if signature is None and inputs is None and len(infos) > 1:
            # Every signature on its own seeded inputs (an LLM's prefill and decode share weights but
            # not their inputs), one report.
            parts = {k: verify(model_path, candidate, signature=k, draws=draws, seed=seed, rtol=rtol,
                               noise_floor=noise_floor, float_range=float_range, timeout=timeout, per_tensor=per_tensor,
                               segments=segments, inversion=inversion, sequence=sequence, _cut_applied=_cut_applied)
                     for k in infos}
            return _merged_report(parts, str(tflite_model) if not isinstance(tflite_model, bytes) else "<bytes>")
        key = signature or ("serving_default" if "serving_default" in infos else next(iter(infos)))
        if key not in infos:
            raise TfliteInverterError(f"{model_path}: no signature {key!r}{did_you_mean(key, infos)}; it has {sorted(infos)}")
        info = infos[key]
        sg = model.subgraphs[info.subgraph_index]
        input_tensors = [sg.tensors[i] for i in info.input_tensors]
        raw_signature = model.signatures[[s.key for s in model.signatures].index(key)] if model.signatures else None
        output_tensors = [sg.tensors[i] for i in info.output_tensors]
        if inputs is not None:
            draw_inputs = [_ordered_draw(draw, info, raw_signature) for draw in inputs]
        else:
            draw_inputs = make_inputs(input_tensors, draws, seed, float_range)
        ref_kwargs = dict(
            input_names=list(raw_signature.inputs) if raw_signature else [t.name for t in input_tensors],
            input_tensors=info.input_tensors,
            output_names=list(raw_signature.outputs) if raw_signature else [t.name for t in output_tensors],
            output_tensors=info.output_tensors,
            signature=key if raw_signature else None,
            timeout=timeout,
        )
        notes: list[str] = []
        stateful = _has_state(model, info)
        check_sequence = stateful if sequence is None else sequence
        if check_sequence:
            ref_kwargs["sequence"] = True  # the same LiteRT run also gives the calls in sequence
        customs = [op for op in sg.operators if op.is_custom]
        if segments is None and customs and info.subgraph_index == 0:
            try:
                reference, primary, noise_floor = _run_reference_with_fallbacks(
                    model_path, draw_inputs, ref_kwargs, noise_floor, notes, model)
            except VerificationError as error:
                segments = True
                notes.append(f"note: LiteRT cannot run the whole model ({str(error).split(': ', 1)[-1][:300]}); "
                             "verified in segments")
        if segments:
            if stateful:
                notes.append("note: the model keeps state across calls; in segments only independent draws are compared")
            return _verify_by_segments(model_path, model, info, candidate, draw_inputs, rtol, noise_floor, notes, timeout,
                                       inversion,
                                       str(tflite_model) if not isinstance(tflite_model, bytes) else "<bytes>")
        if not (customs and info.subgraph_index == 0 and segments is not None):
            reference, primary, noise_floor = _run_reference_with_fallbacks(
                model_path, draw_inputs, ref_kwargs, noise_floor, notes, model)

        if stateful and not check_sequence:
            notes.append("note: the model keeps state across calls; calls in sequence were not compared (sequence=False)")
        if not isinstance(candidate, (str, os.PathLike)) or not str(candidate).endswith(".tflite"):
            label, runner, reset = _candidate_runner(candidate, model, info)

            def run_candidate(in_sequence: bool) -> list[list[np.ndarray]]:
                outputs = []
                for d, values in enumerate(progress(draw_inputs, description="verifying", unit="draw")):
                    if reset is not None and (d == 0 or not in_sequence):
                        reset()
                    outputs.append(runner(values))
                return outputs
        else:
            label = f"TFLite model {candidate}"
            other_io = _tflite_io(load(str(candidate)), key, len(input_tensors), len(output_tensors))

            def run_candidate(in_sequence: bool) -> list[list[np.ndarray]]:
                other = run_reference(str(candidate), draw_inputs, resolvers=("default",), timeout=timeout,
                                      sequence=in_sequence, **other_io)
                return [[other[f"default/{d}/out/{i}"] for i in range(len(output_tensors))] for d in range(len(draw_inputs))]
        candidate_outputs = run_candidate(False)

        report = VerifyReport(model=str(tflite_model) if not isinstance(tflite_model, bytes) else "<bytes>",
                              candidate=label, signature=key, draws=len(draw_inputs), notes=notes)
        for i, (name, tensor) in enumerate(zip(info.output_names, output_tensors)):
            ref = [reference[f"{primary}/{d}/out/{i}"] for d in range(len(draw_inputs))]
            floor = [reference[f"reference/{d}/out/{i}"] for d in range(len(draw_inputs))] if noise_floor else None
            got = [candidate_outputs[d][i] for d in range(len(draw_inputs))]
            step = quantization_step(sg, info.output_tensors[i])
            report.outputs.append(compare_output(name, tensor, ref, got, floor, rtol, step))
        if check_sequence:
            sequence_outputs = run_candidate(True)
            for i, (name, tensor) in enumerate(zip(info.output_names, output_tensors)):
                ref = [reference[f"sequence/{primary}/{d}/out/{i}"] for d in range(len(draw_inputs))]
                floor = [reference[f"sequence/reference/{d}/out/{i}"] for d in range(len(draw_inputs))] if noise_floor else None
                got = [sequence_outputs[d][i] for d in range(len(draw_inputs))]
                step = quantization_step(sg, info.output_tensors[i])
                report.outputs.append(compare_output(f"{name} (calls in sequence)", tensor, ref, got, floor, rtol, step))
            notes.append(f"state: {len(draw_inputs)} draws compared from reset state and as one sequence of "
                         f"{len(draw_inputs)} calls (state carried over)")
        if per_tensor:
            report.tensors = _verify_tensors(model_path, model, info, candidate, draw_inputs, ref_kwargs, rtol, notes)
    return report


def _merged_report(parts: Mapping[str, VerifyReport], label_model: str) -> VerifyReport:
    """One report of several signatures' reports: rows and notes prefixed with the signature key."""
    first = next(iter(parts.values()))
    merged = VerifyReport(model=label_model, candidate=first.candidate, signature=", ".join(parts), draws=first.draws,
                          by_signature=dict(parts))
    for key, part in parts.items():
        merged.outputs.extend(replace(o, name=f"{key}: {o.name}") for o in part.outputs)
        merged.notes.extend(f"{key}: {note}" for note in part.notes)
        merged.tensors.extend(replace(t, tensor=f"{key}: {t.tensor}") for t in part.tensors)
    return merged


def _verify_by_segments(model_path: str, model: ir.Model, info: Any, candidate: Any, draws: list, rtol: float,
                        noise_floor: bool, notes: list[str], timeout: float, inversion: Any, label_model: str) -> VerifyReport:
    """Verify the builtin part of a model in LiteRT, fed with the inverted model's values where the
    custom operators were cut out; model outputs computed by custom ops are left to their tests."""
    from ..build.inverted import InvertedModel, invert
    from ..names import python_identifier
    from ..quant.grids import dequantize_array, is_quantized_activation
    from .segments import builtin_segment

    if info.subgraph_index != 0:
        raise VerificationError("segment verification covers signatures of subgraph 0")
    if isinstance(candidate, (str, os.PathLike)) and str(candidate).endswith(".tflite"):
        return _verify_tflite_by_segments(model_path, info, str(candidate), draws, rtol, notes, timeout, label_model)
    inverted = candidate if isinstance(candidate, InvertedModel) else (inversion if inversion is not None else invert(model))
    sg = model.subgraphs[0]
    customs = [op for op in sg.operators if op.is_custom]
    segment = builtin_segment(Path(model_path).read_bytes(), [op.index for op in customs])
    keys = [python_identifier(n) for n in info.input_names]
    ours = []
    for values in draws:  # each from reset state, as LiteRT runs the segment below
        inverted.reset_state()
        ours.append(inverted.tensor_values(dict(zip(keys, values)), signature=info.key))
    feeds = []
    for d, values in enumerate(draws):
        given = dict(zip(info.input_tensors, values))
        feed = []
        for index in segment.inputs:
            tensor = sg.tensors[index]
            if index in given:
                feed.append(given[index])
            elif is_quantized_activation(tensor):
                from .runner import to_model_input

                feed.append(to_model_input(ours[d][index], tensor))
            else:
                feed.append(np.asarray(ours[d][index]).astype(_NUMPY_DTYPES.get(tensor.dtype, np.float32)))
        feeds.append(feed)
    with tempfile.TemporaryDirectory(prefix="tflite_inverter_segment_") as work:
        path = os.path.join(work, "builtin_part.tflite")
        Path(path).write_bytes(segment.data)
        kwargs = dict(input_names=[sg.tensors[i].name for i in segment.inputs], input_tensors=list(segment.inputs),
                      output_names=[sg.tensors[i].name for i in segment.outputs], output_tensors=list(segment.outputs),
                      signature=None, timeout=timeout)
        reference, primary, noise_floor = _run_reference_with_fallbacks(path, feeds, kwargs, noise_floor, notes)
    report = VerifyReport(model=label_model, candidate="inverted model (in memory), builtin operators in segments",
                          signature=info.key, draws=len(draws), notes=notes)
    names = dict(zip(info.output_tensors, info.output_names))
    for position, index in enumerate(segment.outputs):
        tensor = sg.tensors[index]
        ref = [reference[f"{primary}/{d}/out/{position}"] for d in range(len(draws))]
        floor = [reference[f"reference/{d}/out/{position}"] for d in range(len(draws))] if noise_floor else None
        got = [ours[d][index] for d in range(len(draws))]
        step = None
        if is_quantized_activation(tensor):
            ref = [dequantize_array(r, tensor.quantization) for r in ref]
            floor = [dequantize_array(f, tensor.quantization) for f in floor] if floor else None
            step = float(tensor.quantization.scales[0])
        label = names.get(index, f"(feeds a custom op) {tensor.name}")
        report.outputs.append(compare_output(label, tensor, ref, got, floor, rtol, step))
    if not isinstance(candidate, InvertedModel):
        _compare_written_with_inversion(report, candidate, model, info, inverted, draws, rtol)
    by_custom = sorted({f"{op.opcode} x{sum(o.opcode == op.opcode for o in customs)}" for op in customs})
    notes.append(f"segments: {len(sg.operators) - len(customs)} builtin operators verified in LiteRT, fed at "
                 f"{len(segment.inputs) - len(info.input_tensors)} cut tensors with the inverted model's values; "
                 f"custom operators ({', '.join(by_custom)}) verified by their own tests, not by LiteRT")
    from_customs = [names[i] for i in info.output_tensors if i not in segment.outputs]
    if from_customs:
        notes.append(f"outputs computed by custom operators (not compared here): {from_customs}")
    return report


def _compare_written_with_inversion(report: VerifyReport, candidate: Any, model: ir.Model, info: Any, inverted: Any,
                                    draws: list, rtol: float) -> None:
    """Run a SavedModel or frozen pb on the draws and compare every output with the in-memory
    inversion that segment verification checked against LiteRT: rows ``<output> (file vs in memory)``."""
    from ..names import python_identifier

    label, runner, reset = _candidate_runner(candidate, model, info)
    keys = [python_identifier(n) for n in info.input_names]
    sg = model.subgraphs[info.subgraph_index]
    tensors = [sg.tensors[i] for i in info.input_tensors]
    dtypes = [spec.dtype for spec in inverted.inputs(info.key)]
    written = []
    for values in draws:  # each draw from reset state, on both sides
        if reset is not None:
            reset()
        written.append(runner(values))
    in_memory = []
    for values in draws:
        if getattr(inverted, "stateful", False):
            inverted.reset_state()
        out = inverted.run(dict(zip(keys, _adapt_inputs(values, tensors, dtypes))), signature=info.key)
        in_memory.append([out[name] for name in info.output_names])
    for i, (name, index) in enumerate(zip(info.output_names, info.output_tensors)):
        report.outputs.append(compare_output(f"{name} (file vs in memory)", sg.tensors[index], [m[i] for m in in_memory],
                                             [w[i] for w in written], None, rtol, quantization_step(sg, index)))
    report.candidate += f"; {label} run and compared with it"
    report.notes.append(f"note: LiteRT cannot run the whole model, so {label} was run on the same inputs and "
                        "compared with the in-memory inversion that the segments verified (rows 'file vs in memory')")


def _verify_tflite_by_segments(model_path: str, info: Any, candidate: str, draws: list, rtol: float, notes: list[str],
                               timeout: float, label_model: str) -> VerifyReport:
    """Two ``.tflite`` models with the same custom ops (an original and its re-conversion, for
    example after passthrough): their builtin parts run in LiteRT on the same inputs, the custom
    ops' outputs fed with the same random values."""
    from ..quant.grids import dequantize_array, is_quantized_activation
    from .segments import run_builtin_parts

    model, slots, ref, got = run_builtin_parts(Path(model_path).read_bytes(), Path(candidate).read_bytes(),
                                               model_inputs=draws, timeout=timeout)
    sg = model.main
    report = VerifyReport(model=label_model, candidate=f"TFLite model {candidate}, builtin operators in segments",
                          signature=info.key, draws=len(draws), notes=notes)
    names = dict(zip(info.output_tensors, info.output_names))
    for position, (slot, index) in enumerate(slots):
        tensor = sg.tensors[index]
        a = [r[position] for r in ref]
        b = [g[position] for g in got]
        step = None
        if is_quantized_activation(tensor):
            a = [dequantize_array(x, tensor.quantization) for x in a]
            b = [dequantize_array(x, tensor.quantization) for x in b]
            step = float(tensor.quantization.scales[0])
        label = names[index] if slot.startswith("output") else f"({slot}) {tensor.name}"
        report.outputs.append(compare_output(label, tensor, a, b, None, rtol, step))
    customs = sum(op.is_custom for op in sg.operators)
    notes.append(f"segments: both models cut at their {customs} custom operators; the builtin parts ran in "
                 "LiteRT on the same inputs, the custom operators' outputs fed with the same random values; the "
                 "custom operators themselves were not run")
    return report


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
