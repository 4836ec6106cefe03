"""What people see: short reprs, HTML tables for notebooks (``_repr_html_``), "did you mean" hints.

Shared by every stage, so it imports nothing of the package and no TensorFlow.
"""

from __future__ import annotations

import difflib
import html
from collections.abc import Iterable, Sequence
from typing import Any

PASS_COLOUR, FAIL_COLOUR = "#d4edda", "#f8d7da"
_TABLE_STYLE = "border-collapse:collapse;font-family:monospace;font-size:12px"
_CELL_STYLE = "border:1px solid #ccc;padding:2px 6px;text-align:left"


def did_you_mean(name: str, candidates: Iterable[str], limit: int = 3) -> str:
    """``" (did you mean 'a', 'b'?)"`` for the candidates closest to ``name``, or ``""``.

    Close spellings first (difflib), then names that contain ``name`` or are contained in it
    (a tensor name given without its scope)."""
    pool = list(dict.fromkeys(candidates))
    matches = difflib.get_close_matches(name, pool, n=limit, cutoff=0.6)
    if len(matches) < limit:
        lowered = name.lower()
        matches += [c for c in pool if c not in matches and (lowered in c.lower() or c.lower() in lowered)
                    ][: limit - len(matches)]
    return f" (did you mean {', '.join(repr(m) for m in matches)}?)" if matches else ""


def shape_text(shape: Sequence[int | None] | None) -> str:
    """``[1,?,3]``; ``[...]`` for a tensor of unknown rank (``None``)."""
    if shape is None:
        return "[...]"
    return "[" + ",".join("?" if d is None or d < 0 else str(d) for d in shape) + "]"


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], status: Sequence[bool | None] | None = None,
               caption: str | None = None) -> str:
    """A small HTML table; with ``status``, each row coloured green (``True``) or red (``False``)."""
    parts = [f'<table style="{_TABLE_STYLE}">']
    if caption:
        parts.append(f'<caption style="text-align:left;font-weight:bold">{html.escape(caption)}</caption>')
    parts.append("<tr>" + "".join(f'<th style="{_CELL_STYLE}">{html.escape(str(h))}</th>' for h in headers) + "</tr>")
    for i, row in enumerate(rows):
        state = status[i] if status is not None else None
        colour = "" if state is None else f' style="background:{PASS_COLOUR if state else FAIL_COLOUR}"'
        parts.append(f"<tr{colour}>" + "".join(f'<td style="{_CELL_STYLE}">{html.escape(str(c))}</td>' for c in row)
                     + "</tr>")
    parts.append("</table>")
    return "".join(parts)


def html_status(passed: bool, text: str | None = None) -> str:
    """A coloured PASSED / FAILED badge."""
    label = text or ("PASSED" if passed else "FAILED")
    return (f'<span style="background:{PASS_COLOUR if passed else FAIL_COLOUR};padding:1px 6px;'
            f'font-weight:bold;font-family:monospace">{html.escape(label)}</span>')


def html_lines(lines: Iterable[str]) -> str:
    lines = list(lines)
    if not lines:
        return ""
    return "<ul style=\"font-family:monospace;font-size:12px\">" + "".join(
        f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"


def html_block(title: str, *parts: str) -> str:
    return (f'<div><div style="font-weight:bold;font-family:monospace">{html.escape(title)}</div>'
            + "".join(p for p in parts if p) + "</div>")


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] | None = None) -> str:
    """A plain-text table whose columns are as wide as their longest cell (names are never cut)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    right = right or [False] * len(headers)
    lines = []
    for row in cells:
        lines.append("  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)).rstrip())
    return "\n".join(lines)


# -- pictures and a self-contained page (matplotlib: the optional extra ``[plot]``) ----------------

def require_matplotlib():
    """matplotlib's pyplot with a non-interactive backend, or an error saying how to install it."""
    try:
        import matplotlib
    except ImportError:
        from .errors import TfliteInverterError

        raise TfliteInverterError("plots need matplotlib: pip install 'tflite-inverter[plot]'") from None
    if "matplotlib.pyplot" not in __import__("sys").modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def require_pandas():
    try:
        import pandas
    except ImportError:
        from .errors import TfliteInverterError

        raise TfliteInverterError("to_pandas needs pandas: pip install 'tflite-inverter[plot]'") from None
    return pandas


def figure_html(figure: Any) -> str:
    """A matplotlib figure as an ``<img>`` with the PNG embedded (base64), for a self-contained page."""
    import base64
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{encoded}"/>'


def report_page(title: str, sections: Sequence[str]) -> str:
    """One self-contained HTML page: the title and each section's HTML (tables, embedded images)."""
    body = "".join(f"<section style=\"margin:12px 0\">{section}</section>" for section in sections)
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>"
            f"<body style=\"font-family:sans-serif;margin:16px\"><h1 style=\"font-size:18px\">{html.escape(title)}</h1>"
            f"{body}</body></html>")


def report_sections(report: Any) -> list[str]:
    """A report's HTML: its tables, and its per-tensor plot when it has one (and matplotlib is installed)."""
    sections = [report._repr_html_()]
    nested = getattr(report, "comparison", None)
    source = report if getattr(report, "tensors", None) else nested if getattr(nested, "tensors", None) else None
    if source is not None and hasattr(source, "plot"):
        try:
            plt = require_matplotlib()
        except Exception as error:  # the library's own error: matplotlib missing
            sections.append(html_lines([str(error)]))
        else:
            figure = source.plot()
            sections.append(figure_html(figure))
            plt.close(figure)
    return sections


def write_report_page(path: Any, title: str, reports: Sequence[Any]) -> Any:
    """Write one self-contained HTML page (tables, embedded plots) for ``reports``; returns the path."""
    from pathlib import Path

    target = Path(path)
    sections = [section for report in reports for section in report_sections(report)]
    target.write_text(report_page(title, sections), encoding="utf-8")
    return target
