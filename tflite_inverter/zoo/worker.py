"""The child process of one batch task: ``python -m tflite_inverter.zoo.worker REQUEST.json``
(or, to serve several models one after another, ``... --serve DATA_LIMIT`` with request paths on stdin).

It limits its own data segment first (``RLIMIT_DATA``, before TensorFlow is imported), then
converts the model through the public API (``ti.invert``, the SavedModel under
``OUT/<model name>/saved_model``, the frozen pb with ``pb``), verifies what it wrote with
``ti.verify``, re-quantizes with ``ti.requantize``, and writes its result as JSON. Before each
phase it writes the phase (and the times so far) to the progress file, so that the supervisor can
say where a crash or a kill happened.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from pathlib import Path


def peak_rss_mb() -> float | None:
    """This process's peak resident set size (``VmHWM``), in MiB."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def one_line(error: BaseException, limit: int = 400) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _write_json(path: str, value: dict) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w") as handle:
        json.dump(value, handle)
    os.replace(temporary, path)


class _Run:
    def __init__(self, request: dict):
        self.request = request
        self.times: dict[str, float] = {}
        self.errors: dict[str, dict] = {}
        self.state: dict = {"status": None, "phase": "start", "op_count": None, "outputs": []}

    def phase(self, name: str):
        run = self

        class _Phase:
            def __enter__(self):
                run.state["phase"] = name
                _write_json(run.request["progress"], {"phase": name, "times": run.times, "op_count": run.state["op_count"],
                                                      "peak_rss_mb": peak_rss_mb(), "errors": run.errors})
                self.start = time.perf_counter()

            def __exit__(self, *exc):
                run.times[name] = round(time.perf_counter() - self.start, 3)
                return False

        return _Phase()

    def result(self, status: str, cause: str | None = None, message: str | None = None) -> dict:
        return {"status": status, "cause": cause, "message": message, "phase": self.state["phase"], "times": self.times,
                "errors": self.errors, "op_count": self.state["op_count"], "peak_rss_mb": peak_rss_mb(),
                "outputs": self.state["outputs"], "notes": self.state.get("notes", []),
                "requantized": self.state.get("requantized")}


def _record_verification(run: _Run, artifact: str, report) -> bool:
    run.errors[artifact] = {o.name: {"max_abs_error": o.max_abs_error, "tolerance": o.tolerance, "passed": o.passed,
                                     "unit": o.unit} for o in report.outputs}
    run.state.setdefault("notes", []).extend(report.notes)
    return report.passed


def work(request: dict) -> dict:
    """Everything one model needs, through the public API; returns the result dict."""
    options = request["options"]
    run = _Run(request)
    out = Path(request["out"])
    model_path = request["model"]
    import tflite_inverter as ti
    from tflite_inverter.errors import ReferenceCrashedError, TfliteInverterError

    try:
        with run.phase("load"):  # no TensorFlow yet: a bad file fails in milliseconds
            model = ti.load(model_path)
            run.state["op_count"] = sum(len(sg.operators) for sg in model.subgraphs)
        with run.phase("import"):
            from tflite_inverter.logs import import_tensorflow

            import_tensorflow(without_keras=True)  # timed on its own: seconds before any model work
        with run.phase("invert"):
            inverted = ti.invert(model)
        artifacts = []
        with run.phase("saved_model"):
            artifacts.append(str(inverted.save_saved_model(out / "saved_model", overwrite=True)))
        if options.get("pb"):
            with run.phase("pb"):
                artifacts.append(str(inverted.save_frozen_pb(out / "model.pb", overwrite=True)))
        run.state["outputs"] = list(artifacts)
        passed = True
        if options.get("verify"):
            for artifact in artifacts:
                kind = Path(artifact).name
                with run.phase(f"verify {kind}"):
                    report = ti.verify(model_path, artifact, draws=int(options.get("draws", 3)))
                passed = _record_verification(run, kind, report) and passed
        if options.get("requantize"):
            mode = options["requantize"]
            target = out / f"model_{mode}.tflite"
            with run.phase("requantize"):  # the calibration data is read here, by the task, from its path
                report = ti.requantize(inverted, target, mode=mode, representative=options.get("data"),
                                       mean=options.get("mean"), std=options.get("std"), reference=model_path,
                                       overwrite=True, progress=False)
            # The normalisation taken from the model's metadata (requantize's first note says so).
            run.state.setdefault("notes", []).extend(n for n in report.notes if "TFLite metadata" in n)
            run.state["outputs"].append(str(target))
            run.state["requantized"] = {
                "path": str(target), "mode": mode, "size_bytes": report.size_bytes, "float_ops": report.float_ops,
                "outputs": {o.name: {"max_abs_error": o.max_abs_error, "max_steps": o.max_steps}
                            for o in (report.comparison.outputs if report.comparison is not None else [])}}
        if not passed:
            failing = sorted(f"{kind}:{name}" for kind, outputs in run.errors.items()
                             for name, o in outputs.items() if not o["passed"])
            return run.result("failed", "verification failed", "beyond tolerance: " + ", ".join(failing))
        return run.result("ok")
    except MemoryError as error:
        return run.result("memory", f"memory limit in {run.state['phase']}",
                          f"MemoryError under the data-segment limit: {one_line(error)}")
    except ReferenceCrashedError as error:
        from .task import signal_name

        return run.result("crashed", f"LiteRT crashed ({signal_name(error.signal_number)})", one_line(error))
    except TfliteInverterError as error:
        return run.result("error", type(error).__name__, one_line(error))
    except Exception as error:  # a bug of the library: recorded, with its traceback in the log
        traceback.print_exc()
        return run.result("error", f"internal error: {type(error).__name__}", one_line(error))


def _limit_data(limit: int | None) -> None:
    if limit:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))  # before TensorFlow reserves anything


def _redirect_output(path: str) -> None:
    """Send this process's stdout and stderr (file descriptors 1 and 2) to one model's log."""
    sys.stdout.flush()
    sys.stderr.flush()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)


def _reset_peak_rss() -> None:
    """Start ``VmHWM`` again from the current RSS, so each served model reports its own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def serve(data_limit: int | None) -> int:
    """Serve request paths read one a line from stdin, one model after another, until EOF (the
    supervisor closed the pipe, or died). TensorFlow is imported once, by the first model."""
    _limit_data(data_limit)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(Path(line.strip()).read_text())
        _redirect_output(request["log"])
        _reset_peak_rss()
        result = work(request)
        result["served"] = request.get("served")
        sys.stdout.flush()
        sys.stderr.flush()
        _write_json(request["result"], result)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        return serve(int(argv[1]) if len(argv) > 1 and argv[1] != "none" else None)
    request = json.loads(Path(argv[0]).read_text())
    _limit_data(request.get("data_limit"))
    result = work(request)
    _write_json(request["result"], result)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
