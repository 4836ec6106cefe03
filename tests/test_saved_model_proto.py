"""The SavedModel written directly from the traced functions (emit/saved_model_proto.py) holds what
``tf.saved_model.save`` writes for the same module: the same signatures (keys, names, dtypes,
shapes), the same checkpoint keys and values, the same outputs once loaded (TF2 and TF1 loaders),
and it converts back to TFLite. Modules it does not take go to ``tf.saved_model.save``."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti
from tflite_inverter.emit import saved_model_proto
from tflite_inverter.sample import make_sample_model


@pytest.fixture(scope="module")
def two_signatures(tmp_path_factory):
    """A model with two signatures sharing a weight, one of them with two inputs in non-sorted order."""
    class Two(tf.Module):
        def __init__(self):
            self.w = tf.Variable(np.random.default_rng(0).normal(size=[4, 3]).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="zeta"),
                                      tf.TensorSpec([1, 3], tf.float32, name="alpha")])
        def combine(self, zeta, alpha):
            return {"total": tf.matmul(zeta, self.w) + alpha, "doubled": 2.0 * alpha}

        @tf.function(input_signature=[tf.TensorSpec([2, 4], tf.float32, name="x")])
        def project(self, x):
            return {"y": tf.nn.relu(tf.matmul(x, self.w))}

    module = Two()
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [module.combine.get_concrete_function(), module.project.get_concrete_function()], module)
    path = tmp_path_factory.mktemp("two") / "two.tflite"
    path.write_bytes(converter.convert())
    return path


def _inputs(inverted, key):
    rng = np.random.default_rng(1)
    return {s.name: rng.normal(size=s.shape).astype(np.float32) for s in inverted.inputs(key)}


@pytest.mark.parametrize("which", ["sample", "two_signatures"])
def test_direct_savedmodel_equals_tensorflows(which, two_signatures, tmp_path):
    if which == "sample":
        source = tmp_path / "sample.tflite"
        source.write_bytes(make_sample_model())
    else:
        source = two_signatures
    inverted = ti.invert(source)
    children = saved_model_proto.direct_children(inverted.module, inverted.concrete_functions)
    assert children is not None
    direct = tmp_path / "direct"
    direct.mkdir()
    saved_model_proto.write_saved_model(children, inverted.concrete_functions, direct)
    reference = tmp_path / "tensorflow"
    tf.saved_model.save(inverted.module, str(reference), signatures=dict(inverted.concrete_functions))

    ours, theirs = tf.saved_model.load(str(direct)), tf.saved_model.load(str(reference))
    assert set(ours.signatures) == set(theirs.signatures) == set(inverted.signatures)
    for key in inverted.signatures:
        a, b = ours.signatures[key], theirs.signatures[key]
        assert a.structured_input_signature == b.structured_input_signature
        assert a.structured_outputs == b.structured_outputs
        feeds = _inputs(inverted, key)
        got = a(**{k: tf.constant(v) for k, v in feeds.items()})
        expected = inverted.run(feeds, signature=key)
        assert set(got) == set(expected)
        for name in got:
            np.testing.assert_array_equal(got[name].numpy(), expected[name])
    reader_a = tf.train.load_checkpoint(str(direct / "variables" / "variables"))
    reader_b = tf.train.load_checkpoint(str(reference / "variables" / "variables"))
    keys = set(reader_b.get_variable_to_shape_map())
    assert set(reader_a.get_variable_to_shape_map()) == keys
    for key in keys - {saved_model_proto.OBJECT_GRAPH_KEY}:
        np.testing.assert_array_equal(reader_a.get_tensor(key), reader_b.get_tensor(key))
    # SignatureDefs as TF1 tools read them: the same keys, dtypes and shapes on every input and output.
    def signature_defs(path):
        from tensorflow.core.protobuf import saved_model_pb2

        graph = saved_model_pb2.SavedModel.FromString((path / "saved_model.pb").read_bytes()).meta_graphs[0]
        return {k: ({n: (t.dtype, str(t.tensor_shape)) for n, t in s.inputs.items()},
                    {n: (t.dtype, str(t.tensor_shape)) for n, t in s.outputs.items()})
                for k, s in graph.signature_def.items() if not k.startswith("__")}

    assert signature_defs(direct) == signature_defs(reference)


def test_direct_savedmodel_loads_in_tf1_and_converts_back(two_signatures, tmp_path):
    inverted = ti.invert(two_signatures)
    path = inverted.save_saved_model(tmp_path / "sm")
    key = "combine"
    feeds = _inputs(inverted, key)
    expected = inverted.run(feeds, signature=key)
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], str(path))
        signature = meta.signature_def[key]
        fetched = session.run({n: t.name for n, t in signature.outputs.items()},
                              {signature.inputs[n].name: v for n, v in feeds.items()})
    for name, value in expected.items():
        np.testing.assert_array_equal(fetched[name], value)
    again = tmp_path / "again.tflite"
    again.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(path), signature_keys=[key]).convert())
    report = ti.verify(two_signatures, again, signature=key, draws=2)
    assert report.passed, report.table()


def test_modules_with_other_trackables_go_to_tensorflow(tmp_path):
    """A module with a tf.function attribute (as a stateful model's reset_state) is not taken."""
    source = tmp_path / "sample.tflite"
    source.write_bytes(make_sample_model())
    inverted = ti.invert(source)
    assert saved_model_proto.direct_children(inverted.module, inverted.concrete_functions) is not None
    inverted.module.extra = tf.function(lambda: tf.constant(1.0), input_signature=[])
    assert saved_model_proto.direct_children(inverted.module, inverted.concrete_functions) is None
    path = inverted.save_saved_model(tmp_path / "sm")
    assert float(tf.saved_model.load(str(path)).extra()) == 1.0  # written by tf.saved_model.save
