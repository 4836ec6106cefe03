"""Whole-process conversion time of each MediaPipe model, side by side with peer converters.

Each model is converted by every tool in turn, round after round (interleaved, so that a change in
the machine's load falls on all tools alike), ``--runs`` times; the table gives each tool's median
wall time and the ratio project / peer per model, with the load average before and after.

    python benchmarks/bench_peers.py                                   # tf2onnx from this interpreter
    python benchmarks/bench_peers.py --peer-python /venv/bin/python     # tf2onnx from another one
    python benchmarks/bench_peers.py --peer 't2t=tflite2tensorflow --model_path {model} --flatc_path flatc ...'
    python benchmarks/bench_peers.py --markdown docs/benchmarks.md     # replace the table's section there

The project converts to a SavedModel (``tflite-inverter convert MODEL -o OUT --overwrite``); tf2onnx
(``python -m tf2onnx.convert --tflite MODEL --output OUT.onnx``) runs only where it is importable in
the peer interpreter, and is otherwise left out with a note. Nothing is installed.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Child processes import this checkout's package, not an installed copy.
CHILD_ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
CACHE = Path(os.environ.get("TFLITE_INVERTER_CACHE", Path.home() / ".cache" / "tflite_inverter"))
BEGIN, END = "<!-- bench_peers: begin -->", "<!-- bench_peers: end -->"


def importable(python: str, module: str) -> bool:
    return subprocess.run([python, "-c", f"import {module}"], capture_output=True).returncode == 0


def tools(args) -> dict[str, str]:
    """Tool name -> command template with ``{model}`` and ``{out}``."""
    found = {"project": f"{shlex.quote(sys.executable)} -m tflite_inverter convert {{model}} -o {{out}} --overwrite"}
    if importable(args.peer_python, "tf2onnx"):
        found["tf2onnx"] = f"{shlex.quote(args.peer_python)} -m tf2onnx.convert --tflite {{model}} --output {{out}}.onnx"
    else:
        print(f"tf2onnx is not importable in {args.peer_python}: left out", file=sys.stderr)
    for spec in args.peer or []:
        name, _, command = spec.partition("=")
        found[name] = command
    return found


def run_once(template: str, model: Path, work: Path, extra_env: dict[str, str] | None = None) -> float | None:
    out = work / f"{model.stem}_{abs(hash(template)) % 10**6}"
    command = template.format(model=shlex.quote(str(model)), out=shlex.quote(str(out)))
    env = dict(CHILD_ENV, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **(extra_env or {}))
    start = time.perf_counter()
    done = subprocess.run(command, shell=True, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    return elapsed if done.returncode == 0 else None


def measure(models: list[Path], commands: dict[str, str], runs: int,
            extra_env: dict[str, str] | None = None) -> dict[tuple[str, str], list[float | None]]:
    times: dict[tuple[str, str], list[float | None]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_peers_") as work:
        for round_ in range(runs):
            for model in models:
                for name, template in commands.items():
                    print(f"round {round_ + 1}/{runs} {model.name} {name}", file=sys.stderr, flush=True)
                    times.setdefault((model.name, name), []).append(run_once(template, model, Path(work), extra_env))
    return times


def table(models: list[Path], commands: dict[str, str], times, load_before, load_after, runs: int,
          what: str = "whole process (imports included)", done: str = "converted") -> str:
    peers = [n for n in commands if n != "project"]
    head = "| model | project s | " + " | ".join(f"{p} s | project / {p}" for p in peers) + " |"
    lines = [head, "|---|---:|" + "---:|---:|" * len(peers)]
    ratios: dict[str, list[float]] = {p: [] for p in peers}

    def median(key):
        values = times[key]
        return None if any(v is None for v in values) else statistics.median(values)

    for model in models:
        own = median((model.name, "project"))
        cells = [model.name, f"{own:.2f}" if own is not None else "failed"]
        for peer in peers:
            other = median((model.name, peer))
            cells.append(f"{other:.2f}" if other is not None else "failed")
            if own is not None and other is not None:
                ratios[peer].append(own / other)
                cells.append(f"{own / other:.2f}")
            else:
                cells.append("–")
        lines.append("| " + " | ".join(cells) + " |")
    summary = [f"Median of {runs} interleaved runs per tool and model, {what}, "
               f"{os.cpu_count()} cores, load average {load_before[0]:.2f} before and {load_after[0]:.2f} after, "
               f"{time.strftime('%Y-%m-%d')}."]
    for peer, values in ratios.items():
        if values:
            summary.append(f"project / {peer}: median {statistics.median(values):.2f}, range {min(values):.2f}–{max(values):.2f} "
                           f"over {len(values)} models both {done}.")
    return "\n".join(summary) + "\n\n" + "\n".join(lines) + "\n"


def write_section(path: Path, text: str, begin: str = BEGIN, end: str = END,
                  title: str = "Side by side with peers (`benchmarks/bench_peers.py`)") -> None:
    """Replace the marked section of ``path`` (or append one)."""
    block = f"{begin}\n{text}{end}"
    old = path.read_text() if path.exists() else ""
    if begin in old and end in old:
        new = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, old, flags=re.S)
    else:
        new = old.rstrip() + f"\n\n## {title}\n\n" + block + "\n"
    path.write_text(new)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", type=Path, help="models (default: the 14 MediaPipe models in the cache)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peer-python", default=sys.executable, help="interpreter in which to look for tf2onnx")
    parser.add_argument("--peer", action="append", metavar="NAME=COMMAND", help="another peer; {model} and {out} are filled in")
    parser.add_argument("--markdown", type=Path, help="replace the side-by-side section of this file with the table")
    args = parser.parse_args()
    models = list(args.models or sorted((CACHE / "mediapipe-0.10.14").glob("*.tflite")))
    if not models:
        parser.error("no models: run the tests once to fill the cache, or pass --models")
    commands = tools(args)
    load_before = os.getloadavg()
    times = measure(models, commands, args.runs)
    text = table(models, commands, times, load_before, os.getloadavg(), args.runs)
    print(text)
    if args.markdown:
        write_section(args.markdown, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
