"""Weights made by build/weight_variable.py behave as ``tf.Variable`` s do, where the project uses them."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tflite_inverter.build import weight_variable


def test_weight_is_a_variable_with_its_name_shape_and_value(tmp_path):
    value = np.random.default_rng(0).normal(size=(3, 2, 4)).astype(np.float32)
    weight = weight_variable.new_weight(value, "conv/kernel")
    assert weight_variable._fast, "the fast path fell back to tf.Variable on this TensorFlow"
    assert isinstance(weight, tf.Variable) and weight.trainable
    assert weight.name == "conv/kernel:0" and weight.shape == (3, 2, 4) and weight.dtype == tf.float32
    np.testing.assert_array_equal(weight.numpy(), value)
    value[...] = 0  # the variable holds its own copy
    assert np.abs(weight.numpy()).sum() > 0

    @tf.function(input_signature=[tf.TensorSpec([None, 2, 4], tf.float32)])
    def scaled(x):
        read = tf.convert_to_tensor(weight)
        assert read.shape == (3, 2, 4)  # static shape while tracing
        return x * read

    ones = tf.ones([3, 2, 4])
    np.testing.assert_array_equal(scaled(ones).numpy(), weight.numpy())
    weight.assign(tf.fill([3, 2, 4], 2.0))
    np.testing.assert_array_equal(scaled(ones).numpy(), np.full([3, 2, 4], 2.0, np.float32))


def test_weights_save_and_load_through_tensorflows_saved_model(tmp_path):
    module = tf.Module()
    module.weights = {"a": weight_variable.new_weight(np.arange(6, dtype=np.float32).reshape(2, 3), "a"),
                      "b": weight_variable.new_weight(np.ones(3, np.float32), "b")}
    module.f = tf.function(lambda x: tf.matmul(x, module.weights["a"]) + module.weights["b"],
                           input_signature=[tf.TensorSpec([1, 2], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    x = tf.constant([[1.0, 2.0]])
    np.testing.assert_array_equal(loaded.f(x).numpy(), module.f(x).numpy())
    checkpoint = tf.train.load_checkpoint(str(tmp_path / "sm" / "variables" / "variables"))
    keys = [k for k in checkpoint.get_variable_to_shape_map() if k.startswith("weights/")]
    assert sorted(keys) == ["weights/a/.ATTRIBUTES/VARIABLE_VALUE", "weights/b/.ATTRIBUTES/VARIABLE_VALUE"]
