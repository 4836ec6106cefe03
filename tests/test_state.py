"""Variable tensors that persist across calls (LSTM/RNN/SVDF states), and TFLite's integer SVDF.

In LiteRT a variable tensor keeps what its kernel wrote until ``reset_all_variables()``; the
inverted model keeps it as module state (SavedModel) or as extra inputs and outputs (frozen pb).
The references are LiteRT's interpreter, in this process for the tests that reset it mid-sequence,
or through ``ti.verify`` (each draw from reset state, and the draws as one sequence of calls).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from tensorflow.lite.python import schema_py_generated as schema

import tflite_inverter as ti
from flatbuffer_writer import pack
from ops.test_recurrent import ACT, VAR, keras_lstm_model, op_model, options, rand

# -- the float LSTM from the converter: SavedModel and frozen pb over a sequence of calls ---------


@pytest.fixture(scope="module")
def lstm_model() -> bytes:
    """UNIDIRECTIONAL_SEQUENCE_LSTM fused by the converter from a Keras-shaped LSTM function: the
    converter makes its output and cell states variable tensors."""
    return keras_lstm_model(6, 2, 5, 3)


def litert_calls(model: bytes, draws: list[np.ndarray], reset_after: int) -> list[np.ndarray]:
    """LiteRT's outputs for ``draws`` as successive calls of one interpreter, reset once after
    ``reset_after`` calls."""
    interpreter = Interpreter(model_content=model)
    runner = interpreter.get_signature_runner()
    outputs = []
    for k, x in enumerate(draws):
        if k == reset_after:
            interpreter.reset_all_variables()
        (value,) = runner(x=x).values()
        outputs.append(np.array(value))
    return outputs


def test_lstm_state_persists_in_saved_model_and_frozen_pb(lstm_model, tmp_path):
    model = ti.load(lstm_model)
    states = [t.name for t in model.main.tensors if t.is_variable]
    assert len(states) == 2, "the converter no longer makes the LSTM states variable tensors"
    rng = np.random.default_rng(0)
    draws = [rng.uniform(-1, 1, [2, 5, 3]).astype(np.float32) for _ in range(7)]
    expected = litert_calls(lstm_model, draws, reset_after=5)
    # The state matters: the same LSTM restarted from zeros differs from the 5th call.
    restarted = litert_calls(lstm_model, draws[4:5], reset_after=5)[0]
    assert np.abs(restarted - expected[4]).max() > 1e-2

    inverted = ti.invert(lstm_model)
    assert inverted.stateful and sorted(inverted.module.states) == sorted(f"state/{n}" for n in states)
    inverted.run([draws[0]])  # a call before saving: the SavedModel still starts from reset state
    inverted.save_saved_model(tmp_path / "saved_model")
    inverted.save_frozen_pb(tmp_path / "model.pb")

    inverted.reset_state()
    in_memory = []
    for k, x in enumerate(draws):
        if k == 5:
            inverted.reset_state()
        in_memory.append(inverted.run([x])["output_0"])

    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    function = loaded.signatures["serving_default"]
    reloaded = []
    for k, x in enumerate(draws):
        if k == 5:
            loaded.reset_state()
        reloaded.append(function(x=tf.constant(x))["output_0"].numpy())

    # The frozen pb: the test feeds each call the state outputs of the last, as the sidecar says.
    description = json.loads((tmp_path / "model.json").read_text())
    assert sorted(s["tflite_tensor"] for s in description["state"]) == sorted(states)
    graph_def = tf.compat.v1.GraphDef.FromString((tmp_path / "model.pb").read_bytes())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    assert not [n.op for n in graph_def.node if "Variable" in n.op], "a frozen pb holds no variables"
    session = tf.compat.v1.Session(graph=graph)
    x_in = graph.get_tensor_by_name(description["inputs"][0]["tensor"])
    y_out = graph.get_tensor_by_name(description["outputs"][0]["tensor"])
    state_in = [graph.get_tensor_by_name(s["input"]["tensor"]) for s in description["state"]]
    state_out = [graph.get_tensor_by_name(s["output"]["tensor"]) for s in description["state"]]
    assert all(s["initial"] == "zeros" for s in description["state"])
    frozen = []
    for k, x in enumerate(draws):
        if k in (0, 5):
            state = [np.zeros(s["shape"], s["dtype"]) for s in description["state"]]
        y, *state = session.run([y_out, *state_out], {x_in: x, **dict(zip(state_in, state))})
        frozen.append(y)

    for name, got in [("in memory", in_memory), ("SavedModel", reloaded), ("frozen pb", frozen)]:
        for k, (a, b) in enumerate(zip(expected, got)):
            assert np.abs(a - b).max() < 1e-5, f"{name}, call {k}: max error {np.abs(a - b).max()}"


def test_stateless_and_verify_of_sequences(lstm_model):
    """verify compares calls in sequence for a stateful model, and fails an inversion that drops the state."""
    stateless = ti.invert(lstm_model, stateless=True)
    assert not stateless.stateful
    first = stateless.run([np.ones([2, 5, 3], np.float32)])["output_0"]
    again = stateless.run([np.ones([2, 5, 3], np.float32)])["output_0"]
    np.testing.assert_array_equal(first, again)
    report = ti.verify(lstm_model, stateless, draws=3)
    assert [o.name for o in report.outputs] == ["output_0", "output_0 (calls in sequence)"]
    assert report.outputs[0].passed and not report.outputs[1].passed and not report.passed
    report = ti.verify(lstm_model, stateless, draws=3, sequence=False)
    assert report.passed and any("not compared" in note for note in report.notes)


# -- the state's layout -------------------------------------------------------------------------
# Each kernel's write-back is checked by the parity tests of tests/ops/test_recurrent.py: every
# LSTM/RNN/SVDF variant there has variable states, so ti.verify also compares it over a sequence
# of calls (assert_parity checks that it did).


def float_svdf() -> bytes:
    rng = np.random.default_rng(21)
    batch, n_input, units, rank, memory = 2, 4, 5, 2, 3
    return op_model(
        "SVDF", options("SVDFOptions", rank=rank, fusedActivationFunction=ACT.RELU),
        [0, rand(rng, units * rank, n_input), rand(rng, units * rank, memory), rand(rng, units, scale=0.3), VAR],
        [[batch, units]], graph_inputs=[[batch, n_input]], version=1, state_shapes={4: [batch, memory * units * rank]})


def test_svdf_state_layout_matches_litert():
    """The state the inverted SVDF keeps is LiteRT's variable tensor, element for element."""
    model = float_svdf()
    rng = np.random.default_rng(3)
    draws = [rng.uniform(-1, 1, [2, 4]).astype(np.float32) for _ in range(3)]
    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    inverted = ti.invert(model)
    (state_index,) = [t.index for t in ti.load(model).main.tensors if t.is_variable]
    (name,) = inverted.module.states
    for x in draws:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        inverted.run([x])
        np.testing.assert_allclose(inverted.module.states[name].numpy(), interpreter.get_tensor(state_index), atol=1e-6)


# -- integer SVDF (fake_quant mode) ---------------------------------------------------------------


def integer_svdf(batch=2, n_input=16, units=4, rank=2, memory=5, input_zp=3, output_zp=-5, bias=True, seed=0) -> bytes:
    """A full-integer SVDF written with the schema (the converter has no TensorFlow op that becomes
    SVDF): int8 input and feature weights, int16 time weights and state, int32 bias at
    s_state * s_time, int8 output; RELU, which LiteRT's integer kernel requires."""
    rng = np.random.default_rng(seed)
    filters = units * rank
    s_in, s_wf, s_state, s_wt, s_out = 1 / 64, 0.01, 16 / 32768, 1 / 16384, 0.25
    model = schema.ModelT()
    model.version = 3
    model.buffers = [schema.BufferT()]
    sg = schema.SubGraphT()
    sg.tensors = []

    def add(name, shape, dtype, scale, zero_point=0, data=None, variable=False):
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type, tensor.isVariable = name, list(shape), dtype, variable
        tensor.quantization = schema.QuantizationParametersT()
        tensor.quantization.scale, tensor.quantization.zeroPoint = [scale], [zero_point]
        buffer = schema.BufferT()
        if data is not None:
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
        model.buffers.append(buffer)
        tensor.buffer = len(model.buffers) - 1
        sg.tensors.append(tensor)
        return len(sg.tensors) - 1

    T = schema.TensorType
    x = add("input", [batch, n_input], T.INT8, s_in, input_zp)
    wf = add("weights_feature", [filters, n_input], T.INT8, s_wf, 0, rng.integers(-127, 128, [filters, n_input]).astype(np.int8))
    wt = add("weights_time", [filters, memory], T.INT16, s_wt, 0,
             rng.integers(-16384, 16384, [filters, memory]).astype(np.int16))
    b = add("bias", [units], T.INT32, s_state * s_wt, 0,
            rng.integers(-2 ** 22, 2 ** 22, [units]).astype(np.int32)) if bias else -1
    state = add("state", [batch, memory * filters], T.INT16, s_state, 0, variable=True)
    y = add("output", [batch, units], T.INT8, s_out, output_zp)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [x, wf, wt, b, state], [y]
    op.builtinOptionsType = schema.BuiltinOptions.SVDFOptions
    op.builtinOptions = options("SVDFOptions", rank=rank, fusedActivationFunction=ACT.RELU)
    sg.operators, sg.inputs, sg.outputs, sg.name = [op], [x], [y], "main"
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.SVDF
    code.version = 3
    model.operatorCodes, model.subgraphs, model.description = [code], [sg], "integer SVDF"
    return pack(model)


@pytest.mark.parametrize("variant", [dict(), dict(rank=1, memory=8, bias=False, input_zp=-20, output_zp=10, seed=1)])
def test_integer_svdf_fake_quant(variant, tmp_path):
    model = integer_svdf(**variant)
    inverted = ti.invert(model)  # the default mode: fake_quant, int8 in and out
    report = ti.verify(model, inverted, draws=5)
    assert report.passed, report.table()
    for output in report.outputs:  # from reset state and in sequence (the int16 state persists)
        assert output.unit == "LSB" and output.within_one_step >= 0.99
    # LiteRT does not apply the RELU the options carry: the emulation neither.
    (out,) = inverted.run([np.random.default_rng(0).integers(-128, 128, [2, 16]).astype(np.int8)]).values()
    assert out.dtype == np.int8 and out.min() < variant.get("output_zp", -5)
    inverted.save_saved_model(tmp_path / "sm")
    assert ti.verify(model, tmp_path / "sm", draws=3).passed


def test_cli_convert_stateless_and_stateful(lstm_model, tmp_path):
    """`convert` keeps the state by default (the pb's sidecar lists it) and drops it with --stateless;
    --verify then compares independent calls only and says so."""
    from tflite_inverter.cli import main

    path = tmp_path / "lstm.tflite"
    path.write_bytes(lstm_model)
    assert main(["convert", str(path), "-o", str(tmp_path / "stateful"), "--pb", "--no-saved-model"]) == 0
    assert len(json.loads((tmp_path / "stateful" / "model.json").read_text())["state"]) == 2
    assert main(["convert", str(path), "-o", str(tmp_path / "stateless"), "--pb", "--no-saved-model", "--stateless",
                 "--verify", "--draws", "2"]) == 0
    assert "state" not in json.loads((tmp_path / "stateless" / "model.json").read_text())
