"""Quiet by default: the API's long steps (TensorFlow's import, the converter, inverting, saving,
re-quantizing) print no TensorFlow, absl or converter log lines, and no progress bar when stderr is a
pipe; set_verbosity(...) brings the log lines back."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import tflite_inverter as ti
from tflite_inverter import logs

REPO = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import os, sys
import tflite_inverter as ti
if sys.argv[2] != "default":
    ti.set_verbosity(sys.argv[2])
assert ti.supported_ops()  # the first TensorFlow import here: through the builders' registry
from tflite_inverter.sample import write_sample_model
work = sys.argv[1]
path = write_sample_model(os.path.join(work, "sample.tflite"))
inverted = ti.invert(path)
inverted.save_saved_model(os.path.join(work, "saved_model"))
ti.requantize(inverted, os.path.join(work, "f16.tflite"), mode="float16")
print("passed" if os.path.exists(os.path.join(work, "f16.tflite")) else "failed")
"""


def test_the_api_is_silent_on_stderr_by_default_and_speaks_when_asked(tmp_path):
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    quiet = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), "default"], capture_output=True, text=True,
                           env=env, timeout=600)
    assert quiet.returncode == 0 and quiet.stdout.strip() == "passed", quiet.stderr
    assert quiet.stderr == ""  # no cpu_feature_guard, absl, oneDNN, converter, "Assets written" or progress lines
    # Asked for, TensorFlow's start-up lines come through (the check above can fail).
    loud = subprocess.run([sys.executable, "-c", "import tflite_inverter as ti; ti.set_verbosity('info'); "
                           "from tflite_inverter.logs import import_tensorflow; import_tensorflow()"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert loud.returncode == 0, loud.stderr
    assert "I0000" in loud.stderr or "oneDNN" in loud.stderr, loud.stderr


def test_set_verbosity_names_the_levels():
    before = logs.verbosity()
    try:
        ti.set_verbosity("warnings")
        assert logs.verbosity() == 1
        ti.set_verbosity(-1)
        assert logs.progress(range(3), description="x").disable  # silent: no bars anywhere
    finally:
        ti.set_verbosity(before)
    with pytest.raises(ti.TfliteInverterError, match="not one of"):
        ti.set_verbosity("chatty")


KERAS_SCRIPT = r"""
import os, sys
from tflite_inverter.cli import main
work, path = sys.argv[1], sys.argv[2]
code = main(["convert", path, "-o", os.path.join(work, "out"), "--pb", "-q"])
loaded = sorted(name for name in ("keras", "matplotlib", "pandas", "IPython") if sys.modules.get(name) is not None)
import tensorflow as tf
layer = tf.keras.layers.Dense(2)  # Keras still imports on first use
print(code, loaded, type(layer).__module__.split(".")[0])
"""


def test_the_cli_imports_tensorflow_without_keras_and_keras_still_works_afterwards(tmp_path):
    """TensorFlow's import pulls in all of Keras 3 (and matplotlib, pandas, IPython through it): the
    CLI holds it back (logs.import_tensorflow(without_keras=True)); tf.keras then imports it lazily."""
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    from tflite_inverter.sample import write_sample_model

    sample = write_sample_model(tmp_path / "sample.tflite")  # (here: the sample writer imports TensorFlow)
    run = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(tmp_path), str(sample)], capture_output=True,
                         text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[-2] == "0 [] keras", run.stdout
    assert (tmp_path / "out" / "saved_model" / "saved_model.pb").exists()


def test_the_api_leaves_tensorflows_keras_import_alone(tmp_path):
    """The library's API (a notebook's process) imports TensorFlow as TensorFlow does it."""
    script = ("import sys, tflite_inverter as ti\nti.supported_ops()\n"
              "print(sys.modules.get('keras') is not None)")
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0 and run.stdout.strip().endswith("True"), run.stderr
