"""What :func:`tflite_inverter.check.verify.verify` returns: per-output and per-tensor rows, and the
report that shows them (text table, HTML, pandas, matplotlib, Model Explorer overlay)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..display import html_block, html_lines, html_status, html_table, require_matplotlib, require_pandas, text_table
from ..errors import TfliteInverterError


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
