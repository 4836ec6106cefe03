"""Per-phase profile of one conversion after imports: CPU and wall seconds per phase, with
``tf.saved_model.save`` split into its own phases (from cProfile's cumulative times).

    python benchmarks/profile_convert.py MODEL.tflite [--pb] [--top 25]

Phases: read (``ti.load``), scan / passes / variables / trace (``InvertedModel.timings``, wall),
SavedModel, frozen pb. Inside the SavedModel: the variables copied into the export graph
(``map_resources``), the signature wrappers (``canonicalize_signatures``), TensorFlow's traced saver
functions (``to_proto``; skipped by the emitter), the saver added as plain nodes (``add_saver``), the
graph and function library as a GraphDef (``_as_graph_def``), the object graph, the checkpoint write
of the variables (``checkpoint save``). Under cProfile everything is slower (about 1.5x); compare
shares, and use the CPU seconds when the machine is loaded.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package, not an installed one
# (label, file suffix, function name) of the TensorFlow functions that split tf.saved_model.save.
SAVE_PHASES = (
    ("variables copied into the export graph", "saved_model/save.py", "map_resources"),
    ("signature wrappers traced", "saved_model/signature_serialization.py", "canonicalize_signatures"),
    ("saveables gathered", "checkpoint/save_util_v1.py", "frozen_saveables_and_savers"),
    ("TF's saver functions traced", "checkpoint/functional_saver.py", "to_proto"),
    ("GraphDef + function library", "framework/ops.py", "_as_graph_def"),
    ("object graph serialized", "saved_model/save.py", "_serialize_object_graph"),
    ("checkpoint write (variables)", "checkpoint/checkpoint.py", "save"),
    ("saver as plain nodes (emit)", "emit/saved_model.py", "add_saver"),
)


def cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    return max((entry[3] for (file, _, function), entry in stats.stats.items()
                if function == name and file.replace(os.sep, "/").endswith(suffix)), default=0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--pb", action="store_true", help="also write the frozen pb")
    parser.add_argument("--top", type=int, default=0, help="also print the top N functions by own time")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.reduce_sum(tf.ones([2]))  # the runtime initialised: not part of the conversion
    import tflite_inverter as ti
    from tflite_inverter.build.inverted import InvertedModel

    rows: list[tuple[str, float, float]] = []
    profile = cProfile.Profile()

    def phase(label, function):
        cpu, wall = time.process_time(), time.perf_counter()
        profile.enable()
        try:
            return function()
        finally:
            profile.disable()
            rows.append((label, time.process_time() - cpu, time.perf_counter() - wall))

    model = phase("read", lambda: ti.load(args.model))
    inverted = phase("build (InvertedModel)", lambda: InvertedModel(model))
    with tempfile.TemporaryDirectory() as out:
        phase("SavedModel", lambda: inverted.save_saved_model(os.path.join(out, "saved_model")))
        stats = pstats.Stats(profile)
        save_split = [(label, cumulative(stats, suffix, name)) for label, suffix, name in SAVE_PHASES]
        if args.pb:
            phase("frozen pb", lambda: inverted.save_frozen_pb(os.path.join(out, "model.pb")))
    stats = pstats.Stats(profile)
    operators = sum(len(sg.operators) for sg in inverted.prepared.subgraphs)
    print(f"{os.path.basename(args.model)}: {operators} operators, {len(inverted.module.weights)} weight variables, "
          f"load average {os.getloadavg()[0]:.2f}")
    print("| phase | CPU s | wall s |\n|---|---:|---:|")
    for label, cpu, wall in rows:
        print(f"| {label} | {cpu:.3f} | {wall:.3f} |")
        if label.startswith("build"):
            for name, seconds in inverted.timings.items():
                print(f"| &nbsp;&nbsp;{name} (wall) | | {seconds:.3f} |")
        if label == "SavedModel":
            for name, seconds in save_split:
                print(f"| &nbsp;&nbsp;{name} (profiled) | | {seconds:.3f} |")
    print(f"| total after imports | {sum(r[1] for r in rows):.3f} | {sum(r[2] for r in rows):.3f} |")
    if args.top:
        stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
