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


def shape_text(shape: Sequence[int | None]) -> str:
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
