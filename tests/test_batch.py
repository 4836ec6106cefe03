"""Batch conversion: the 14 MediaPipe models plus generated bad files (truncated, an unsupported op,
a model that makes LiteRT abort), each in its own worker process, on the local pool and on Ray.

The supervisor's own classification (crash by signal, wall-time kill, memory kill) is tested with
small stand-in child programs that speak the worker's protocol, since a real model cannot be made
to hang or grow on demand.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import tflite_inverter as ti
from tflite_inverter.cli import main
from tflite_inverter.errors import TfliteInverterError
from tflite_inverter.zoo.batch import parse_memory, resolve_models
from tflite_inverter.zoo.ledger import Ledger, task_key
from tflite_inverter.zoo.task import TaskSpec, close_supervisors, run_task

MEMORY = "1500M"  # per worker: TensorFlow must import and convert the largest MediaPipe model under it
BAD = {"truncated", "unsupported_op", "litert_abort"}


def _int8_add_model() -> bytes:
    """A full-integer model whose ADD the test can break (made with the TFLite converter)."""
    import tensorflow as tf

    from parity import convert

    return convert(lambda x, y: tf.nn.relu(x) + tf.nn.relu(y) * 0.5,
                   [tf.TensorSpec([1, 8, 8, 2], tf.float32)] * 2, mode="int8")


def _set_opcode(data: bytes, source: str, target: str) -> bytes:
    from flatbuffer_writer import edit
    from tensorflow.lite.python import schema_py_generated as schema

    def change(model):
        for code in model.operatorCodes:
            if max(code.builtinCode, code.deprecatedBuiltinCode) == getattr(schema.BuiltinOperator, source):
                code.builtinCode = code.deprecatedBuiltinCode = getattr(schema.BuiltinOperator, target)
                return
        raise AssertionError(f"no {source} in the model")

    return edit(data, change)


def _tiny_add_output_scale(data: bytes) -> bytes:
    """The ADD's output scale set to 1e-12: LiteRT's Prepare computes a rescale multiplier >= 1 and
    its TFLITE_CHECK aborts the process (SIGABRT, with every resolver); TensorFlow runs the graph."""
    from flatbuffer_writer import edit
    from tensorflow.lite.python import schema_py_generated as schema

    def change(model):
        sg = model.subgraphs[0]
        for op in sg.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.ADD:
                sg.tensors[op.outputs[0]].quantization.scale = [1e-12]
                return
        raise AssertionError("no ADD in the model")

    return edit(data, change)


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, mediapipe_models):
    """Two batches: ``convert`` (the 14 MediaPipe models, a truncated file, an unsupported op), and
    ``verify`` (the int8 model and its LiteRT-aborting variant, verified with one draw)."""
    root = tmp_path_factory.mktemp("zoo")
    convert_dir, verify_dir = root / "convert", root / "verify"
    convert_dir.mkdir()
    verify_dir.mkdir()
    for name, path in mediapipe_models.items():
        (convert_dir / path.name).symlink_to(path)
    recrop = mediapipe_models["hand_recrop"].read_bytes()
    (convert_dir / "truncated.tflite").write_bytes(recrop[: len(recrop) // 2])
    int8 = _int8_add_model()
    (convert_dir / "unsupported_op.tflite").write_bytes(_set_opcode(int8, "ADD", "CONCAT_EMBEDDINGS"))
    (verify_dir / "int8_add.tflite").write_bytes(int8)
    (verify_dir / "litert_abort.tflite").write_bytes(_tiny_add_output_scale(int8))
    (signature,) = ti.load(verify_dir / "int8_add.tflite").signatures
    rng = np.random.default_rng(1)
    np.savez(root / "calibration.npz", **{name: rng.uniform(-1, 1, (4, 8, 8, 2)).astype(np.float32)
                                          for name in signature.inputs})
    return convert_dir, verify_dir, root / "calibration.npz"


VERIFY_OPTIONS = dict(jobs=2, memory=MEMORY, verify=True, draws=1, requantize="int8", progress=False)


def _ledger_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "ledger.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def local_run(zoo, tmp_path_factory, mediapipe_models):
    out = tmp_path_factory.mktemp("out_local")
    convert_dir, verify_dir, calibration = zoo
    # the convert batch through the command line (exit 1: some models are not ok), TensorFlow imported
    # once per 8 models; the verify batch runs each model in a fresh process (the default)
    assert main(["batch", str(convert_dir), "-o", str(out), "--jobs", "2", "--memory", MEMORY, "--reuse", "8"]) == 1
    verified = ti.batch(verify_dir, out, data=calibration, **VERIFY_OPTIONS)
    return out, verified


def test_one_row_per_model_with_the_bad_ones_recorded(local_run, mediapipe_models):
    out, verified = local_run
    rows = {row["name"]: row for row in _ledger_rows(out)}
    assert len(_ledger_rows(out)) == len(rows) == 14 + 4
    assert set(rows) == set(mediapipe_models) | BAD | {"int8_add"}
    for name in mediapipe_models:
        row = rows[name]
        assert row["status"] == "ok", (name, row.get("cause"), row.get("message"))
        assert (out / name / "saved_model" / "saved_model.pb").is_file()
        assert row["op_count"] == sum(len(sg.operators) for sg in ti.load(mediapipe_models[name]).subgraphs)
        assert row["peak_rss_mb"] > 100 and {"load", "import", "invert", "saved_model"} <= set(row["times"])
    served_by = Counter(rows[name]["worker_pid"] for name in set(mediapipe_models) | {"truncated", "unsupported_op"})
    assert len(served_by) < 16 and max(served_by.values()) <= 8  # --reuse 8
    assert "worker_pid" not in rows["int8_add"]  # a fresh process of its own
    assert rows["truncated"]["status"] == "error" and rows["truncated"]["cause"] == "InvalidModelError"
    assert rows["truncated"]["phase"] == "load" and "import" not in rows["truncated"]["times"]
    assert rows["unsupported_op"]["status"] == "error" and "CONCAT_EMBEDDINGS" in rows["unsupported_op"]["message"]
    abort = rows["litert_abort"]
    assert (abort["status"], abort["cause"], abort["phase"]) == ("crashed", "LiteRT crashed (SIGABRT)", "verify saved_model")
    good = rows["int8_add"]
    assert good["status"] == "ok" and good["errors"]["saved_model"] and all(
        o["passed"] and o["max_abs_error"] <= o["tolerance"] for o in good["errors"]["saved_model"].values())
    requantized = good["requantized"]  # calibrated on the .npz the task read itself, compared with the original
    assert Path(requantized["path"]).is_file() and requantized["float_ops"] == {}
    assert requantized["outputs"] and all(o["max_steps"] <= 2 for o in requantized["outputs"].values())
    assert "requantize" in good["times"] and "requantize" not in abort["times"]
    assert verified.row("litert_abort")["status"] == "crashed" and not verified.passed
    assert repr(verified) == f"<BatchReport 2 models: 1 ok, 1 crashed; 0 skipped; {out / 'report.md'}>"


def test_reports_written(local_run):
    out, _ = local_run
    md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "2 models: 1 ok, 1 crashed" in md and "LiteRT crashed (SIGABRT)" in md  # the last batch's report
    assert "int8_add" in md and "litert_abort" in page and "<script" not in page and "http" not in page


def test_rerun_skips_every_finished_model(local_run, zoo, capsys):
    out, _ = local_run
    before = _ledger_rows(out)
    convert_dir, verify_dir, calibration = zoo
    assert main(["batch", str(convert_dir), "-o", str(out), "--jobs", "2", "--memory", MEMORY, "--reuse", "8"]) == 1
    again = ti.batch(verify_dir, out, data=calibration, **VERIFY_OPTIONS)
    assert again.ran == [] and sorted(again.skipped) == ["int8_add", "litert_abort"]
    assert "16 models" in capsys.readouterr().out
    assert _ledger_rows(out) == before
    md = (out / "report.md").read_text()
    assert "2 models: 1 ok, 1 crashed" in md


def test_ray_backend_gives_the_same_ledger(local_run, zoo, tmp_path):
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
    from tflite_inverter.zoo.backends import start_local_ray

    out, _ = local_run
    convert_dir, verify_dir, calibration = zoo
    start_local_ray(2)  # ray.init(num_cpus=2), shared by both batches
    try:
        ti.batch(convert_dir, tmp_path, backend="ray", memory=MEMORY, reuse=8, progress=False)
        ti.batch(verify_dir, tmp_path, backend="ray", ship_bytes=True, data=calibration, **VERIFY_OPTIONS)
    finally:
        ray.shutdown()

    def essence(rows):
        return {r["name"]: (r["status"], r.get("cause"), r.get("op_count"), r.get("errors"),
                            (r.get("requantized") or {}).get("outputs")) for r in rows}

    assert essence(_ledger_rows(tmp_path)) == essence(_ledger_rows(out))


def _stand_in_worker(tmp_path: Path, body: str) -> list[str]:
    """A child program with the worker's protocol (REQUEST.json argument, progress file) that then
    runs ``body``."""
    script = tmp_path / "stand_in_worker.py"
    script.write_text(textwrap.dedent("""
        import json, os, signal, sys, time
        request = json.load(open(sys.argv[1]))
        json.dump({"phase": "verify saved_model", "times": {"load": 0.1}}, open(request["progress"], "w"))
    """) + textwrap.dedent(body))
    return [sys.executable, str(script)]


@pytest.mark.parametrize("body, limits, status, cause", [
    ("os.kill(os.getpid(), signal.SIGSEGV)\n", {}, "crashed", "worker crashed (SIGSEGV) in verify saved_model"),
    ("time.sleep(60)\n", {"timeout": 1.0}, "timeout", "timeout in verify saved_model"),
    ("blocks = []\nwhile True:\n    blocks.append(bytearray(32 << 20)); time.sleep(0.01)\n",
     {"memory": 200 << 20}, "memory", "memory limit in verify saved_model"),
    ("sys.exit(3)\n", {}, "crashed", "worker exited (3) in verify saved_model"),
], ids=["segfault", "hang", "growth", "exit-without-result"])
def test_supervisor_classifies_a_dying_worker(tmp_path, body, limits, status, cause):
    spec = TaskSpec(model="m.tflite", name="m", out_dir=str(tmp_path), sha256="0" * 64, options={},
                    worker_command=_stand_in_worker(tmp_path, body), **{"timeout": 30.0, **limits})
    row = run_task(spec)
    assert (row["status"], row["cause"], row["phase"]) == (status, cause, "verify saved_model")
    assert row["wall_s"] < 25 and row["times"] == {"load": 0.1}
    if status == "memory":
        assert row["tree_peak_rss_mb"] > 200


def test_a_grandchild_left_running_is_killed_with_its_worker(tmp_path):
    """A hung LiteRT process started by the worker dies with it (the worker's process group)."""
    marker = tmp_path / "grandchild.pid"
    body = f"""
import subprocess
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open({str(marker)!r}, "w").write(str(child.pid))
time.sleep(60)
"""
    spec = TaskSpec(model="m.tflite", name="m", out_dir=str(tmp_path), sha256="0" * 64, options={}, timeout=2.0,
                    worker_command=_stand_in_worker(tmp_path, body))
    assert run_task(spec)["status"] == "timeout"
    pid = int(marker.read_text())
    # SIGKILL is delivered at once but the process exits when the kernel next schedules it: on a
    # loaded machine /proc can show it "running" for a moment after its worker is gone (CI saw it).
    assert _gone_within(pid, seconds=10.0), Path(f"/proc/{pid}/status").read_text()


def _gone_within(pid: int, seconds: float) -> bool:
    status, deadline = Path(f"/proc/{pid}/status"), time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if "zombie" in status.read_text():
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def test_a_serving_worker_that_dies_fails_only_its_model(tmp_path):
    """With reuse, a worker serves models in turn; when it dies, only its current model fails and
    the next model gets a fresh worker; a worker is retired after ``reuse`` models."""
    script = tmp_path / "stand_in_server.py"
    script.write_text(textwrap.dedent("""
        import json, os, signal, sys
        assert sys.argv[1:] == ["--serve", str(2 * (1 << 30))]
        for line in sys.stdin:
            request = json.load(open(line.strip()))
            json.dump({"phase": "invert", "times": {}}, open(request["progress"], "w"))
            if request["model"].endswith("bad.tflite"):
                os.kill(os.getpid(), signal.SIGSEGV)
            with open(request["result"] + ".tmp", "w") as handle:
                json.dump({"status": "ok", "times": {}, "errors": {}}, handle)
            os.replace(request["result"] + ".tmp", request["result"])
    """))
    rows = []
    try:
        for name in ("a", "bad", "c", "d", "e"):
            rows.append(run_task(TaskSpec(model=f"{name}.tflite", name=name, out_dir=str(tmp_path), sha256="0" * 64,
                                          memory=1 << 30, reuse=2, worker_command=[sys.executable, str(script)])))
    finally:
        close_supervisors()
    assert [(r["status"], r.get("cause")) for r in rows] == [
        ("ok", None), ("crashed", "worker crashed (SIGSEGV) in invert"), ("ok", None), ("ok", None), ("ok", None)]
    pids = [r["worker_pid"] for r in rows]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4] and len(set(pids)) == 3
    assert all(not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text() for pid in pids)


def test_ledger_resumes_and_retries(tmp_path):
    ledger = Ledger(tmp_path)
    options = {"verify": True}
    ledger.append({"sha256": "a", "options": options, "status": "ok", "name": "a"})
    ledger.append({"sha256": "b", "options": options, "status": "crashed", "name": "b"})
    with open(ledger.path, "a") as handle:
        handle.write('{"sha256": "c", "options": {}, "sta')  # a driver killed mid-row
    again = Ledger(tmp_path)
    assert [r["name"] for r in again.rows] == ["a", "b"]
    assert again.should_skip(task_key("a", options))["status"] == "ok"
    assert again.should_skip(task_key("b", options))["status"] == "crashed"
    assert again.should_skip(task_key("b", options), retry_failed=True) is None
    assert again.should_skip(task_key("a", {"verify": False})) is None
    ledger.path.write_text('{"sha256": "a"}\n{}\n')
    with pytest.raises(TfliteInverterError, match="ledger.jsonl:1: not a ledger row"):
        Ledger(tmp_path)


def test_models_from_directories_globs_and_lists(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/x.tflite", "a/y.tflite", "z.tflite"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "list.txt").write_text("# models\nz.tflite\na/x.tflite  # again\n")
    found = resolve_models([tmp_path / "a", str(tmp_path / "*.tflite"), tmp_path / "list.txt"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["a/x.tflite", "a/y.tflite", "z.tflite"]
    with pytest.raises(TfliteInverterError, match="no such file"):
        resolve_models(tmp_path / "missing.tflite")
    with pytest.raises(TfliteInverterError, match=r"list.txt:1: .* is not a file"):
        (tmp_path / "list.txt").write_text("nothere.tflite\n")
        resolve_models(tmp_path / "list.txt")
    assert parse_memory("1.5G") == int(1.5 * 2**30) and parse_memory(1000) == 1000
    with pytest.raises(TfliteInverterError, match="memory limit"):
        parse_memory("lots")


def test_batch_arguments_are_checked(tmp_path):
    with pytest.raises(TfliteInverterError, match="backend"):
        ti.batch(tmp_path, tmp_path / "out", backend="slurm")
    with pytest.raises(TfliteInverterError, match="requantize"):
        ti.batch(tmp_path, tmp_path / "out", requantize="int3")
    with pytest.raises(TfliteInverterError, match="no .tflite files"):
        ti.batch(tmp_path, tmp_path / "out")


def test_batch_command_line_arguments(tmp_path, capsys):
    from tflite_inverter.cli import build_parser

    args = build_parser().parse_args(["batch", "a/", "b.txt", "-o", "out", "--ray", "--reuse", "4", "--memory", "2G"])
    assert (args.models, args.ray, args.reuse, args.memory) == (["a/", "b.txt"], "", 4, "2G")
    assert build_parser().parse_args(["batch", "a/", "-o", "out"]).ray is None
    assert build_parser().parse_args(["batch", "a/", "-o", "out", "--ray", "ray://head:10001"]).ray == "ray://head:10001"
    assert main(["batch", str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "no .tflite files" in error
