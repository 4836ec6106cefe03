"""The CLI answers mistakes at once: arguments, paths, names and output locations are checked before
TensorFlow is imported, and every error is one line on stderr with exit 2, in the CLI's own terms.

The mistakes run in one subprocess in which importing TensorFlow raises: a check that reached
TensorFlow would fail with an ImportError traceback instead of the expected line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tflite_inverter.cli import build_parser, in_cli_terms

REPO = Path(__file__).resolve().parent.parent

RUNNER = r"""
import contextlib, io, json, sys
sys.modules["tensorflow"] = None  # any import of TensorFlow now raises ImportError
from tflite_inverter.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exit:
            code = exit.code
    results.append({"code": code, "stderr": err.getvalue(), "stdout": out.getvalue()})
print(json.dumps(results))
print("tensorflow imported" if sys.modules.get("tensorflow") is not None else "tensorflow not imported")
"""

MISTAKES = [
    (["convert", "missing.tflite", "-o", "out"], "MODEL missing.tflite: no such file"),
    (["convert", "notamodel.tflite", "-o", "out"], "too short for a TFLite model"),
    (["convert", "palm.tflite", "-o", "afile"], "-o/--output afile: is a file"),
    (["convert", "palm.tflite", "-o", "done"], "done/saved_model exist(s); pass --overwrite"),
    (["convert", "palm.tflite", "-o", "out", "--input-shape", "input_2:1,192,192,3"], "did you mean 'input_1'"),
    (["convert", "palm.tflite", "-o", "out", "--input-shape", "input_1:1,192,192"], "3 dimensions given; input 'input_1' has 4"),
    (["convert", "palm.tflite", "-o", "out", "--input-shape", "input_1"], "expected NAME:D0,D1,..."),
    (["convert", "palm.tflite", "-o", "out", "--outputs", "Identty"], "did you mean 'Identity'"),
    (["convert", "palm.tflite", "-o", "out", "--data", "nothere"], "--data nothere: no such file or folder"),
    (["convert", "palm.tflite", "-o", "out", "--draws", "0"], "--draws 0: must be at least 1"),
    (["convert", "palm.tflite"], "the following arguments are required: -o/--output"),
    (["convert", "palm.tflite", "-o", "out", "--quantized", "float"], "argument --quantized: invalid choice"),
    (["verify", "palm.tflite", "nothere"], "CANDIDATE nothere: no such file or directory"),
    (["verify", "palm.tflite", "afile"], "not a SavedModel directory, a .pb or a .tflite file"),
    (["verify", "palm.tflite", "empty"], "a directory without saved_model.pb"),
    (["verify", "palm.tflite", "lonely.pb"], "its sidecar lonely.json"),
    (["verify", "palm.tflite", "palm.tflite", "--signature", "serving"], "did you mean 'serving_default'"),
    (["requantize", "palm.tflite", "-o", "afile"], "-o/--output afile: exists; pass --overwrite"),
    (["requantize", "palm.tflite", "-o", "empty"], "-o/--output empty: is a directory"),
    (["requantize", "palm.tflite", "-o", "x.tflite", "--keep-float-node", "Identty", "--data", "empty"], "did you mean 'Identity'"),
    (["requantize", "palm.tflite", "-o", "x.tflite", "--keep-float-op", "CONV_2D"], "need calibration data: give --data"),
    (["requantize", "nothere", "-o", "x.tflite"], "SOURCE nothere: no such file or directory"),
    (["requantize", "palm.tflite", "-o", "x.tflite", "--mode", "int4"], "argument --mode: invalid choice"),
    (["requantize", "palm.tflite", "-o", "x.tflite", "--mode", "uint8", "--backend", "aeq"], "has no uint8 recipe"),
    (["requantize", "palm.tflite", "-o", "x.tflite", "--mode", "weight_only_int4", "--backend", "tflite"],
     "converter has no weight_only_int4 recipe"),
    (["compare", "palm.tflite", "nothere.tflite"], "B nothere.tflite: no such file"),
    (["compare", "palm.tflite", "palm.tflite", "--data", "x.txt"], "give a folder of images, a .npy or a .npz"),
    (["inspect", "nothere"], "MODEL nothere: no such file"),
    (["sample", "afile"], "PATH afile: exists; pass --overwrite"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["verify", "palm.tflite", "palm.tflite", "--report", "report.txt"], "--report report.txt: the page is HTML"),
    (["convert", "palm.tflite", "-o", "out", "--report", "r.html"], "--report shows the verification: add --verify"),
    (["compare", "palm.tflite", "palm.tflite", "--report", "empty"], "--report empty: the page is HTML"),
    (["verify", "palm.tflite", "palm.tflite", "--model-explorer", "e.json"], "--model-explorer shows the per-tensor "
                                                                             "comparison: add --per-tensor"),
    (["verify", "palm.tflite", "palm.tflite", "--per-tensor", "--model-explorer", "e.txt"], "name it NAME.json"),
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, mediapipe_models):
    folder = tmp_path_factory.mktemp("cli_fast")
    (folder / "palm.tflite").symlink_to(mediapipe_models["palm_detection_full"])
    (folder / "notamodel.tflite").write_bytes(b"hi\n")
    (folder / "afile").write_text("x")
    (folder / "x.txt").write_text("x")
    (folder / "lonely.pb").write_bytes(b"")
    (folder / "empty").mkdir()
    (folder / "done" / "saved_model").mkdir(parents=True)
    return folder


def run_without_tensorflow(argvs: list[list[str]], cwd: Path) -> tuple[list[dict], str]:
    done = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(argvs)], capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    return json.loads(lines[0]), lines[1]


def test_every_mistake_is_one_line_exit_2_before_tensorflow(workdir):
    results, imported = run_without_tensorflow([argv for argv, _ in MISTAKES], workdir)
    assert imported == "tensorflow not imported"
    for (argv, expected), result in zip(MISTAKES, results):
        assert result["code"] == 2, (argv, result)
        assert result["stdout"] == "", (argv, result)
        lines = result["stderr"].splitlines()
        assert len(lines) == 1 and lines[0].startswith("tflite-inverter"), (argv, result["stderr"])
        assert expected in lines[0], (argv, lines[0])
        assert "Traceback" not in result["stderr"] and "_shapes" not in lines[0]  # no Python keyword names


def test_version_help_and_inspect_answer_without_tensorflow(workdir):
    argvs = [["--version"], ["inspect", "palm.tflite", "--tensors"], ["-q", "inspect", "palm.tflite"]]
    argvs += [[command, "--help"] for command in ("convert", "verify", "inspect", "sample", "requantize", "compare", "ops")]
    results, imported = run_without_tensorflow(argvs, workdir)
    assert imported == "tensorflow not imported"
    from tflite_inverter import __version__

    assert results[0]["code"] == 0 and results[0]["stdout"].strip() == f"tflite-inverter {__version__}"
    tensors = results[1]["stdout"]
    assert results[1]["code"] == 0 and "model_1/model/reshaped_regressor_palm_16/Reshape" in tensors and "CONV_2D" in tensors
    assert results[2]["code"] == 0 and "RESHAPE" in results[2]["stdout"]
    for result in results[3:]:
        assert result["code"] == 0 and "examples:\n  tflite-inverter " in result["stdout"], result


def test_every_option_has_help_and_the_top_level_help_names_every_mode():
    parser = build_parser()
    top = parser.format_help()
    assert "uint8_throughout" in top and "--version" in top
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subparsers.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help text"


def test_library_messages_are_said_in_flag_terms():
    message = ("input_shapes names unknown inputs ['x']; per_tensor: give representative data, or requantize a "
               "quantized='dequantize' inversion; cut with outputs= (model.tensors() lists them)")
    said = in_cli_terms(message)
    assert said == ("--input-shape names unknown inputs ['x']; --per-tensor: give --data, or requantize a "
                    "--quantized dequantize inversion; cut with --outputs (`tflite-inverter inspect MODEL --tensors` "
                    "lists them)")
