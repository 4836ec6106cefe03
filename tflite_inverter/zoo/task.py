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

import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUSES = ("ok", "failed", "error", "crashed", "timeout", "memory")
DEFAULT_TIMEOUT = 900.0
DEFAULT_MEMORY = 6 << 30  # bytes of resident memory for a worker and its children
_POLL_SECONDS = 0.2
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent.parent)


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
    reuse: int = 1  # models one worker process serves in turn (1: a fresh process per model)
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


def _environment() -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_ROOT] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _prepare(spec: TaskSpec, work_path: Path) -> tuple[Path, dict]:
    out = Path(spec.out_dir) / spec.name
    out.mkdir(parents=True, exist_ok=True)
    model_path = spec.model
    if spec.model_bytes is not None:
        model_path = str(work_path / (Path(spec.model).name or "model.tflite"))
        Path(model_path).write_bytes(spec.model_bytes)
    request = {
        "model": model_path, "label": spec.model, "out": str(out), "options": dict(spec.options),
        "result": str(work_path / "result.json"), "progress": str(work_path / "progress.json"),
        "log": str(out / "worker.log"), "data_limit": _data_limit(spec),
    }
    return out, request


def _data_limit(spec: TaskSpec) -> int | None:
    return None if spec.memory is None else 2 * int(spec.memory)


def _watch(process: subprocess.Popen, spec: TaskSpec, done: Any) -> tuple[str | None, int, float]:
    """Poll until ``done()`` or the process ends; kill its group past the limits. Returns why it
    was killed (``None``, ``"timeout"``, ``"memory"``), the peak tree RSS and the wall time."""
    start = time.monotonic()
    tree_peak = 0
    while process.poll() is None and not done():
        tree = tree_rss_bytes(process.pid)
        tree_peak = max(tree_peak, tree)
        killed_for = None
        if spec.memory is not None and tree > spec.memory:
            killed_for = "memory"
        elif time.monotonic() - start > spec.timeout:
            killed_for = "timeout"
        if killed_for:
            _kill_group(process)
            process.wait()
            return killed_for, tree_peak, time.monotonic() - start
        time.sleep(_POLL_SECONDS)
    return None, tree_peak, time.monotonic() - start


def _row(spec: TaskSpec, out: Path, started: str, request: dict, killed_for: str | None, tree_peak: int, wall: float,
         returncode: int | None) -> dict:
    row = base_row(spec)
    row["started"] = started
    result = _read_json(Path(request["result"]))
    progress = _read_json(Path(request["progress"])) or {}
    row["wall_s"] = round(wall, 3)
    row["exit_code"] = returncode
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
    elif returncode is not None and returncode < 0:
        name = signal_name(-returncode)
        row.update(status="crashed", cause=f"worker crashed ({name}) in {phase}",
                   message=f"the worker died by {name} while in phase {phase} (see {out / 'worker.log'})")
    else:
        row.update(status="crashed", cause=f"worker exited ({returncode}) in {phase}",
                   message=f"the worker exited with code {returncode} without a result while in phase {phase} "
                           f"(see {out / 'worker.log'})")
    return row


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def run_task(spec: TaskSpec) -> dict:
    """Run one model's work in a child process under the spec's limits; return its ledger row.
    With ``spec.reuse > 1`` the model goes to this thread's serving worker (see :class:`Supervisor`)."""
    if spec.reuse > 1:
        return _thread_supervisor().run(spec)
    started = _now()
    with tempfile.TemporaryDirectory(prefix="tflite_inverter_task_") as work:
        out, request = _prepare(spec, Path(work))
        request_path = Path(work) / "request.json"
        request_path.write_text(json.dumps(request))
        command = list(spec.worker_command or [sys.executable, "-m", "tflite_inverter.zoo.worker"]) + [str(request_path)]
        with open(request["log"], "wb") as log:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       env=_environment(), start_new_session=True)
            try:
                killed_for, tree_peak, wall = _watch(process, spec, lambda: False)
            finally:
                if process.poll() is None:
                    _kill_group(process)
                    process.wait()
                else:
                    _kill_group(process)  # whatever the worker left running (a hung LiteRT child)
        return _row(spec, out, started, request, killed_for, tree_peak, wall, process.returncode)


class Supervisor:
    """One serving worker (``python -m tflite_inverter.zoo.worker --serve``) fed one model at a time:
    TensorFlow is imported once per ``spec.reuse`` models instead of once per model. The limits are
    the same; a worker that crashes or is killed fails its current model only, and the next model
    gets a fresh worker. A worker is retired after ``reuse`` models, or when its resident memory
    after a model exceeds half the limit (so that what one model leaves behind is not charged to
    the next)."""

    def __init__(self):
        self.process: subprocess.Popen | None = None
        self.served = 0
        self.data_limit: int | None = None

    def close(self) -> None:
        if self.process is not None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
            _kill_group(self.process)
            if self.process.poll() is None:
                self.process.wait()
            self.process = None

    def _start(self, spec: TaskSpec) -> None:
        self.data_limit = _data_limit(spec)
        command = list(spec.worker_command or [sys.executable, "-m", "tflite_inverter.zoo.worker"])
        command += ["--serve", "none" if self.data_limit is None else str(self.data_limit)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, env=_environment(), start_new_session=True, text=True)
        self.served = 0
        with _SUPERVISORS_LOCK:
            if self not in _SUPERVISORS:
                _SUPERVISORS.append(self)

    def run(self, spec: TaskSpec) -> dict:
        started = _now()
        with tempfile.TemporaryDirectory(prefix="tflite_inverter_task_") as work:
            out, request = _prepare(spec, Path(work))
            if (self.process is None or self.process.poll() is not None or self.served >= spec.reuse
                    or self.data_limit != request["data_limit"]):
                self.close()
                self._start(spec)
            self.served += 1
            request["served"] = self.served
            request_path = Path(work) / "request.json"
            request_path.write_text(json.dumps(request))
            result_path = Path(request["result"])
            process = self.process
            try:
                process.stdin.write(f"{request_path}\n")
                process.stdin.flush()
            except OSError:  # died between models: its exit is classified below
                pass
            killed_for, tree_peak, wall = _watch(process, spec, result_path.exists)
            returncode = process.poll()
            if killed_for or returncode is not None:
                _kill_group(process)
                if process.poll() is None:
                    process.wait()
                returncode = process.returncode
                self.process = None
            elif spec.memory is not None and tree_rss_bytes(process.pid) > spec.memory / 2:
                self.close()
            row = _row(spec, out, started, request, killed_for, tree_peak, wall, returncode)
            row["worker_pid"] = process.pid
            return row


_SUPERVISORS: list[Supervisor] = []
_SUPERVISORS_LOCK = threading.Lock()
_LOCAL = threading.local()


def _thread_supervisor() -> Supervisor:
    supervisor = getattr(_LOCAL, "supervisor", None)
    if supervisor is None:
        supervisor = _LOCAL.supervisor = Supervisor()
    return supervisor


def close_supervisors() -> None:
    """Stop every serving worker of this process (the local backend calls it at the end of a batch)."""
    with _SUPERVISORS_LOCK:
        supervisors = list(_SUPERVISORS)
        _SUPERVISORS.clear()
    for supervisor in supervisors:
        supervisor.close()


atexit.register(close_supervisors)
