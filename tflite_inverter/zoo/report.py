"""``OUT/report.md`` and ``OUT/report.html`` (self-contained, no scripts or remote styles) from
ledger rows: counts per status, one table row per model (ops, status, the largest error per
output, times per phase, peak memory) and the failures grouped by cause."""

from __future__ import annotations

import html
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from .task import STATUSES


def _errors_text(row: dict) -> str:
    parts = []
    for artifact, outputs in sorted((row.get("errors") or {}).items()):
        worst = sorted(outputs.items(), key=lambda item: -item[1]["max_abs_error"])
        shown = ", ".join(f"{name} {o['max_abs_error']:.3g}{'' if o['unit'] == 'value' else ' ' + o['unit']}"
                          f"{'' if o['passed'] else ' FAIL'}" for name, o in worst)
        parts.append(f"{artifact}: {shown}")
    return "; ".join(parts)


def _times_text(row: dict) -> str:
    return ", ".join(f"{phase} {seconds:.1f}" for phase, seconds in (row.get("times") or {}).items())


def _memory_text(row: dict) -> str:
    peak = row.get("peak_rss_mb")
    tree = row.get("tree_peak_rss_mb")
    return (f"{peak:.0f}" if peak else "") + (f" ({tree:.0f})" if tree else "")


def counts(rows: Sequence[dict]) -> Counter:
    return Counter(row["status"] for row in rows)


def failures_by_cause(rows: Sequence[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if row["status"] != "ok":
            groups[row.get("cause") or row["status"]].append(row)
    return dict(sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])))


def _table(rows: Sequence[dict]) -> tuple[list[str], list[list[str]]]:
    header = ["model", "ops", "status", "max abs error per output", "times (s)", "wall (s)", "peak RSS MB (tree)"]
    body = [[row["name"], "" if row.get("op_count") is None else str(row["op_count"]), row["status"], _errors_text(row),
             _times_text(row), f"{row.get('wall_s', 0):.1f}", _memory_text(row)] for row in rows]
    return header, body


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(rows: Sequence[dict], title: str) -> str:
    total = counts(rows)
    lines = [f"# {title}", "", f"{len(rows)} models: " + ", ".join(f"{total[s]} {s}" for s in STATUSES if total[s]), ""]
    header, body = _table(rows)
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in cells) + " |" for cells in body]
    groups = failures_by_cause(rows)
    lines += ["", "## Failures by cause", ""]
    if not groups:
        lines.append("none")
    for cause, members in groups.items():
        lines.append(f"- **{_md_cell(cause)}** ({len(members)}): " + ", ".join(r["name"] for r in members))
        for row in members:
            lines.append(f"  - {row['name']}: {_md_cell(row.get('message') or '')}")
    return "\n".join(lines) + "\n"


_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:90%}
td,th{border:1px solid #ccc;padding:.3em .5em;vertical-align:top;text-align:left}th{background:#f3f3f3}
.ok{color:#176917}.failed,.error,.crashed,.timeout,.memory{color:#b00020;font-weight:bold}code{font-size:90%}"""


def html_page(rows: Sequence[dict], title: str) -> str:
    e = html.escape
    total = counts(rows)
    header, body = _table(rows)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{e(title)}</h1>",
             "<p>" + e(f"{len(rows)} models: " + ", ".join(f"{total[s]} {s}" for s in STATUSES if total[s])) + "</p>",
             "<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>"]
    for cells in body:
        parts.append("<tr>" + "".join(f"<td class='{e(cells[2])}'>{e(c)}</td>" if i == 2 else f"<td>{e(c)}</td>"
                                      for i, c in enumerate(cells)) + "</tr>")
    parts.append("</table><h2>Failures by cause</h2>")
    groups = failures_by_cause(rows)
    if not groups:
        parts.append("<p>none</p>")
    for cause, members in groups.items():
        parts.append(f"<h3>{e(cause)} ({len(members)})</h3><ul>")
        parts += [f"<li><b>{e(r['name'])}</b>: <code>{e(r.get('message') or '')}</code></li>" for r in members]
        parts.append("</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_reports(rows: Sequence[dict], out_dir: str | os.PathLike, title: str = "tflite-inverter batch") -> tuple[Path, Path]:
    out = Path(out_dir)
    md_path, html_path = out / "report.md", out / "report.html"
    for path, text in ((md_path, markdown(rows, title)), (html_path, html_page(rows, title))):
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text)
        os.replace(temporary, path)
    return md_path, html_path
