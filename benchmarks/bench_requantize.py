"""Re-quantization side by side with ai-edge-quantizer: time per phase and error against the float original.

For each model and mode: tflite_inverter's phases (invert, convert = trace + calibration + TFLite
converter, inside ``requantize``) and, where the interpreter can import it, ai-edge-quantizer's
(calibrate + quantize) with the matching recipe. Both models then run in LiteRT on the same
evaluation crops and are compared with the float original: the largest max and mean absolute error
over the outputs, each as a share of that output's magnitude (max |float|).

Calibration and evaluation data: seeded crops of scikit-image's bundled colour photographs,
resized to the model's input and scaled to [0, 1] (or [-1, 1] for the face detectors). This script
installs nothing: without ai-edge-quantizer it says so and measures tflite_inverter alone.

    python benchmarks/bench_requantize.py --models palm_detection_full --modes int8 dynamic_range
    python benchmarks/bench_requantize.py --markdown docs/benchmarks.md   # appends the table
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("TFLITE_INVERTER_CACHE", Path.home() / ".cache" / "tflite_inverter")) / "mediapipe-0.10.14"
SIGNED_INPUT = {"face_detection_short_range", "face_detection_full_range_sparse"}  # [-1, 1] inputs
# tflite_inverter mode -> ai-edge-quantizer recipe (None: no counterpart)
RECIPES = {"dynamic_range": "dynamic_wi8_afp32", "int8": "static_wi8_ai8", "int16x8": "static_wi8_ai16",
           "weight_only_int8": "weight_only_wi8_afp32", "float16": None, "uint8_throughout": None}


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


def bench_inverter(path: Path, mode: str, calibration, work: Path) -> dict:
    import tflite_inverter as ti

    from tflite_inverter.quant.requantize import EDGE_QUANTIZER_MODES

    start = time.perf_counter()
    if mode in EDGE_QUANTIZER_MODES:  # a float file goes to ai-edge-quantizer without inversion
        source = path.read_bytes()  # bytes: no reference, so requantize runs no comparison (timed apart)
    else:
        source = ti.invert(path, io="float")
    invert_s = time.perf_counter() - start
    start = time.perf_counter()
    needs_data = mode in ("int8", "int16x8", "uint8_throughout")
    out = work / f"ti_{mode}.tflite"
    ti.requantize(source, out, mode=mode, representative=calibration if needs_data else None,
                  io_dtype="float" if mode == "int8" else None, progress=False, overwrite=True)
    return {"invert_s": invert_s, "convert_s": time.perf_counter() - start, "path": out}


def bench_edge(path: Path, mode: str, calibration, work: Path) -> dict | None:
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
    result = runner.quantize(calibration_result, enable_progress_report=False)
    out = work / f"aeq_{mode}.tflite"
    out.write_bytes(bytes(result.quantized_model))
    return {"total_s": time.perf_counter() - start, "path": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["palm_detection_full", "face_detection_short_range"])
    parser.add_argument("--modes", nargs="+", default=["dynamic_range", "int8", "weight_only_int8"])
    parser.add_argument("--samples", type=int, default=8, help="calibration and evaluation crops (each)")
    parser.add_argument("--markdown", type=Path, help="append the table to this file")
    args = parser.parse_args()
    try:
        import ai_edge_quantizer  # noqa: F401
        have_edge = True
    except ImportError:
        have_edge = False
        print("ai-edge-quantizer is not importable here: measuring tflite_inverter alone")
    import tensorflow as tf  # imported before timing: the first phase would otherwise include it

    import tflite_inverter as ti

    tf.constant(0.0) + 1.0
    rows = []
    for name in args.models:
        path = CACHE / f"{name}.tflite"
        shape = ti.load(path).main.tensors[ti.load(path).main.inputs[0]].shape
        calibration = crops(shape, args.samples, 0, name in SIGNED_INPUT)
        evaluation = [[x[None]] for x in crops(shape, args.samples, 1, name in SIGNED_INPUT)]
        for mode in args.modes:
            with tempfile.TemporaryDirectory() as work:
                ours = bench_inverter(path, mode, calibration, Path(work))
                ours_max, ours_mean = errors(str(path), str(ours["path"]), evaluation)
                edge = bench_edge(path, mode, calibration, Path(work)) if have_edge else None
                edge_err = errors(str(path), str(edge["path"]), evaluation) if edge else (None, None)
            row = dict(model=name, mode=mode, invert_s=ours["invert_s"], convert_s=ours["convert_s"],
                       max=ours_max, mean=ours_mean, edge_s=edge["total_s"] if edge else None,
                       edge_max=edge_err[0], edge_mean=edge_err[1])
            rows.append(row)
            print(row, flush=True)

    def fmt(value, spec):
        return "-" if value is None else format(value, spec)

    load = os.getloadavg()[0]
    lines = [f"\n## Re-quantization against ai-edge-quantizer (load average {load:.1f}, {args.samples} crops each)\n",
             "| model | mode | invert s | convert s | total s | AEQ s | ratio | max err | AEQ max err | mean err | AEQ mean err |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        total = r["invert_s"] + r["convert_s"]
        ratio = total / r["edge_s"] if r["edge_s"] else None
        lines.append(f"| {r['model']} | {r['mode']} | {r['invert_s']:.1f} | {r['convert_s']:.1f} | {total:.1f} | "
                     f"{fmt(r['edge_s'], '.1f')} | {fmt(ratio, '.1f')} | {r['max']:.1%} | {fmt(r['edge_max'], '.1%')} | "
                     f"{r['mean']:.2%} | {fmt(r['edge_mean'], '.2%')} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown:
        with open(args.markdown, "a") as handle:
            handle.write(table + "\n")


if __name__ == "__main__":
    main()
