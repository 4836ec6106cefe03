"""Where re-quantization's time goes, per phase, for each mode (issue 13): one model, one process.

Phases of the TFLite-converter back end: invert (read, passes, variables, trace of the inverted
model), converter setup (concrete function, light trackable), calibration (the converter running the
representative samples: from the first sample asked for to the last), converter (the rest of
``convert``: MLIR lowering, quantization, serialisation), interface rewrite, compare (LiteRT, in a
subprocess). Of the ai-edge-quantizer back end: normalise, statistics (LiteRT on the samples),
quantize (aeq, each candidate), choice (LiteRT on the candidates), float edges, interface, compare.
Times are wall seconds, measured by wrapping the functions ``requantize`` calls.

    nice -n 10 python benchmarks/profile_requantize.py --model palm_detection_full --modes dynamic_range int8
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from bench_requantize import CACHE, SIGNED_INPUT, crops

PHASES = defaultdict(float)


@contextmanager
def wrapped(module, name: str, phase: str):
    original = getattr(module, name)

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            PHASES[phase] += time.perf_counter() - start

    setattr(module, name, timed)
    try:
        yield
    finally:
        setattr(module, name, original)


def profile(path: Path, mode: str, backend: str, calibration) -> dict[str, float]:
    import contextlib

    import tflite_inverter as ti
    from tflite_inverter.check import compare as compare_module
    from tflite_inverter.quant import aeq_path, converter_path, edge_quantizer, representative, uint8_throughout
    from tflite_inverter.quant.request import EDGE_QUANTIZER_MODES

    PHASES.clear()
    original_generator = representative.as_generator

    def as_generator(samples, progress=True, description="calibrating"):
        inner = original_generator(samples, False, description)

        def generate():
            start = time.perf_counter()
            yield from inner()
            PHASES["calibration"] += time.perf_counter() - start

        return generate

    with contextlib.ExitStack() as stack:
        # each name is patched where it is used (the modules import it by name)
        for module, name, phase in [(converter_path, "converter_for", "converter setup"),
                                    (aeq_path, "converter_for", "converter setup"),
                                    (converter_path, "kept_interface", "interface rewrite"),
                                    (aeq_path, "kept_interface", "interface rewrite"),
                                    (uint8_throughout, "kept_interface", "interface rewrite"),
                                    (compare_module, "compare", "compare"),
                                    (converter_path, "convert", "converter (with calibration)"),
                                    (aeq_path, "convert", "converter (with calibration)"),
                                    (edge_quantizer, "normalized", "aeq: normalise"),
                                    (edge_quantizer, "activation_statistics", "aeq: statistics (LiteRT)"),
                                    (edge_quantizer, "output_errors", "aeq: choice (LiteRT)"),
                                    (edge_quantizer, "with_float_edges", "aeq: float edges")]:
            stack.enter_context(wrapped(module, name, phase))
        converter_path.as_generator = as_generator
        stack.callback(setattr, converter_path, "as_generator", original_generator)
        start = time.perf_counter()
        source = path
        if backend == "tflite" and mode not in EDGE_QUANTIZER_MODES:
            source = ti.invert(path, io="float")
            for phase, seconds in source.timings.items():
                PHASES[f"invert: {phase}"] += seconds
        PHASES["invert"] = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as work:
            needs_data = mode in ("int8", "uint8", "int16x8", "uint8_throughout")
            start = time.perf_counter()
            report = ti.requantize(source, Path(work) / "out.tflite", mode=mode, backend=backend, progress=False,
                                   representative=calibration if needs_data else None)
            PHASES["requantize (all)"] = time.perf_counter() - start
    if "converter (with calibration)" in PHASES:
        PHASES["converter (with calibration)"] -= PHASES.get("calibration", 0.0)
        PHASES["converter"] = PHASES.pop("converter (with calibration)")
    PHASES["other"] = PHASES["requantize (all)"] - sum(v for k, v in PHASES.items() if k not in (
        "requantize (all)", "invert") and not k.startswith("invert:"))
    notes = [n for n in report.notes if n.startswith("back end")]
    return dict(PHASES), notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="palm_detection_full")
    parser.add_argument("--modes", nargs="+", default=["float16", "dynamic_range", "int8", "uint8", "int16x8",
                                                       "uint8_throughout", "weight_only_int8"])
    parser.add_argument("--backends", nargs="+", default=["tflite", "aeq"])
    parser.add_argument("--samples", type=int, default=8)
    args = parser.parse_args()
    import tensorflow as tf

    import tflite_inverter as ti

    tf.constant(0.0) + 1.0
    path = CACHE / f"{args.model}.tflite"
    shape = ti.load(path).main.tensors[ti.load(path).main.inputs[0]].shape
    calibration = crops(shape, args.samples, 0, args.model in SIGNED_INPUT)
    print(f"load average {os.getloadavg()[0]:.1f}")
    for mode in args.modes:
        for backend in args.backends:
            try:
                phases, notes = profile(path, mode, backend, calibration)
            except ti.TfliteInverterError as error:
                print(f"| {mode} | {backend} | - | {error} |")
                continue
            text = ", ".join(f"{k} {v:.2f}" for k, v in phases.items() if v >= 0.005)
            print(f"| {mode} | {backend} | {phases['invert'] + phases['requantize (all)']:.1f} | {text} |", flush=True)


if __name__ == "__main__":
    main()
