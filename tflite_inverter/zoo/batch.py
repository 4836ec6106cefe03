"""``ti.batch``: many models, each in its own worker process, a resumable ledger and a report."""

from __future__ import annotations

import glob
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import TfliteInverterError
from .backends import BACKENDS, default_jobs, run_local, run_ray
from .ledger import Ledger, file_sha256, task_key
from .report import counts, write_reports
from .task import DEFAULT_MEMORY, DEFAULT_TIMEOUT, STATUSES, TaskSpec

REQUANTIZE_MODES = ("float16", "dynamic_range", "int8", "uint8", "int16x8", "uint8_throughout")


@dataclass
class BatchReport:
    """The rows of this batch's models (run now or skipped as already done), in input order."""

    out_dir: Path
    rows: list[dict]
    skipped: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    report_md: Path | None = None
    report_html: Path | None = None

    @property
    def counts(self) -> dict[str, int]:
        total = counts(self.rows)
        return {status: total[status] for status in STATUSES if total[status]}

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(row["status"] == "ok" for row in self.rows)

    def row(self, name: str) -> dict:
        return next(row for row in self.rows if row["name"] == name)

    def table(self) -> str:
        lines = [f"{'model':36} {'ops':>5} {'status':8} {'wall s':>7} {'peak MB':>8}  cause"]
        for row in self.rows:
            ops = "" if row.get("op_count") is None else row["op_count"]
            peak = row.get("peak_rss_mb") or 0
            lines.append(f"{row['name'][:36]:36} {ops!s:>5} {row['status']:8} {row.get('wall_s', 0):7.1f} {peak:8.0f}  "
                         f"{(row.get('cause') or '')[:60]}")
        summary = ", ".join(f"{n} {s}" for s, n in self.counts.items())
        lines.append(f"{len(self.rows)} models: {summary}; {len(self.skipped)} skipped (already in the ledger), "
                     f"{len(self.ran)} run in {self.wall_s:.1f} s; report: {self.report_md}")
        return "\n".join(lines)

    __str__ = table

    def __repr__(self) -> str:
        summary = ", ".join(f"{n} {s}" for s, n in self.counts.items())
        return f"<BatchReport {len(self.rows)} models: {summary}; {len(self.skipped)} skipped; {self.report_md}>"


def parse_memory(value: int | str | None) -> int | None:
    """Bytes from an int or a size such as ``"4G"``, ``"512M"`` (``None``: no limit)."""
    if value is None or isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", str(value), re.IGNORECASE)
    if not match:
        raise TfliteInverterError(f"memory limit {value!r}: expected bytes or a size such as 4G or 512M")
    return int(float(match.group(1)) * 1024 ** " KMGT".index(match.group(2).upper() or " "))


def resolve_models(models: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Model files from paths, directories (every ``.tflite`` below), globs and ``.txt`` lists
    (one path a line, relative to the list's folder; ``#`` comments)."""
    items = [models] if isinstance(models, (str, os.PathLike)) else list(models)
    found: list[Path] = []
    for item in items:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            matches = sorted(path.rglob("*.tflite"))
            if not matches:
                raise TfliteInverterError(f"{path}: no .tflite files in this directory")
            found += matches
        elif path.suffix == ".txt" and path.is_file():
            for number, line in enumerate(path.read_text().splitlines(), 1):
                line = line.split("#", 1)[0].strip()
                if line:
                    entry = Path(line) if Path(line).is_absolute() else path.parent / line
                    if not entry.is_file():
                        raise TfliteInverterError(f"{path}:{number}: {entry} is not a file")
                    found.append(entry)
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
            if not matches:
                raise TfliteInverterError(f"{text}: the pattern matches no files")
            found += matches
        elif path.is_file():
            found.append(path)
        else:
            raise TfliteInverterError(f"{text}: no such file, directory, list or pattern")
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(path.resolve(), None)
    if not unique:
        raise TfliteInverterError("no models to convert")
    return list(unique)


def _names(paths: Sequence[Path], hashes: Sequence[str]) -> list[str]:
    """Output folder names: the file's stem, with the start of its sha256 where stems collide."""
    stems = [p.stem for p in paths]
    return [stem if stems.count(stem) == 1 else f"{stem}-{digest[:8]}" for stem, digest in zip(stems, hashes)]


class _Progress:
    """One tqdm bar (done / failed / running in its postfix); per-model lines with ``verbose``."""

    def __init__(self, total: int, jobs: int, enabled: bool, verbose: bool):
        self.jobs, self.verbose, self.running, self.failed = jobs, verbose, 0, 0
        self.bar = None
        if enabled and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="model", file=sys.stderr, dynamic_ncols=True)
            self._postfix()

    def _postfix(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"done {self.bar.n - self.failed}, failed {self.failed}, "
                                     f"running {min(self.running, self.jobs)}", refresh=True)

    def start(self, spec: TaskSpec, _row: Any) -> None:
        self.running += 1
        if self.verbose:
            self._write(f"start {spec.name}")
        self._postfix()

    def done(self, spec: TaskSpec, row: dict) -> None:
        self.running -= 1
        self.failed += row["status"] != "ok"
        if self.verbose:
            cause = f" ({row.get('cause')}: {row.get('message')})" if row["status"] != "ok" else ""
            self._write(f"{row['status']:8} {spec.name} in {row.get('wall_s', 0):.1f} s{cause}")
        if self.bar is not None:
            self.bar.update(1)
        self._postfix()

    def _write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def batch(models: Any, out_dir: str | os.PathLike, *, jobs: int | None = None, backend: str = "local",
          verify: bool = False, pb: bool = False, requantize: str | None = None, data: str | os.PathLike | None = None,
          mean: float | Sequence[float] | None = None, std: float | Sequence[float] | None = None, draws: int = 3,
          retry_failed: bool = False, timeout: float = DEFAULT_TIMEOUT, memory: int | str | None = DEFAULT_MEMORY,
          ray_address: str | None = None, ship_bytes: bool = False, reuse: int = 1, progress: bool = True,
          verbose: bool = False) -> BatchReport:
    """Convert (and verify, and re-quantize) every model in its own worker process; see docs/batch.md.

    ``models``: a path, directory, glob or ``.txt`` list, or a sequence of them. Outputs go to
    ``OUT/<model name>/`` (``saved_model``, ``model.pb`` with ``pb``, ``model_<mode>.tflite`` with
    ``requantize``); every finished task appends a row to ``OUT/ledger.jsonl``, and models whose
    sha256 and options already have a row are skipped (``retry_failed``: unless that row is not
    ``ok``). ``timeout`` (seconds) and ``memory`` (bytes, or ``"4G"``) limit each model's worker.
    ``backend="ray"``: Ray tasks on a local Ray with ``jobs`` CPUs, or the cluster at
    ``ray_address``; ``ship_bytes`` sends the model bytes with the task instead of its path.
    Calibration ``data`` is read by each task from its path; an image folder is normalised with
    ``mean``/``std``, or, for those not given, as each model's TFLite metadata states (else 0 and 1),
    which the model's ledger row notes. ``reuse``: models one worker process
    serves in turn (default 1, a fresh process per model; more saves TensorFlow's import per model,
    at the cost of models sharing a process: a crash or kill still fails only the model running).
    """
    if backend not in BACKENDS:
        raise TfliteInverterError(f"backend must be one of {BACKENDS}, not {backend!r}")
    if requantize is not None and requantize not in REQUANTIZE_MODES:
        raise TfliteInverterError(f"requantize must be one of {REQUANTIZE_MODES}, not {requantize!r}")
    if data is not None and not Path(data).exists():
        raise TfliteInverterError(f"{data}: calibration data not found")
    if reuse < 1:
        raise TfliteInverterError(f"reuse must be at least 1, not {reuse}")
    if draws < 1:
        raise TfliteInverterError(f"draws must be at least 1, not {draws}")
    if timeout <= 0:
        raise TfliteInverterError(f"timeout must be positive, not {timeout}")
    memory_bytes = parse_memory(memory)
    jobs = jobs or default_jobs()
    if jobs < 1:
        raise TfliteInverterError(f"jobs must be at least 1, not {jobs}")
    paths = resolve_models(models)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hashes = [file_sha256(p) for p in paths]
    names = _names(paths, hashes)
    options = {"verify": bool(verify), "pb": bool(pb), "draws": int(draws) if verify else None,
               "requantize": requantize, "data": None if data is None else str(Path(data).resolve()),
               "mean": mean if requantize else None, "std": std if requantize else None}
    ledger = Ledger(out)
    rows: dict[str, dict] = {}
    skipped, specs = [], []
    for path, digest, name in zip(paths, hashes, names):
        done = ledger.should_skip(task_key(digest, options), retry_failed=retry_failed)
        if done is not None:
            rows[name] = done
            skipped.append(name)
            continue
        specs.append(TaskSpec(model=str(path), name=name, out_dir=str(out), sha256=digest, options=options,
                              timeout=float(timeout), memory=memory_bytes, reuse=int(reuse),
                              model_bytes=path.read_bytes() if ship_bytes else None))
    bar = _Progress(len(specs), jobs, progress, verbose)

    def on_done(spec: TaskSpec, row: dict) -> None:
        ledger.append(row)
        rows[spec.name] = row
        bar.done(spec, row)

    start = time.monotonic()
    try:
        if specs and backend == "local":
            run_local(specs, jobs, bar.start, on_done)
        elif specs:
            run_ray(specs, jobs, bar.start, on_done, address=ray_address)
    finally:
        bar.close()
    ordered = [rows[name] for name in names if name in rows]
    report = BatchReport(out_dir=out, rows=ordered, skipped=skipped, ran=[s.name for s in specs],
                         wall_s=round(time.monotonic() - start, 3))
    report.report_md, report.report_html = write_reports(ordered, out)
    return report
