"""Time per phase and peak memory of a conversion, per model, side by side in one run.

For each model a fresh Python process measures: TensorFlow's own baseline RSS (after import and
one op), the RSS the reader adds (the reader maps the file; weights are views, so this should be
a small fraction of the file), and the time of each phase: read, build (InvertedModel), save
SavedModel, save frozen pb; then the whole conversion's peak RSS. Ratios, not absolute times,
are the comparable numbers: ``read_rss/size`` (zero copy: < 5 %) and
``(peak - baseline)/weights`` (issue 14's bound: <= 1.5). *convert s* is the whole conversion after
imports (read + build + SavedModel), with its CPU seconds next to it (the number to compare on a
loaded machine). TensorFlow is imported as the CLI imports it, without Keras; ``BENCH_WITH_KERAS=1``
imports it whole, as a notebook has it.

With ``--inference`` (or alone, ``--inference-only``) it also times running the result: the inverted
SavedModel loaded with ``tf.saved_model.load``, warm, per call, next to LiteRT (XNNPACK, the
interpreter's default delegate) on the same ``.tflite``, each in its own fresh process with the same
thread count, at batch 1 and batch 8 (the inversion with ``input_shapes`` at batch 8, strict, so a
model whose graph hard-codes its batch says so; LiteRT with its inputs resized).

    python benchmarks/bench_convert.py                    # MediaPipe models + a large float model
    python benchmarks/bench_convert.py --markdown docs/benchmarks.md
    python benchmarks/bench_convert.py --models a.tflite b.tflite
    python benchmarks/bench_convert.py --inference-only --models a.tflite   # time per call only

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

BEGIN, END = "<!-- bench_convert: begin -->", "<!-- bench_convert: end -->"
ROOT = Path(__file__).resolve().parents[1]
# Child processes import this checkout's package, not an installed copy.
CHILD_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
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
from tflite_inverter.logs import import_tensorflow
# TensorFlow imported as the CLI imports it: without Keras (with Keras loaded, as in a notebook,
# building takes about 1.4x as long: docs/benchmarks.md)
tf = import_tensorflow(without_keras=os.environ.get("BENCH_WITH_KERAS") != "1")
tf.reduce_sum(tf.ones([2]))  # initialise the runtime
import tflite_inverter as ti
from tflite_inverter.build.inverted import InvertedModel
result["baseline_rss"] = rss()

cpu = time.process_time()
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
    result["convert_cpu_s"] = time.process_time() - cpu
    result["peak_after_saved_model"] = status("VmHWM")
    t = time.perf_counter()
    inverted.save_frozen_pb(os.path.join(out, "model.pb"))
    result["pb_s"] = time.perf_counter() - t
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the parent process.
result["peak_rss"] = status("VmHWM")
print(json.dumps(result))
"""


# Time per call of a callable: 3 warm-up calls, then calls until 1 s (at least 5, at most 200); the median.
TIMER = r"""
import time, statistics

def per_call(call):
    for _ in range(3):
        call()
    times, start = [], time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < 1.0 and len(times) < 200):
        t = time.perf_counter(); call(); times.append(time.perf_counter() - t)
    return statistics.median(times)
"""

TF_INFERENCE_CHILD = TIMER + r"""
import json, os, sys, tempfile
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import numpy as np
import tensorflow as tf
import tflite_inverter as ti

path, batch = sys.argv[1], int(sys.argv[2])
model = ti.load(path)
first = ti.invert(model)
shapes = None
if batch != 1:
    shapes = {s.name: [batch, *s.shape[1:]] for s in first.inputs() if s.shape and s.shape[0] in (1, None)}
    if not shapes:
        print(json.dumps({"error": "no input with a batch dimension"})); sys.exit(0)
try:
    inverted = ti.invert(model, input_shapes=shapes, strict=True) if shapes else first
except ti.TfliteInverterError as exc:
    print(json.dumps({"error": str(exc).splitlines()[0][:200]})); sys.exit(0)
rng = np.random.default_rng(0)
feeds = {}
for spec in inverted.inputs():
    shape = [d if d is not None else 1 for d in (shapes or {}).get(spec.name, spec.shape)]
    if spec.dtype.startswith("float"):
        feeds[spec.name] = tf.constant(rng.uniform(-1, 1, shape).astype(spec.dtype))
    else:
        info = np.iinfo(spec.dtype)
        feeds[spec.name] = tf.constant(rng.integers(max(info.min, -128), min(info.max, 127), shape, endpoint=True).astype(spec.dtype))
with tempfile.TemporaryDirectory() as out:
    inverted.save_saved_model(os.path.join(out, "sm"))
    loaded = tf.saved_model.load(os.path.join(out, "sm"))
    function = loaded.signatures[inverted.default_signature]
    seconds = per_call(lambda: [v.numpy() for v in function(**feeds).values()])
print(json.dumps({"seconds": seconds, "threads": os.cpu_count()}))
"""

LITERT_INFERENCE_CHILD = TIMER + r"""
import json, os, sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter

path, batch = sys.argv[1], int(sys.argv[2])
try:
    interpreter = Interpreter(model_path=path, num_threads=os.cpu_count())  # XNNPACK: the default delegate
    details = interpreter.get_input_details()
    if batch != 1:
        batched = [d for d in details if len(d["shape"]) and d["shape"][0] == 1]
        if not batched:
            print(json.dumps({"error": "no input with a batch dimension"})); sys.exit(0)
        for d in batched:
            interpreter.resize_tensor_input(d["index"], [batch, *d["shape"][1:]], strict=False)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for d in interpreter.get_input_details():
        if np.issubdtype(d["dtype"], np.floating):
            value = rng.uniform(-1, 1, d["shape"]).astype(d["dtype"])
        else:
            info = np.iinfo(d["dtype"])
            value = rng.integers(max(info.min, -128), min(info.max, 127), d["shape"], endpoint=True).astype(d["dtype"])
        interpreter.set_tensor(d["index"], value)
    outputs = [d["index"] for d in interpreter.get_output_details()]

    def call():
        interpreter.invoke()
        return [interpreter.get_tensor(i) for i in outputs]

    print(json.dumps({"seconds": per_call(call), "threads": os.cpu_count()}))
except Exception as exc:  # a model LiteRT cannot run (MediaPipe custom ops): reported, not fatal
    print(json.dumps({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"}))
"""


def _child(script: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=CHILD_ENV)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()
        return {"error": tail[-1][:200] if tail else f"exit {done.returncode}"}
    return json.loads(lines[-1])


def measure_inference(path: Path, batches=(1, 8)) -> dict:
    """Time per call (warm) of the inverted SavedModel and of LiteRT, per batch size."""
    result = {"model": path.name}
    for batch in batches:
        result[f"tf_{batch}"] = _child(TF_INFERENCE_CHILD, str(path), str(batch))
        result[f"litert_{batch}"] = _child(LITERT_INFERENCE_CHILD, str(path), str(batch))
    return result


def inference_table(results: list[dict], batches=(1, 8)) -> str:
    def cell(entry):
        return f"{entry['seconds'] * 1e3:.2f}" if "seconds" in entry else "n/a"

    head = "| model | " + " | ".join(f"SavedModel ms (batch {b}) | LiteRT ms (batch {b}) | ratio (batch {b})" for b in batches) + " |"
    lines = [head, "|---|" + "---:|---:|---:|" * len(batches)]
    notes = []
    for r in results:
        cells = [r["model"]]
        for b in batches:
            tf_entry, lite = r[f"tf_{b}"], r[f"litert_{b}"]
            cells += [cell(tf_entry), cell(lite)]
            both = "seconds" in tf_entry and "seconds" in lite
            cells.append(f"{tf_entry['seconds'] / lite['seconds']:.2f}" if both else "–")
            for tool, entry in (("SavedModel", tf_entry), ("LiteRT", lite)):
                if "error" in entry:
                    notes.append(f"{r['model']} batch {b}, {tool}: {entry['error']}")
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    if notes:
        text += "\n\n" + "\n".join(f"- {n}" for n in notes)
    return text


def measure(path: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, env=CHILD_ENV)
    if done.returncode != 0:
        return {"model": path.name, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def mediapipe_models() -> list[Path]:
    folder = CACHE / "mediapipe-0.10.14"
    return sorted(folder.glob("*.tflite"))


def table(results: list[dict]) -> str:
    mb = 1e6
    lines = [
        "| model | size MB | weights MB | ops | read s | build s (scan / passes / variables / trace) | SavedModel s | convert s (CPU s) | pb s | read RSS MB | read RSS / size | TF baseline MB | peak MB | (peak - baseline) / weights |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | error: {r['error'][:80]} |" + " |" * 12)
            continue
        growth = (r["peak_rss"] - r["baseline_rss"]) / max(r["weights"], 1)
        phases = " / ".join(f"{r.get(phase + '_s', 0.0):.2f}" for phase in ("scan", "passes", "variables", "trace"))
        lines.append(
            f"| {r['model']} | {r['size'] / mb:.1f} | {r['weights'] / mb:.1f} | {r['ops']} | {r['read_s']:.3f} | "
            f"{r['build_s']:.2f} ({phases}) | {r['saved_model_s']:.2f} | "
            f"{r['read_s'] + r['build_s'] + r['saved_model_s']:.2f} ({r['convert_cpu_s']:.2f}) | {r['pb_s']:.2f} | {r['read_rss'] / mb:.1f} | "
            f"{r['read_rss'] / r['size']:.1%} | {r['baseline_rss'] / mb:.0f} | {r['peak_rss'] / mb:.0f} | {growth:.2f} |"
        )
    return "\n".join(lines)


def write_section(path: Path, text: str) -> None:
    """Replace this benchmark's marked section of ``path`` (the rest of the file is other benchmarks'),
    or start the file with it."""
    import re

    block = f"{BEGIN}\n{text.rstrip()}\n{END}"
    old = path.read_text() if path.exists() else ""
    if BEGIN in old and END in old:
        new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, old, flags=re.S)
    else:
        new = "# Benchmarks\n\n" + block + "\n\n" + old.removeprefix("# Benchmarks").lstrip()
    path.write_text(new)


def large_model_verdict(results: list[dict]) -> str:
    """Issue 14's bounds on the large float model: zero-copy read, SavedModel <= 6 s, with the pb <= 9 s,
    peak RSS <= TensorFlow's baseline + 1.5 x the weights (after the SavedModel, and after the pb too)."""
    large = [r for r in results if r.get("model") == LARGE_MODEL.name and "error" not in r]
    if not large:
        return ""
    r = large[0]

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    zero_copy = r["read_rss"] / r["size"]
    saved_model = r["read_s"] + r["build_s"] + r["saved_model_s"]
    with_pb = saved_model + r["pb_s"]
    growth_sm = (r["peak_after_saved_model"] - r["baseline_rss"]) / r["weights"]
    growth = (r["peak_rss"] - r["baseline_rss"]) / r["weights"]
    return (
        f"\nOn the large model ({r['weights'] / 1e6:.0f} MB of weights): reading added {zero_copy:.1%} of the file "
        f"to RSS (bound: under 5 %: {met(zero_copy < 0.05)}); convert to SavedModel after imports {saved_model:.2f} s "
        f"(bound 6 s: {met(saved_model <= 6)}), with the frozen pb {with_pb:.2f} s (bound 9 s: {met(with_pb <= 9)}); peak RSS "
        f"TensorFlow's baseline + {growth_sm:.2f} x the weight bytes after the SavedModel and + {growth:.2f} x after the pb "
        f"(bound: 1.5 x: {met(growth_sm <= 1.5)} / {met(growth <= 1.5)}).\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", type=Path, help="models to measure (default: MediaPipe + large)")
    parser.add_argument("--markdown", type=Path, help="write the table, with the machine and date, to this file")
    parser.add_argument("--no-large", action="store_true", help="skip the large generated model")
    parser.add_argument("--inference", action="store_true", help="also time the SavedModel and LiteRT per call")
    parser.add_argument("--inference-only", action="store_true", help="only time the SavedModel and LiteRT per call")
    args = parser.parse_args()
    models = list(args.models or mediapipe_models())
    if not args.models and not args.no_large and not args.inference_only:
        if not LARGE_MODEL.exists():
            print(f"making {LARGE_MODEL} ...", file=sys.stderr)
            make_large_model(LARGE_MODEL)
        models.append(LARGE_MODEL)
    text, verdict = "", ""
    if not args.inference_only:
        results = []
        for path in models:
            print(f"measuring {path.name} ...", file=sys.stderr, flush=True)
            results.append(measure(path))
        text = table(results)
        verdict = large_model_verdict(results)
        print(text + "\n" + verdict)
    if args.inference or args.inference_only:
        timed = []
        for path in models:
            if path == LARGE_MODEL:
                continue
            print(f"timing inference of {path.name} ...", file=sys.stderr, flush=True)
            timed.append(measure_inference(path))
        inference = (
            f"\n## Inference time per call\n\nWarm calls of the inverted SavedModel (`tf.saved_model.load`, signature "
            f"called with tensors, outputs fetched as numpy) and of LiteRT (XNNPACK, {os.cpu_count()} threads) on the same "
            "model, each in a fresh process; median per call in milliseconds. Batch 8: the inversion with "
            "`input_shapes` (strict), LiteRT's inputs resized.\n\n" + inference_table(timed) + "\n"
        )
        print(inference)
        text += inference
    if args.markdown:
        header = (
            "Made by `python benchmarks/bench_convert.py --markdown docs/benchmarks.md` on "
            f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, Python {sys.version.split()[0]}, load average "
            f"{os.getloadavg()[0]:.2f} at the end. Each model runs in a "
            "fresh process; times are wall-clock seconds of one run (compare ratios, not absolute numbers, across "
            "machines). *read RSS* is what `ti.load` adds to the resident set: weights stay views of the mapped file. "
            "*TF baseline* is the process's RSS after importing TensorFlow and running one op. TensorFlow is "
            + ("imported whole, with Keras (BENCH_WITH_KERAS=1)" if os.environ.get("BENCH_WITH_KERAS") == "1" else
               "imported as the CLI imports it, without Keras") + ".\n\n"
        )
        write_section(args.markdown, header + text + "\n" + verdict)
    return 0


if __name__ == "__main__":
    sys.exit(main())
