"""The command line: the README's main job, and one clear line plus a non-zero exit on bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from flatbuffer_writer import edit


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tflite_inverter", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sample")
    done = run_cli("sample", "sample.tflite", cwd=folder)
    assert done.returncode == 0, done.stderr
    return folder / "sample.tflite"


def test_convert_sample_with_pb_and_verify(sample, tmp_path):
    done = run_cli("convert", str(sample), "-o", "out", "--pb", "--verify", "--draws", "2", "-v", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("PASSED") == 2
    assert (tmp_path / "out/saved_model/saved_model.pb").exists()
    assert (tmp_path / "out/model.pb").exists() and (tmp_path / "out/model.json").exists()
    assert "Traceback" not in done.stderr
    assert "building TensorFlow graph" in done.stderr  # progress lines

    again = run_cli("convert", str(sample), "-o", "out", "--pb", cwd=tmp_path)
    assert again.returncode == 2 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    replaced = run_cli("convert", str(sample), "-o", "out", "--pb", "--overwrite", cwd=tmp_path)
    assert replaced.returncode == 0, replaced.stderr


def test_verify_command_and_inspect(sample, tmp_path):
    assert run_cli("convert", str(sample), "-o", "out", cwd=tmp_path).returncode == 0
    done = run_cli("verify", str(sample), "out/saved_model", "--json", "report.json", cwd=tmp_path)
    assert done.returncode == 0 and "PASSED" in done.stdout
    assert '"passed": true' in (tmp_path / "report.json").read_text()
    strict = run_cli("verify", str(sample), "out/saved_model", "--rtol", "0", "--float-range", "-100", "100", cwd=tmp_path)
    assert strict.returncode in (0, 1)  # exit code follows the report
    assert ("PASSED" in strict.stdout) == (strict.returncode == 0)
    per_tensor = run_cli("verify", str(sample), "out/saved_model", "--per-tensor", "--draws", "1", cwd=tmp_path)
    assert per_tensor.returncode == 0 and "intermediate tensors compared, 0 beyond tolerance" in per_tensor.stdout
    inspect = run_cli("inspect", str(sample), cwd=tmp_path)
    assert inspect.returncode == 0 and "CONV_2D" in inspect.stdout and "float32[1,64,64,3]" in inspect.stdout


@pytest.mark.parametrize(
    "content,message",
    [
        (b"hello", "too short"),
        (b"\x00" * 64, "not a TFLite model"),
        ("truncated", "corrupt or truncated"),
        ("unsupported", "unsupported operator"),
    ],
)
def test_bad_input_gives_one_line_and_leaves_nothing(sample, tmp_path, content, message):
    data = sample.read_bytes()
    if content == "truncated":
        content = data[: len(data) // 3]
    elif content == "unsupported":
        def to_custom(model):
            model.operatorCodes[0].deprecatedBuiltinCode = 32
            model.operatorCodes[0].builtinCode = 32
            model.operatorCodes[0].customCode = "NotAnOp"

        content = edit(data, to_custom)
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(content)
    done = run_cli("convert", str(bad), "-o", "out", "--pb", cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_input_shape_option(sample, tmp_path):
    done = run_cli("convert", str(sample), "-o", "out", "--input-shape", "image:?,64,64,3", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    bad = run_cli("convert", str(sample), "-o", "out2", "--input-shape", "image:1,x", cwd=tmp_path)
    assert bad.returncode == 2 and "dimensions must be integers" in bad.stderr and not (tmp_path / "out2").exists()


def test_cut_option(sample, tmp_path):
    import tflite_inverter as ti

    sg = ti.load(sample).main
    pad = next(op for op in sg.operators if op.opcode == "PAD")
    done = run_cli("convert", str(sample), "-o", "out", "--outputs", sg.tensors[pad.outputs[0]].name, "--verify",
                   "--draws", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "cut:" in done.stdout and "PASSED" in done.stdout


def test_missing_file_and_help(tmp_path):
    done = run_cli("convert", "nope.tflite", "-o", "out", cwd=tmp_path)
    assert done.returncode == 2 and "no such file" in done.stderr and "Traceback" not in done.stderr
    helped = run_cli("--help", cwd=tmp_path)
    assert helped.returncode == 0
    for command in ("convert", "verify", "inspect"):
        assert command in helped.stdout


def test_requantize_and_compare_commands(sample, tmp_path):
    import numpy as np

    np.save(tmp_path / "calib.npy", np.random.default_rng(0).uniform(-1, 1, [4, 64, 64, 3]).astype(np.float32))
    done = run_cli("requantize", str(sample), "-o", "int8.tflite", "--mode", "uint8", "--data", "calib.npy", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "uint8[1,64,64,3]" in done.stdout and "ops left in float: none" in done.stdout
    compared = run_cli("compare", str(sample), "int8.tflite", "--draws", "2", "--json", "c.json", cwd=tmp_path)
    assert compared.returncode == 0, compared.stderr
    assert "scores" in compared.stdout and (tmp_path / "c.json").exists()
    refused = run_cli("requantize", str(sample), "-o", "x.tflite", "--mode", "int8", cwd=tmp_path)
    assert refused.returncode == 2 and "needs --data" in refused.stderr and "Traceback" not in refused.stderr


def test_inspect_never_imports_tensorflow(sample):
    """`inspect` (without --check) answers from the reader alone: TensorFlow is never imported."""
    code = ("import sys; from tflite_inverter.cli import main; rc = main(['inspect', sys.argv[1]]); "
            "print('TF' if 'tensorflow' in sys.modules else 'NO_TF', rc)")
    done = subprocess.run([sys.executable, "-c", code, str(sample)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "NO_TF 0"


def test_process_entry_exits_with_mains_code_after_exit_handlers(sample, tmp_path):
    """`run()` (the console script and `python -m`) leaves through os._exit once TensorFlow is loaded:
    the exit code is main's, atexit handlers still run, and buffered output still arrives."""
    code = ("import atexit, sys; atexit.register(lambda: print('handler ran', flush=True)); "
            "from tflite_inverter.cli import run; sys.argv = ['tflite-inverter'] + sys.argv[1:]; "
            "print('buffered line', end=''); run()")
    ok = subprocess.run([sys.executable, "-c", code, "convert", str(sample), "-o", "out"], capture_output=True,
                        text=True, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "buffered line" in ok.stdout and "handler ran" in ok.stdout
    assert (tmp_path / "out/saved_model/saved_model.pb").exists()
    refused = subprocess.run([sys.executable, "-c", code, "requantize", str(sample), "-o", "x.tflite", "--mode", "int8"],
                             capture_output=True, text=True, cwd=tmp_path)
    assert refused.returncode == 2 and "needs --data" in refused.stderr and "handler ran" in refused.stdout


def test_output_into_a_closed_pipe_is_not_an_error(sample):
    """`tflite-inverter inspect model | head -1`: the reader of the pipe leaving is no bug. Here the
    reader has left before the first line (a pipe whose read end is closed), so the write must fail."""
    import os

    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", "tflite_inverter", "inspect", str(sample), "--tensors"],
                              stdout=write, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_untrusted_files_give_one_line_and_leave_nothing(sample, tmp_path):
    """-o naming a file, a model the validation pass refuses, a signature entry without a name."""
    existing = tmp_path / "taken"
    existing.write_text("not a directory")
    done = run_cli("convert", str(sample), "-o", "taken", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "tflite-inverter convert: error: -o/--output taken: is a file; give a directory (it is made if missing)"]
    assert done.stdout == ""

    def zero_stride(model):
        for op in model.subgraphs[0].operators:
            if hasattr(op.builtinOptions, "strideH"):
                op.builtinOptions.strideH = 0
                return

    def unnamed(model):
        model.signatureDefs[0].inputs[0].name = None

    for change, command in ((zero_stride, "convert"), (unnamed, "inspect")):
        bad = tmp_path / f"{change.__name__}.tflite"
        bad.write_bytes(edit(sample.read_bytes(), change))
        args = ["-o", "out"] if command == "convert" else []
        done = run_cli(command, str(bad), *args, cwd=tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, done.stderr
        assert lines[0].startswith(f"tflite-inverter {command}: error: {bad}: ")
        assert not (tmp_path / "out").exists()
