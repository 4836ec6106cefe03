"""Parity tests for the hash-table ops of tflite_inverter/ops/resources.py (resource variables are
tested with control flow in test_control_flow.py, where CALL_ONCE initialises them)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from parity import assert_parity

TABLES = {
    # TFLite's builtin tables: string -> int64 and int64 -> string.
    "string_to_int64": (tf.string, tf.int64, ["cat", "dog", "emu"], [3, 1, 4], -1,
                        [np.array([b"dog", b"yak", b"cat", b"emu"]), np.array([b"emu", b"emu", b"", b"ant"])]),
    "int64_to_string": (tf.int64, tf.string, [7, 11, 42], ["seven", "eleven", "forty-two"], "?",
                        [np.array([42, 7, 8, 11]), np.array([0, 11, 11, -7])]),
}


@pytest.mark.parametrize("kind", sorted(TABLES))
def test_hashtable_find_size_import(kind):
    key_dtype, value_dtype, keys, values, default, draws = TABLES[kind]

    class Lookup(tf.Module):
        def __init__(self):
            initializer = tf.lookup.KeyValueTensorInitializer(tf.constant(keys, key_dtype), tf.constant(values, value_dtype))
            self.table = tf.lookup.StaticHashTable(initializer, default_value=default)

        @tf.function(input_signature=[tf.TensorSpec([4], key_dtype, name="k")])
        def lookup(self, k):
            return {"value": self.table.lookup(k), "size": self.table.size()}

    module = Lookup()
    model = tf.lite.TFLiteConverter.from_concrete_functions([module.lookup.get_concrete_function()], module).convert()
    inputs = [{"k": draw if key_dtype == tf.string else draw.astype(np.int64)} for draw in draws]
    report = assert_parity(model, ["HASHTABLE", "HASHTABLE_FIND", "HASHTABLE_SIZE", "HASHTABLE_IMPORT", "CALL_ONCE"],
                           inputs=inputs)
    assert {o.name for o in report.outputs} == {"value", "size"}
    inverted = ti.invert(model)
    out = inverted.run({"k": inputs[0]["k"]})
    assert out["size"].tolist() == [3]
