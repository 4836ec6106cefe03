"""Time per phase and peak memory of a conversion, per model, side by side in one run.

For each model a fresh Python process measures: TensorFlow's own baseline RSS (after import and
one op), the RSS the reader adds (the reader maps the file; weights are views, so this should be
a small fraction of the file), and the time of each phase: read, build (InvertedModel), save
SavedModel, save frozen pb; then the whole conversion's peak RSS. Ratios, not absolute times,
are the comparable numbers: ``read_rss/size`` (zero copy: < 5 %) and
``(peak - baseline)/weights`` (bound: <= 4).

    python benchmarks/bench_convert.py                    # MediaPipe models + a large float model
    python benchmarks/bench_convert.py --markdown docs/benchmarks.md
    python benchmarks/bench_convert.py --models a.tflite b.tflite

The large model (>= 300 MB of float32 weights) is made by ``make_large_model`` with the TFLite
converter and cached next to the MediaPipe models.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE = Path(os.environ.get("TFLITE_INVERTER_CACHE", Path.home() / ".cache" / "tflite_inverter"))
LARGE_MODEL = CACHE / "large_float_mlp.tflite"


def make_large_model(path: Path, layers: int = 5, width: int = 4096) -> Path:
    """A float MLP with ``layers`` dense ``width x width`` layers: 5 x 64 MiB = 320 MiB of weights."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    weights = [tf.constant(rng.normal(0, 1 / np.sqrt(width), (width, width)).astype(np.float32)) for _ in range(layers)]

    class Large(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, width], tf.float32)])
        def serve(self, x):
            for w in weights:
                x = tf.nn.relu(tf.matmul(x, w))
            return {"y": x}

    module = Large()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(converter.convert())
    return path


CHILD = r"""
import json, os, sys, tempfile, time

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024

def rss():
    return status("VmRSS")

path = sys.argv[1]
result = {"model": os.path.basename(path), "size": os.path.getsize(path)}
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
tf.reduce_sum(tf.ones([2]))  # initialise the runtime
import tflite_inverter as ti
from tflite_inverter.build.inverted import InvertedModel
result["baseline_rss"] = rss()

t = time.perf_counter(); before = rss()
model = ti.load(path)
result["read_s"] = time.perf_counter() - t
result["read_rss"] = rss() - before
result["weights"] = model.weight_bytes()
result["ops"] = sum(len(s.operators) for s in model.subgraphs)

t = time.perf_counter()
inverted = InvertedModel(model)
result["build_s"] = time.perf_counter() - t
result.update({f"{phase}_s": seconds for phase, seconds in inverted.timings.items()})
result["peak_after_build"] = status("VmHWM")
with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as out:
    t = time.perf_counter()
    inverted.save_saved_model(os.path.join(out, "saved_model"))
    result["saved_model_s"] = time.perf_counter() - t
    result["peak_after_saved_model"] = status("VmHWM")
    t = time.perf_counter()
    inverted.save_frozen_pb(os.path.join(out, "model.pb"))
    result["pb_s"] = time.perf_counter() - t
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the parent process.
result["peak_rss"] = status("VmHWM")
print(json.dumps(result))
"""


def measure(path: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        return {"model": path.name, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def mediapipe_models() -> list[Path]:
    folder = CACHE / "mediapipe-0.10.14"
    return sorted(folder.glob("*.tflite"))


def table(results: list[dict]) -> str:
    mb = 1e6
    lines = [
        "| model | size MB | weights MB | ops | read s | build s (scan / passes / variables / trace) | SavedModel s | pb s | read RSS MB | read RSS / size | TF baseline MB | peak MB | (peak - baseline) / weights |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error'][:80]} |" + " |" * 11)
            continue
        growth = (r["peak_rss"] - r["baseline_rss"]) / max(r["weights"], 1)
        phases = " / ".join(f"{r.get(phase + '_s', 0.0):.2f}" for phase in ("scan", "passes", "variables", "trace"))
        lines.append(
            f"| {r['model']} | {r['size'] / mb:.1f} | {r['weights'] / mb:.1f} | {r['ops']} | {r['read_s']:.3f} | "
            f"{r['build_s']:.2f} ({phases}) | {r['saved_model_s']:.2f} | {r['pb_s']:.2f} | {r['read_rss'] / mb:.1f} | "
            f"{r['read_rss'] / r['size']:.1%} | {r['baseline_rss'] / mb:.0f} | {r['peak_rss'] / mb:.0f} | {growth:.2f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", type=Path, help="models to measure (default: MediaPipe + large)")
    parser.add_argument("--markdown", type=Path, help="write the table, with the machine and date, to this file")
    parser.add_argument("--no-large", action="store_true", help="skip the large generated model")
    args = parser.parse_args()
    models = list(args.models or mediapipe_models())
    if not args.models and not args.no_large:
        if not LARGE_MODEL.exists():
            print(f"making {LARGE_MODEL} ...", file=sys.stderr)
            make_large_model(LARGE_MODEL)
        models.append(LARGE_MODEL)
    results = []
    for path in models:
        print(f"measuring {path.name} ...", file=sys.stderr, flush=True)
        results.append(measure(path))
    text = table(results)
    print(text)
    if args.markdown:
        large = [r for r in results if r.get("model") == LARGE_MODEL.name and "error" not in r]
        verdict = ""
        if large:
            r = large[0]
            zero_copy = r["read_rss"] / r["size"]
            growth = (r["peak_rss"] - r["baseline_rss"]) / r["weights"]
            verdict = (
                f"\nOn the large model ({r['weights'] / 1e6:.0f} MB of weights): reading added {zero_copy:.1%} of the file "
                f"to RSS (bound: under 5 %: {'met' if zero_copy < 0.05 else 'NOT met'}); the whole conversion's peak RSS "
                f"was TensorFlow's baseline + {growth:.2f} x the weight bytes (bound: 4 x: {'met' if growth <= 4 else 'NOT met'}).\n"
            )
        header = (
            "# Benchmarks\n\nMade by `python benchmarks/bench_convert.py --markdown docs/benchmarks.md` on "
            f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {sys.version.split()[0]}. Each model runs in a "
            "fresh process; times are wall-clock seconds of one run (compare ratios, not absolute numbers, across "
            "machines). *read RSS* is what `ti.load` adds to the resident set: weights stay views of the mapped file. "
            "*TF baseline* is the process's RSS after importing TensorFlow and running one op.\n\n"
        )
        args.markdown.write_text(header + text + "\n" + verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
