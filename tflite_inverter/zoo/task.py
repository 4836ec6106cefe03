"""One model's work in its own child process, with a wall-time and a memory limit: one ledger row.

:func:`run_task` writes a request file, starts ``python -m tflite_inverter.zoo.worker REQUEST.json``
in a new session (so the worker and the LiteRT process it starts can be killed together), and
watches it: past ``timeout`` seconds the process group is killed (status ``timeout``); past
``memory`` bytes of resident memory, summed over the worker and its children, it is killed too
(status ``memory``). The worker also limits its own data segment (``RLIMIT_DATA``, twice
``memory``) as a backstop the watchdog cannot miss. A worker killed by a signal is ``crashed``.

The worker writes its result (status, errors per output, times per phase, its peak RSS) and,
before each phase, the phase it is in, so a row says where a crash or a kill happened.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUSES = ("ok", "failed", "error", "crashed", "timeout", "memory")
DEFAULT_TIMEOUT = 900.0
DEFAULT_MEMORY = 6 << 30  # bytes of resident memory for a worker and its children
_POLL_SECONDS = 0.2
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)


@dataclass(frozen=True)
class TaskSpec:
    """What one model's task needs. ``model_bytes`` ships the model itself (for a cluster without
    shared storage); otherwise the worker reads ``model`` by path. ``options`` are the batch's:
    ``verify``, ``pb``, ``requantize``, ``data``, ``draws``, ``mean``, ``std``."""

    model: str
    name: str
    out_dir: str
    sha256: str
    options: Mapping[str, Any] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT
    memory: int | None = DEFAULT_MEMORY
    model_bytes: bytes | None = None
    worker_command: Sequence[str] | None = None  # tests: another child program speaking the same protocol


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as handle:
                found.extend(int(c) for c in handle.read().split())
    except OSError:
        pass
    return found


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (Linux ``/proc``)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        total += _rss_bytes(current)
        todo.extend(_children(current))
    return total


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def base_row(spec: TaskSpec) -> dict:
    return {"model": spec.model, "name": spec.name, "sha256": spec.sha256, "options": dict(spec.options)}


def run_task(spec: TaskSpec) -> dict:
    """Run one model's work in a child process under the spec's limits; return its ledger row."""
    out = Path(spec.out_dir) / spec.name
    out.mkdir(parents=True, exist_ok=True)
    row = base_row(spec)
    row["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="tflite_inverter_task_") as work:
        work_path = Path(work)
        model_path = spec.model
        if spec.model_bytes is not None:
            model_path = str(work_path / (Path(spec.model).name or "model.tflite"))
            Path(model_path).write_bytes(spec.model_bytes)
        request = {
            "model": model_path, "label": spec.model, "out": str(out), "options": dict(spec.options),
            "result": str(work_path / "result.json"), "progress": str(work_path / "progress.json"),
            "data_limit": None if spec.memory is None else 2 * int(spec.memory),
        }
        request_path = work_path / "request.json"
        request_path.write_text(json.dumps(request))
        command = list(spec.worker_command or [sys.executable, "-m", "tflite_inverter.zoo.worker"]) + [str(request_path)]
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env["PYTHONPATH"] = os.pathsep.join([_PACKAGE_ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        start = time.monotonic()
        killed_for: str | None = None
        tree_peak = 0
        with open(out / "worker.log", "wb") as log:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                       start_new_session=True)
            try:
                while process.poll() is None:
                    tree = tree_rss_bytes(process.pid)
                    tree_peak = max(tree_peak, tree)
                    if spec.memory is not None and tree > spec.memory:
                        killed_for = "memory"
                    elif time.monotonic() - start > spec.timeout:
                        killed_for = "timeout"
                    if killed_for:
                        _kill_group(process)
                        process.wait()
                        break
                    time.sleep(_POLL_SECONDS)
            finally:
                if process.poll() is None:
                    _kill_group(process)
                    process.wait()
                else:
                    _kill_group(process)  # whatever the worker left running (a hung LiteRT child)
        wall = time.monotonic() - start
        result = _read_json(Path(request["result"]))
        progress = _read_json(Path(request["progress"])) or {}
    row["wall_s"] = round(wall, 3)
    row["exit_code"] = process.returncode
    row["tree_peak_rss_mb"] = round(tree_peak / 2**20, 1)
    if result is not None and killed_for is None:
        row.update(result)
        return row
    phase = progress.get("phase", "start")
    row.update({"phase": phase, "times": progress.get("times", {}), "op_count": progress.get("op_count"),
                "peak_rss_mb": progress.get("peak_rss_mb"), "errors": progress.get("errors", {})})
    if killed_for == "timeout":
        row.update(status="timeout", cause=f"timeout in {phase}",
                   message=f"killed after {spec.timeout:g} s (wall-time limit) while in phase {phase}")
    elif killed_for == "memory":
        row.update(status="memory", cause=f"memory limit in {phase}",
                   message=f"killed at {tree_peak / 2**20:.0f} MB resident (limit {spec.memory / 2**20:.0f} MB) "
                           f"while in phase {phase}")
    elif process.returncode is not None and process.returncode < 0:
        name = signal_name(-process.returncode)
        row.update(status="crashed", cause=f"worker crashed ({name}) in {phase}",
                   message=f"the worker died by {name} while in phase {phase} (see {out / 'worker.log'})")
    else:
        row.update(status="crashed", cause=f"worker exited ({process.returncode}) in {phase}",
                   message=f"the worker exited with code {process.returncode} without a result while in phase {phase} "
                           f"(see {out / 'worker.log'})")
    return row
