"""Invert and verify every MediaPipe 0.10.14 model; write the per-output table to docs/mediapipe.md.

    python benchmarks/mediapipe_report.py [--markdown docs/mediapipe.md] [--draws 3]

The models come from the cache the tests fill (``pip download --no-deps mediapipe==0.10.14``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CACHE = Path(os.environ.get("TFLITE_INVERTER_CACHE", Path.home() / ".cache" / "tflite_inverter")) / "mediapipe-0.10.14"


def main() -> int:
    import tflite_inverter as ti

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--draws", type=int, default=3)
    args = parser.parse_args()
    models = sorted(CACHE.glob("*.tflite"))
    if not models:
        print(f"no models in {CACHE}: run the tests once (tests/test_real_models.py) to fetch them", file=sys.stderr)
        return 2
    rows = [
        "| model | ops | convert s | output | max abs error | mean abs error | max \\|ref\\| | noise floor | tolerance | result |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    unsupported = []
    notes: list[str] = []
    for path in models:
        model = ti.load(path)
        n_ops = sum(len(s.operators) for s in model.subgraphs)
        start = time.perf_counter()
        try:
            inverted = ti.invert(model)
        except ti.UnsupportedOpsError as error:
            unsupported.append(f"| {path.stem} | {n_ops} | " + ", ".join(
                f"{key} ×{p.count}" for key, p in sorted(error.problems.items())) + " |")
            continue
        seconds = time.perf_counter() - start
        report = ti.verify(path, inverted, draws=args.draws, float_range=(0.0, 1.0))
        for i, o in enumerate(report.outputs):
            first = i == 0
            rows.append(
                f"| {path.stem if first else ''} | {n_ops if first else ''} | {f'{seconds:.2f}' if first else ''} | "
                f"{o.name} {list(o.shape)} | {o.max_abs_error:.3g} | {o.mean_abs_error:.3g} | {o.magnitude:.4g} | "
                f"{'n/a' if o.noise_floor is None else format(o.noise_floor, '.3g')} | {o.tolerance:.3g} | "
                f"{'ok' if o.passed else 'FAIL'} |"
            )
        for note in report.notes:
            notes.append(f"- {path.stem}: {note.removeprefix('note: ')[:300]}")
        print(f"{path.stem}: {'PASSED' if report.passed else 'FAILED'}", file=sys.stderr, flush=True)
    text = "\n".join(rows)
    if notes:
        text += "\n\nNotes from verify:\n\n" + "\n".join(notes)
    if unsupported:
        text += "\n\nNot inverted yet (custom ops without builders):\n\n| model | ops | needs |\n|---|---:|---|\n" + "\n".join(unsupported)
    print(text)
    if args.markdown:
        args.markdown.write_text(
            "# MediaPipe 0.10.14 models\n\nMade by `python benchmarks/mediapipe_report.py --markdown docs/mediapipe.md` "
            f"on {time.strftime('%Y-%m-%d')}: each model inverted in memory and verified against LiteRT on "
            f"{args.draws} seeded draws of inputs uniform in [0, 1] (the range the models take). *convert s* is `ti.invert` (graph build and "
            "tracing), all models in one process in name order: the first also pays for TensorFlow's warm-up, the "
            "others run warm (docs/benchmarks.md times each model in a fresh process). An output passes when max abs error <= max(1e-4 × max(1, max|ref|), 2 × noise floor), the "
            "noise floor being LiteRT's default kernels against its reference kernels on the same input.\n\n" + text + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
