"""verify() of a SavedModel or frozen pb runs the file, also where LiteRT cannot run the original
(a Flex op here: LiteRT's Python package has no Flex delegate). The builtin part is verified in
segments against LiteRT through the in-memory inversion, and the file is compared with that inversion."""

from __future__ import annotations

import pytest
import tensorflow as tf

import tflite_inverter as ti
from parity import convert


def twice(x):
    return tf.linalg.det(x) * 2.0 + tf.reduce_sum(x, axis=[1, 2])


def thrice(x):
    return tf.linalg.det(x) * 3.0 + tf.reduce_sum(x, axis=[1, 2])


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("written")
    spec = [tf.TensorSpec([2, 3, 3], tf.float32)]
    original = folder / "twice.tflite"
    original.write_bytes(convert(twice, spec, select_tf_ops=True))
    inverted = ti.invert(str(original))
    inverted.save_saved_model(folder / "twice_saved_model")
    inverted.save_frozen_pb(folder / "twice.pb")
    ti.invert(convert(thrice, spec, select_tf_ops=True)).save_saved_model(folder / "thrice_saved_model")
    return folder, inverted


@pytest.mark.parametrize("candidate", ["twice_saved_model", "twice.pb"])
def test_the_file_on_disk_is_run_and_compared_with_the_inversion(written, candidate):
    folder, inverted = written
    report = ti.verify(str(folder / "twice.tflite"), str(folder / candidate), inversion=inverted)
    assert report.passed, report.table()
    rows = [o.name for o in report.outputs]
    assert "output_0 (file vs in memory)" in rows and "output_0" in rows
    assert any("verified in segments" in note for note in report.notes)
    assert not any("itself was not run" in note for note in report.notes)


def test_a_file_that_computes_something_else_fails(written):
    folder, _ = written
    report = ti.verify(str(folder / "twice.tflite"), str(folder / "thrice_saved_model"))  # a fresh inversion
    by_name = {o.name: o for o in report.outputs}
    assert by_name["output_0"].passed  # the segments, through the in-memory inversion of twice.tflite
    assert not by_name["output_0 (file vs in memory)"].passed and not report.passed, report.table()
