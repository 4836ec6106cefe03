"""verify itself: per-tensor comparison names the first diverging operator; the tolerance rule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from parity import convert, weight
from tflite_inverter.ops import registry
from tflite_inverter.check.verify import compare_output


@pytest.fixture(scope="module")
def chain_model() -> bytes:
    w1, w2 = weight([3, 3, 3, 8]), weight([8, 4], 1)

    def f(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME"))
        y = y * tf.sigmoid(y)
        y = tf.reduce_mean(y, axis=[1, 2])
        return tf.nn.softmax(tf.matmul(y, w2))

    return convert(f, [tf.TensorSpec([1, 8, 8, 3], tf.float32)])


def test_per_tensor_all_within_tolerance(chain_model):
    report = ti.verify(chain_model, ti.invert(chain_model), per_tensor=True, draws=2)
    assert report.passed and report.first_divergence is None
    opcodes = {t.opcode for t in report.tensors}
    assert {"CONV_2D", "LOGISTIC", "MUL", "MEAN", "FULLY_CONNECTED", "SOFTMAX"} <= opcodes


def test_per_tensor_names_a_broken_builder(chain_model, monkeypatch):
    spec = registry.lookup("MUL")

    def build_broken_mul(ctx, op, inputs):
        return [inputs[0] * inputs[1] * 1.01]  # a 1 % error

    monkeypatch.setitem(registry._REGISTRY, "MUL", dataclasses.replace(spec, builder=build_broken_mul))
    model = ti.load(chain_model)
    mul = next(op for op in model.main.operators if op.opcode == "MUL")
    report = ti.verify(chain_model, ti.invert(chain_model), per_tensor=True, draws=2)
    first = report.first_divergence
    assert first is not None and first.operator == mul.index and first.opcode == "MUL"
    assert first.tensor == model.main.tensors[mul.outputs[0]].name
    assert all(t.passed for t in report.tensors if t.operator < mul.index)
    assert "first divergence: operator" in report.table()


def test_tolerance_rule_uses_magnitude_and_noise_floor():
    tensor = ti.load(convert(tf.nn.relu, [tf.TensorSpec([4], tf.float32)])).main.tensors[0]
    ref = [np.array([1000.0, 0.0, 0.0, 0.0])]
    within = compare_output("y", tensor, ref, [np.array([1000.09, 0.0, 0.0, 0.0])], None, 1e-4)
    beyond = compare_output("y", tensor, ref, [np.array([1000.2, 0.0, 0.0, 0.0])], None, 1e-4)
    assert within.passed and within.tolerance == pytest.approx(0.1)
    assert not beyond.passed
    noisy = compare_output("y", tensor, ref, [np.array([1000.2, 0.0, 0.0, 0.0])], [np.array([1000.15, 0, 0, 0])], 1e-4)
    assert noisy.noise_floor == pytest.approx(0.15) and noisy.passed  # 2 x floor = 0.3
    small = compare_output("y", tensor, [np.array([0.001, 0, 0, 0])], [np.array([0.00105, 0, 0, 0])], None, 1e-4)
    assert small.tolerance == pytest.approx(1e-4) and small.passed  # max(1, |ref|) floors the scale at 1
