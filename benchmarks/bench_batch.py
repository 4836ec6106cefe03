"""Batch wall time for the 14 MediaPipe models with 1 and 2 workers (local backend, convert only).

Each run converts every model into a fresh output folder (nothing skipped) and reports the batch's
wall time, the sum of the models' own wall times, the share of that spent importing TensorFlow
(once per model: each model runs in its own worker process), and the load average before and
after (the machine may be shared: compare ratios, not absolute times).

    nice python benchmarks/bench_batch.py                       # jobs 1 and 2
    nice python benchmarks/bench_batch.py --jobs 1 2 4 --markdown table.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

CACHE = Path(os.environ.get("TFLITE_INVERTER_CACHE", Path.home() / ".cache" / "tflite_inverter")) / "mediapipe-0.10.14"


def measure(models: list[Path], jobs: int) -> dict:
    import tflite_inverter as ti

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_batch_") as out:
        start = time.perf_counter()
        report = ti.batch(models, out, jobs=jobs, progress=False)
        wall = time.perf_counter() - start
    rows = report.rows
    model_wall = sum(r["wall_s"] for r in rows)
    imports = sum(r.get("times", {}).get("import", 0.0) for r in rows)
    return {"jobs": jobs, "models": len(rows), "ok": sum(r["status"] == "ok" for r in rows), "wall_s": wall,
            "model_wall_s": model_wall, "import_s": imports, "load_before": load_before[0], "load_after": os.getloadavg()[0]}


def markdown(results: list[dict]) -> str:
    base = results[0]["wall_s"]
    lines = [f"Made by `nice python benchmarks/bench_batch.py` on {time.strftime('%Y-%m-%d')}, "
             f"{os.cpu_count()} cores, Python {sys.version.split()[0]}.", "",
             "| jobs | models (ok) | batch wall s | speed-up | sum of model walls s | TF import s (share) | load avg before / after |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['jobs']} | {r['models']} ({r['ok']}) | {r['wall_s']:.1f} | {base / r['wall_s']:.2f} | "
                     f"{r['model_wall_s']:.1f} | {r['import_s']:.1f} ({r['import_s'] / r['model_wall_s']:.0%}) | "
                     f"{r['load_before']:.1f} / {r['load_after']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", type=Path, help="models (default: the 14 MediaPipe models)")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    models = args.models or sorted(CACHE.glob("*.tflite"))
    if not models:
        sys.exit(f"no models in {CACHE}: run the tests once to fetch the MediaPipe models")
    results = [measure(models, jobs) for jobs in args.jobs]
    table = markdown(results)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)


if __name__ == "__main__":
    main()
