"""Re-quantization of the MediaPipe models in every mode, side by side with ai-edge-quantizer.

For each model and mode: ``requantize`` from the ``.tflite`` (its default back end, or ``--backend``),
timed whole but for the comparison, which is done apart: size, time, the back end it chose, the ops
left in float; and, where the interpreter can import it and has the mode's recipe, ai-edge-quantizer
alone (its normalised copy, its own calibration, its default recipe). Both models then run in LiteRT on
the same evaluation crops and are compared with the float original: the largest max and mean absolute
error over the outputs, each as a share of that output's magnitude (max |float|). A failure is a row
of the table, not the end of the run.

Calibration and evaluation data: seeded crops of scikit-image's bundled colour photographs,
resized to the model's input and scaled to [0, 1] (or [-1, 1] for the face detectors). This script
installs nothing: without ai-edge-quantizer it says so and measures tflite_inverter alone.

    python benchmarks/bench_requantize.py --models palm_detection_full --modes int8 dynamic_range
    nice -n 10 python benchmarks/bench_requantize.py --markdown /tmp/requantize.md   # 14 models x 8 modes
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# This checkout's package, not an installed copy (benchmarks/ is the first entry of sys.path otherwise).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CACHE = Path(os.environ.get("TFLITE_INVERTER_CACHE", Path.home() / ".cache" / "tflite_inverter")) / "mediapipe-0.10.14"
SIGNED_INPUT = {"face_detection_short_range", "face_detection_full_range_sparse"}  # [-1, 1] inputs
MEDIAPIPE = ["face_detection_full_range_sparse", "face_detection_short_range", "face_landmark",
             "face_landmark_with_attention", "hand_landmark_full", "hand_landmark_lite", "hand_recrop", "iris_landmark",
             "palm_detection_full", "palm_detection_lite", "pose_detection", "pose_landmark_full", "selfie_segmentation",
             "selfie_segmentation_landscape"]
MODES = ["float16", "dynamic_range", "int8", "uint8", "int16x8", "uint8_throughout", "weight_only_int8", "weight_only_int4"]
# tflite_inverter mode -> ai-edge-quantizer recipe (absent: no counterpart)
RECIPES = {"dynamic_range": "dynamic_wi8_afp32", "int8": "static_wi8_ai8", "int16x8": "static_wi8_ai16",
           "weight_only_int8": "weight_only_wi8_afp32", "weight_only_int4": "weight_only_wi4_afp32"}
NEEDS_DATA = ("int8", "uint8", "int16x8", "uint8_throughout")


def crops(shape, count: int, seed: int, signed: bool) -> np.ndarray:
    """``count`` seeded crops of the skimage colour photographs, resized to ``shape`` (N, H, W, 3)."""
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = [getattr(skimage.data, name)()[..., :3] for name in ("astronaut", "chelsea", "coffee", "rocket")]
    height, width = shape[1], shape[2]
    out = []
    for _ in range(count):
        photo = photos[rng.integers(len(photos))]
        size = int(rng.integers(min(photo.shape[:2]) // 2, min(photo.shape[:2]) + 1))
        top, left = rng.integers(photo.shape[0] - size + 1), rng.integers(photo.shape[1] - size + 1)
        image = Image.fromarray(photo[top:top + size, left:left + size]).resize((width, height), Image.BILINEAR)
        out.append(np.asarray(image, np.float32) / 255.0)
    data = np.stack(out)
    return data * 2.0 - 1.0 if signed else data


def errors(reference: str, candidate: str, samples) -> tuple[float, float]:
    import tflite_inverter as ti

    report = ti.compare(reference, candidate, inputs=samples)
    return (max(o.max_abs_error / max(o.magnitude, 1e-12) for o in report.outputs),
            max(o.mean_abs_error / max(o.magnitude, 1e-12) for o in report.outputs))


def litert_reference(path: Path, work: Path) -> Path:
    """``path`` when LiteRT can run it; else (face_landmark_with_attention: MediaPipe custom ops LiteRT
    has no kernel for) a float32 re-conversion of its inversion, built in float32
    (``float32_arithmetic``), whose custom ops are builtin ops: the reference the errors are taken on."""
    import tensorflow as tf

    import tflite_inverter as ti
    from tflite_inverter.ops.mediapipe import float32_arithmetic
    from tflite_inverter.quant.report import runs_in_litert

    if runs_in_litert(ti.load(path)):
        return path
    with float32_arithmetic():
        inverted = ti.invert(path, io="float")
    function = inverted.concrete_functions[inverted.default_signature]
    data = tf.lite.TFLiteConverter.from_concrete_functions([function], inverted.module).convert()
    out = work / f"{path.stem}_float32_reference.tflite"
    out.write_bytes(data)
    return out


def bench_inverter(path: Path, mode: str, calibration, work: Path, backend: str = "auto") -> dict:
    """``requantize`` from the ``.tflite`` itself, all of it timed but the comparison (timed apart)."""
    import tflite_inverter as ti

    out = work / f"ti_{mode}.tflite"
    start = time.perf_counter()
    report = ti.requantize(path, out, mode=mode, representative=calibration if mode in NEEDS_DATA else None,
                           progress=False, overwrite=True, backend=backend, compare=False)
    seconds = time.perf_counter() - start
    used = "aeq" if any(n.startswith("back end: ai-edge-quantizer") for n in report.notes) else "tflite"
    return {"seconds": seconds, "path": out, "backend": used, "size": report.size_bytes,
            "float_ops": sum(report.float_ops.values())}


def bench_edge(path: Path, mode: str, calibration, work: Path) -> dict | None:
    """ai-edge-quantizer alone with its default recipe and calibration (after the normalised copy it needs)."""
    recipe_name = RECIPES.get(mode)
    if recipe_name is None:
        return None
    from ai_edge_quantizer import quantizer, recipe

    from tflite_inverter.quant.edge_quantizer import normalized

    start = time.perf_counter()
    data = normalized(path.read_bytes())  # the preparation step ai-edge-quantizer needs on these files
    runner = quantizer.Quantizer(data, getattr(recipe, recipe_name)())
    calibration_result = None
    if runner.need_calibration:
        import tflite_inverter as ti

        name = list(ti.load(data).signatures[0].inputs)[0]
        calibration_result = runner.calibrate({"serving_default": [{name: x[None]} for x in calibration]})
    result = runner.quantize(calibration_result, enable_progress_report=False, enable_progress_bar=False)
    out = work / f"aeq_{mode}.tflite"
    out.write_bytes(bytes(result.quantized_model))
    return {"seconds": time.perf_counter() - start, "path": out, "size": len(result.quantized_model)}


REPEAT_UNDER = 5.0  # seconds: longer runs are timed once


def fastest_of(repeat: int, with_edge: bool, row: dict, ours, edge) -> tuple[dict | None, dict | None]:
    """Both tools' results, each run up to ``repeat`` times, alternately (ours, aeq, ours, ...) while
    its runs take under :data:`REPEAT_UNDER`, its fastest time kept; their errors in ``row``. Each run
    writes the same file (both tools are deterministic), so the errors are measured once, after."""
    best: dict[str, dict | None] = {"ours": None, "edge": None}
    for turn in range(max(repeat, 1)):
        for key, run, error_key in (("ours", ours, "error"), ("edge", edge if with_edge else None, "edge_error")):
            if run is None or (turn and (best[key] is None or best[key]["seconds"] >= REPEAT_UNDER)):
                continue
            result, row[error_key] = run()
            if result is not None and (best[key] is None or result["seconds"] < best[key]["seconds"]):
                best[key] = result
    return best["ours"], best["edge"]


def attempt(function, *args):
    """(result, None) or (None, the error's first line): one failure must not stop the table."""
    try:
        return function(*args), None
    except Exception as error:  # noqa: BLE001 -- any failure is a row of the table
        return None, f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"[:160]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MEDIAPIPE)
    parser.add_argument("--modes", nargs="+", default=MODES)
    parser.add_argument("--backend", default="auto", choices=["auto", "aeq", "tflite"])
    parser.add_argument("--samples", type=int, default=32, help="calibration and evaluation crops (each; the "
                        "issue's measurement used 32: with 8 the choice between calibrations is at the mercy of a few crops)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each tool, alternately, when a run takes under "
                        f"{REPEAT_UNDER:g} s; the fastest is kept (0.1 s runs on a shared machine vary by 2x)")
    parser.add_argument("--markdown", type=Path, help="write the two tables (every mode; against aeq) to this file")
    parser.add_argument("--json", type=Path, help="write the rows to this file (one JSON object a line, appended)")
    parser.add_argument("--tables-from", type=Path, metavar="JSON", help="only print (and --markdown) the tables of "
                        "rows written before with --json, in the order of --models and --modes")
    args = parser.parse_args()
    if args.tables_from:
        found = [json.loads(line) for line in args.tables_from.read_text().splitlines() if line.strip()]
        by_key = {(r["model"], r["mode"]): r for r in found}
        rows = [by_key[(m, mode)] for m in args.models for mode in args.modes if (m, mode) in by_key]
        loads = [tuple(r["load"]) for r in rows if "load" in r] or [(float("nan"),) * 3]
        text = tables(rows, args.samples, min(loads), max(loads), args.repeat)
        print(text)
        if args.markdown:
            args.markdown.write_text(text)
        return
    try:
        import ai_edge_quantizer  # noqa: F401
        have_edge = True
    except ImportError:
        have_edge = False
        print("ai-edge-quantizer is not importable here: measuring tflite_inverter alone")
    import tensorflow as tf  # imported before timing: the first phase would otherwise include it

    import tflite_inverter as ti

    tf.constant(0.0) + 1.0
    load_before = os.getloadavg()
    rows = []
    for name in args.models:
        path = CACHE / f"{name}.tflite"
        shape = ti.load(path).main.tensors[ti.load(path).main.inputs[0]].shape
        calibration = crops(shape, args.samples, 0, name in SIGNED_INPUT)
        evaluation = [[x[None]] for x in crops(shape, args.samples, 1, name in SIGNED_INPUT)]
        keep = tempfile.TemporaryDirectory()
        reference = litert_reference(path, Path(keep.name))
        for mode in args.modes:
            row = dict(model=name, mode=mode, original=path.stat().st_size, load=os.getloadavg())
            with tempfile.TemporaryDirectory() as work:
                ours, edge = fastest_of(args.repeat, have_edge and mode in RECIPES, row,
                                        lambda: attempt(bench_inverter, path, mode, calibration, Path(work), args.backend),
                                        lambda: attempt(bench_edge, path, mode, calibration, Path(work)))
                if ours:
                    row.update(seconds=ours["seconds"], backend=ours["backend"], size=ours["size"],
                               float_ops=ours["float_ops"])
                    measured, row["compare_error"] = attempt(errors, str(reference), str(ours["path"]), evaluation)
                    if measured:
                        row["max"], row["mean"] = measured
                if have_edge and mode in RECIPES:
                    if edge:
                        row.update(edge_seconds=edge["seconds"], edge_size=edge["size"])
                        measured, row["edge_compare_error"] = attempt(errors, str(reference), str(edge["path"]), evaluation)
                        if measured:
                            row["edge_max"], row["edge_mean"] = measured
            if reference != path:
                row["reference"] = "float32 re-conversion"
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                with open(args.json, "a") as handle:
                    handle.write(json.dumps(row) + "\n")
        keep.cleanup()
    load_after = os.getloadavg()
    text = tables(rows, args.samples, load_before, load_after, args.repeat)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def label(row: dict) -> str:
    return row["model"] + ("*" if row.get("reference") else "")


def tables(rows: list[dict], samples: int, load_before, load_after, repeat: int = 1) -> str:
    """Markdown: every model x mode (size, time, error, back end), and the modes both tools have."""
    best = f", times the fastest of {repeat} alternate runs under {REPEAT_UNDER:g} s" if repeat > 1 else ""
    header = (f"{len(rows)} runs, {samples} calibration and {samples} evaluation crops{best}, load average "
              f"{load_before[0]:.1f} before / {load_after[0]:.1f} after (2 cores, shared)\n")
    if any(r.get("reference") for r in rows):
        header += ("\n*: LiteRT cannot run the original (custom ops without a kernel): errors are against its float32 "
                   "re-conversion\n")
    lines = [header, "| model | mode | back end | size MB (original) | time s | max err | mean err | ops in float |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.get("error"):
            lines.append(f"| {label(r)} | {r['mode']} | - | - | - | fails: {r['error']} | | |")
            continue
        error = (f"{r['max']:.1%} | {r['mean']:.2%}" if "max" in r else
                 "not compared (LiteRT cannot run its custom ops) |" if "reference interpreter failed" in
                 (r.get("compare_error") or "") else f"not compared: {r.get('compare_error', '')[:60]} |")
        lines.append(f"| {label(r)} | {r['mode']} | {r['backend']} | {r['size'] / 1e6:.2f} ({r['original'] / 1e6:.2f}) | "
                     f"{r['seconds']:.2f} | {error} | {r['float_ops']} |")
    lines += ["", "| model | mode | back end | time s | AEQ s | ratio | max err | AEQ max err | mean err | AEQ mean err |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["mode"] not in RECIPES:
            continue
        ratio = r["seconds"] / r["edge_seconds"] if r.get("seconds") and r.get("edge_seconds") else None
        edge_time = _fmt(r.get("edge_seconds"), ".2f") if not r.get("edge_error") else "fails"
        lines.append(f"| {label(r)} | {r['mode']} | {r.get('backend', '-')} | {_fmt(r.get('seconds'), '.2f')} | "
                     f"{edge_time} | {_fmt(ratio, '.1f')} | {_fmt(r.get('max'), '.1%')} | {_fmt(r.get('edge_max'), '.1%')} | "
                     f"{_fmt(r.get('mean'), '.2%')} | {_fmt(r.get('edge_mean'), '.2%')} |")
    failures = [f"- {r['model']} {r['mode']}: " + "; ".join(f"{k} {r[k]}" for k in ("error", "compare_error", "edge_error",
                                                                                     "edge_compare_error") if r.get(k))
                for r in rows if any(r.get(k) for k in ("error", "compare_error", "edge_error", "edge_compare_error"))]
    if failures:
        lines += ["", "Failures and models not compared:", *failures]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
