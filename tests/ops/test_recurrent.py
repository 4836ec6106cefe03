"""Parity tests for tflite_inverter/ops/recurrent.py: the LSTM and RNN families and SVDF.

UNIDIRECTIONAL_SEQUENCE_LSTM comes from the converter: a ``tf.function`` carrying the attributes of
tf.keras's fused LSTM (``api_implements="lstm_..."``, ``time_major``, ``go_backwards``; Keras 3's
LSTM layer no longer has them and converts to a WHILE loop). The other operators are no longer
emitted by the converter: their models are made by editing a converted model
(``flatbuffer_writer.edit``), with inputs and weights laid out as TFLite's kernels read them
(tensorflow/lite/kernels/lstm.cc, bidirectional_sequence_lstm.cc, basic_rnn.cc,
bidirectional_sequence_rnn.cc, svdf.cc). Hybrid variants quantize the weights to int8 (per tensor,
symmetric), as the converter's dynamic-range quantization does.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

import tflite_inverter as ti
from flatbuffer_writer import edit
from parity import assert_parity, convert, weight

# -- models the converter makes -------------------------------------------------------------------


def fused_keras_lstm(*, time_major=False, go_backwards=False, indy=False):
    """A ``tf.function`` shaped like tf.keras's ``standard_lstm`` (gates i, f, c, o in the kernel's
    columns), with the attributes the converter fuses into UNIDIRECTIONAL_SEQUENCE_LSTM."""

    def standard_lstm(inputs, init_h, init_c, kernel, recurrent_kernel, bias):
        x = inputs if time_major else tf.transpose(inputs, [1, 0, 2])
        if go_backwards:
            x = tf.reverse(x, [0])

        def step(state, x_t):
            h, c = state
            if indy:
                z = tf.matmul(x_t, kernel) + tf.concat([h * recurrent_kernel[:, k] for k in range(4)], 1) + bias
            else:
                z = tf.matmul(x_t, kernel) + tf.matmul(h, recurrent_kernel) + bias
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            return tf.sigmoid(o) * tf.tanh(c), c

        hs, cs = tf.scan(step, x, initializer=(init_h, init_c))
        outputs = hs if time_major else tf.transpose(hs, [1, 0, 2])
        return hs[-1], outputs, hs[-1], cs[-1], tf.constant(0.0)

    prefix = "indy_lstm_" if indy else "lstm_"
    return tf.function(standard_lstm, experimental_attributes={
        "api_implements": prefix + uuid.uuid4().hex, "api_preferred_device": "CPU",
        "time_major": time_major, "go_backwards": go_backwards})


def keras_lstm_model(units, batch, time, features, *, time_major=False, go_backwards=False, indy=False,
                     mode="float32", seed=0, weights=None):
    """A model with UNIDIRECTIONAL_SEQUENCE_LSTM, fused by the converter from :func:`fused_keras_lstm`;
    ``weights`` (kernel, recurrent kernel, bias) replace the seeded ones."""
    kernel = weight([features, 4 * units], seed=seed)
    # indy (diagonal) LSTM: column k of the [units, 4] recurrent kernel is gate k's diagonal
    recurrent = weight([units, 4] if indy else [units, 4 * units], seed=seed + 1)
    bias = weight([4 * units], seed=seed + 2)
    if weights is not None:
        kernel, recurrent, bias = (tf.constant(w, tf.float32) for w in weights)
    fused = fused_keras_lstm(time_major=time_major, go_backwards=go_backwards, indy=indy)

    def f(x):
        zeros = tf.zeros([batch, units])
        return fused(x, zeros, zeros, kernel, recurrent, bias)[1]

    shape = [time, batch, features] if time_major else [batch, time, features]
    return convert(f, [tf.TensorSpec(shape, tf.float32)], mode=mode)


def bidirectional_keras_lstm_model(units, batch, time, features, *, mode="float32", seed=0):
    """Keras's Bidirectional(LSTM) as the converter sees it: a forward and a go_backwards LSTM on the
    same input, concatenated; it becomes two UNIDIRECTIONAL_SEQUENCE_LSTMs."""
    forward, backward = fused_keras_lstm(), fused_keras_lstm(go_backwards=True)
    weights = [(weight([features, 4 * units], seed=seed + 3 * k), weight([units, 4 * units], seed=seed + 3 * k + 1),
                weight([4 * units], seed=seed + 3 * k + 2)) for k in range(2)]

    def f(x):
        zeros = tf.zeros([batch, units])
        fw = forward(x, zeros, zeros, *weights[0])[1]
        bw = tf.reverse(backward(x, zeros, zeros, *weights[1])[1], [1])
        return tf.concat([fw, bw], axis=-1)

    return convert(f, [tf.TensorSpec([batch, time, features], tf.float32)], mode=mode)


# -- models made by editing a converted one -------------------------------------------------------

VAR = "variable"  # operand marker: a variable tensor (a state), zero-initialized


def int8(array: np.ndarray) -> tuple:
    """A per-tensor symmetric int8 constant (what dynamic-range quantization makes of a weight)."""
    scale = float(np.abs(array).max()) / 127.0
    return ("int8", np.clip(np.round(array / scale), -127, 127).astype(np.int8), scale)


def op_model(opcode: str, options, operands, output_shapes, *, graph_inputs, version, state_shapes=None):
    """A model whose only operator is ``opcode``, made by editing a converted model of the graph
    inputs. ``operands``: an int (graph input), a float32 array (constant), ``int8(array)``,
    ``VAR`` (a variable whose shape ``state_shapes`` gives by operand position), or None (absent)."""
    skeleton = convert(lambda *xs: [tf.nn.relu(x) for x in xs], [tf.TensorSpec(s, tf.float32) for s in graph_inputs])

    def change(model):
        sg = model.subgraphs[0]
        tensors = [sg.tensors[i] for i in sg.inputs]

        def add(shape, dtype, name, data=None, scale=None, variable=False):
            buffer = schema.BufferT()
            if data is not None:
                buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            model.buffers.append(buffer)
            tensor = schema.TensorT()
            tensor.shape = list(shape)
            tensor.type = dtype
            tensor.buffer = len(model.buffers) - 1
            tensor.name = name
            tensor.isVariable = variable
            if scale is not None:
                tensor.quantization = schema.QuantizationParametersT()
                tensor.quantization.scale = [scale]
                tensor.quantization.zeroPoint = [0]
            tensors.append(tensor)
            return len(tensors) - 1

        op_inputs = []
        for position, operand in enumerate(operands):
            name = f"operand_{position}"
            if operand is None:
                op_inputs.append(-1)
            elif isinstance(operand, int):
                op_inputs.append(operand)
            elif isinstance(operand, str) and operand == VAR:
                op_inputs.append(add(state_shapes[position], schema.TensorType.FLOAT32, name, variable=True))
            elif isinstance(operand, tuple):
                _, values, scale = operand
                op_inputs.append(add(values.shape, schema.TensorType.INT8, name, values, scale))
            else:
                values = np.asarray(operand, np.float32)
                op_inputs.append(add(values.shape, schema.TensorType.FLOAT32, name, values))
        outputs = [add(shape, schema.TensorType.FLOAT32, f"output_{k}") for k, shape in enumerate(output_shapes)]
        operator = schema.OperatorT()
        operator.opcodeIndex = 0
        operator.inputs = op_inputs
        operator.outputs = outputs
        operator.builtinOptionsType = getattr(schema.BuiltinOptions, type(options).__name__[:-1])
        operator.builtinOptions = options
        code = schema.OperatorCodeT()
        code.builtinCode = getattr(schema.BuiltinOperator, opcode)
        code.deprecatedBuiltinCode = code.builtinCode
        code.version = version
        model.operatorCodes = [code]
        sg.tensors = tensors
        sg.inputs = list(range(len(graph_inputs)))
        sg.outputs = outputs
        sg.operators = [operator]
        model.signatureDefs = []

    return edit(skeleton, change)


def options(kind: str, **fields):
    made = getattr(schema, kind + "T")()
    for key, value in fields.items():
        setattr(made, key, value)
    return made


ACT = schema.ActivationFunctionType


def rand(rng, *shape, scale=0.5):
    return rng.normal(0, scale, size=shape).astype(np.float32)


def maybe_int8(array, hybrid):
    return int8(array) if hybrid else array


# -- LSTM weights ---------------------------------------------------------------------------------


def lstm_weights(rng, n_input, n_cell, n_output, *, cifg=False, peephole=False, projection=False,
                 projection_bias=False, hybrid=False):
    """Operands 1-17 of an LSTM direction: gate weights, peepholes, biases, projection."""
    gates = range(4)
    input_weights = [None if cifg and k == 0 else maybe_int8(rand(rng, n_cell, n_input), hybrid) for k in gates]
    recurrent = [None if cifg and k == 0 else maybe_int8(rand(rng, n_cell, n_output), hybrid) for k in gates]
    peepholes = [None if not peephole or cifg and k == 0 else maybe_int8(rand(rng, n_cell), hybrid) for k in range(3)]
    biases = [None if cifg and k == 0 else rand(rng, n_cell, scale=0.3) for k in gates]
    proj = maybe_int8(rand(rng, n_output, n_cell), hybrid) if projection else None
    proj_bias = rand(rng, n_output, scale=0.3) if projection_bias else None
    return [*input_weights, *recurrent, *peepholes, *biases, proj, proj_bias]


def lstm_aux_weights(rng, n_aux, n_cell, *, cifg=False, hybrid=False):
    return [None if cifg and k == 0 else maybe_int8(rand(rng, n_cell, n_aux), hybrid) for k in range(4)]


# -- UNIDIRECTIONAL_SEQUENCE_LSTM -----------------------------------------------------------------


@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_unidirectional_sequence_lstm_keras(time_major, go_backwards):
    model = keras_lstm_model(6, 2, 5, 3, time_major=time_major, go_backwards=go_backwards)
    assert_parity(model, ["UNIDIRECTIONAL_SEQUENCE_LSTM"])


def test_unidirectional_sequence_lstm_indy():
    """Diagonal recurrent weights (``indy_lstm_``): recurrent weights are [n_cell] vectors (version 4)."""
    model = keras_lstm_model(6, 2, 5, 3, indy=True)
    assert ti.load(model).main.operators[0].options["diagonal_recurrent_tensors"]
    assert_parity(model, ["UNIDIRECTIONAL_SEQUENCE_LSTM"])


def clip_lstm_weights(units):
    """Input, forget and output gates open (bias 8), cell gate tanh(8 x): the cell state moves by
    about +-1 a step with the sign of the input."""
    kernel = np.zeros([1, 4 * units], np.float32)
    kernel[0, 2 * units:3 * units] = 8.0
    bias = np.repeat(np.array([8.0, 8.0, 0.0, 8.0], np.float32), units)
    return kernel, np.zeros([units, 4 * units], np.float32), bias


def test_unidirectional_sequence_lstm_cell_clip():
    """The fused Keras LSTM carries cell_clip 10 (Keras has none). 14 steps up then 10 down: clipped
    at 10 the cell ends at 0, unclipped (Keras) at 4."""
    model = keras_lstm_model(2, 1, 24, 1, weights=clip_lstm_weights(2))
    assert ti.load(model).main.operators[0].options["cell_clip"] == 10.0
    x = np.concatenate([np.ones([1, 14, 1]), -np.ones([1, 10, 1])], axis=1).astype(np.float32)
    rng = np.random.default_rng(0)
    noisy = (x * rng.uniform(0.9, 1.0, x.shape)).astype(np.float32)
    assert_parity(model, ["UNIDIRECTIONAL_SEQUENCE_LSTM"], inputs=[{"x": x}, {"x": noisy}])


@pytest.mark.parametrize("mode", ["dynamic_range", "float16"])
def test_unidirectional_sequence_lstm_weight_modes(mode):
    model = keras_lstm_model(32, 2, 4, 40, mode=mode)
    if mode == "dynamic_range":
        op = ti.load(model).main.operators[0]  # hybrid, asymmetric input quantization: version 3
        assert op.options["asymmetric_quantize_inputs"] and ti.load(model).main.tensors[op.inputs[2]].dtype == "int8"
    assert_parity(model, ["UNIDIRECTIONAL_SEQUENCE_LSTM"])


@pytest.mark.parametrize("shape", [(6, 2, 5, 3)])
def test_unidirectional_sequence_lstm_integer(shape):
    """A full-integer LSTM runs TFLite's 8x8_16 kernel (int16 gates and cell state, the hidden
    intermediate's scale): emulated in the default fake_quant mode, bit for bit (gemmlowp's
    fixed-point sigmoid/tanh tabulated), from reset state and over a sequence of calls."""
    model = keras_lstm_model(*shape, mode="int8", seed=len(shape) * shape[0])
    op = ti.load(model).main.operators[1]
    assert op.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM" and len(op.intermediates) == 5
    assert ti.load(model).main.tensors[op.inputs[19]].dtype == "int16"
    report = assert_parity(model, ["UNIDIRECTIONAL_SEQUENCE_LSTM"], draws=4)
    for output in report.outputs:  # the same integers as LiteRT's
        assert output.unit == "LSB" and output.max_abs_error < 0.5, report.table()
    ti.invert(model, quantized="dequantize")  # the float recurrence on real values builds too


def test_bidirectional_lstm_integer():
    """LiteRT has no full-integer BIDIRECTIONAL_SEQUENCE_LSTM kernel: an int8 Bidirectional(LSTM)
    becomes two 8x8_16 UNIDIRECTIONAL_SEQUENCE_LSTMs (the backward one on the reversed input), each
    with its own states; the default mode matches LiteRT's integers."""
    model = bidirectional_keras_lstm_model(5, 2, 4, 3, mode="int8")
    histogram = ti.load(model).op_histogram()
    assert histogram["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 2 and "BIDIRECTIONAL_SEQUENCE_LSTM" not in histogram
    report = assert_parity(model, ["UNIDIRECTIONAL_SEQUENCE_LSTM", "REVERSE_V2"], draws=3)
    for output in report.outputs:
        assert output.unit == "LSB" and output.max_abs_error < 0.5, report.table()


@pytest.mark.parametrize("variant,time_major", [
    ("peephole", False), ("cifg_peephole_projection", True), ("layer_norm", True), ("layer_norm_cifg_projection", False)])
@pytest.mark.parametrize("quantization", ["float", "hybrid", "hybrid_asymmetric"])
def test_unidirectional_sequence_lstm_variants(variant, time_major, quantization):
    rng = np.random.default_rng(len(variant))
    batch, time, n_input, n_cell = 2, 4, 5, 6
    projection = "projection" in variant
    n_output = 3 if projection else n_cell
    hybrid = quantization != "float"
    weights = lstm_weights(rng, n_input, n_cell, n_output, cifg="cifg" in variant, peephole="peephole" in variant,
                           projection=projection, projection_bias=projection, hybrid=hybrid)
    layer_norm = [rand(rng, n_cell, scale=1.0) for _ in range(4)] if "layer_norm" in variant else [None] * 4
    if "cifg" in variant:
        layer_norm[0] = None
    shape = [time, batch, n_input] if time_major else [batch, time, n_input]
    out_shape = [time, batch, n_output] if time_major else [batch, time, n_output]
    model = op_model(
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
        options("UnidirectionalSequenceLSTMOptions", fusedActivationFunction=ACT.TANH, cellClip=1.5,
                projClip=0.4 if projection else 0.0, timeMajor=time_major,
                asymmetricQuantizeInputs=quantization == "hybrid_asymmetric"),
        [0, *weights, VAR, VAR, *layer_norm], [out_shape], graph_inputs=[shape],
        version={"float": 1, "hybrid": 2, "hybrid_asymmetric": 3}[quantization],
        state_shapes={18: [batch, n_output], 19: [batch, n_cell]},
    )
    assert_parity(model, ["UNIDIRECTIONAL_SEQUENCE_LSTM"])


def sequence_lstm_with_activation(activation):
    rng = np.random.default_rng(1)
    batch, time, n_input, n_cell = 2, 5, 3, 4
    return op_model(
        "UNIDIRECTIONAL_SEQUENCE_LSTM",
        options("UnidirectionalSequenceLSTMOptions", fusedActivationFunction=getattr(ACT, activation), cellClip=0.0),
        [0, *lstm_weights(rng, n_input, n_cell, n_cell), VAR, VAR], [[batch, time, n_cell]],
        graph_inputs=[[batch, time, n_input]], version=1, state_shapes={18: [batch, n_cell], 19: [batch, n_cell]},
    )


@pytest.mark.parametrize("activation", ["RELU", "RELU6"])
def test_unidirectional_sequence_lstm_activation(activation):
    assert_parity(sequence_lstm_with_activation(activation), ["UNIDIRECTIONAL_SEQUENCE_LSTM"])


def test_lstm_activation_none_is_refused():
    """With activation NONE TFLite's LSTM kernels read stale scratch (h = o * cell gate): refused."""
    with pytest.raises(ti.TfliteInverterError, match="NONE"):
        ti.invert(sequence_lstm_with_activation("NONE"))


# -- LSTM (one step) ------------------------------------------------------------------------------


@pytest.mark.parametrize("variant,quantization", [
    ("plain", "float"), ("cifg_peephole", "float"), ("peephole_projection_clip", "float"), ("layer_norm", "float"),
    ("plain", "hybrid"), ("peephole_projection_clip", "hybrid_asymmetric"), ("layer_norm", "hybrid"),
])
def test_lstm(variant, quantization):
    rng = np.random.default_rng(7)
    batch, n_input, n_cell = 3, 5, 6
    projection = "projection" in variant
    n_output = 4 if projection else n_cell
    hybrid = quantization != "float"
    weights = lstm_weights(rng, n_input, n_cell, n_output, cifg="cifg" in variant, peephole="peephole" in variant,
                           projection=projection, projection_bias=projection, hybrid=hybrid)
    layer_norm = [rand(rng, n_cell, scale=1.0) for _ in range(4)] if variant == "layer_norm" else []
    asymmetric = quantization == "hybrid_asymmetric"
    model = op_model(
        "LSTM",
        options("LSTMOptions", fusedActivationFunction=ACT.TANH, cellClip=0.8 if "clip" in variant else 0.0,
                projClip=0.3 if "clip" in variant else 0.0, asymmetricQuantizeInputs=asymmetric),
        [0, *weights, VAR, VAR, *layer_norm], [[batch, n_output]], graph_inputs=[[batch, n_input]],
        version={"float": 1, "hybrid": 3, "hybrid_asymmetric": 4}[quantization],
        state_shapes={18: [batch, n_output], 19: [batch, n_cell]},
    )
    assert_parity(model, ["LSTM"], float_range=(-2.0, 2.0))


def test_lstm_basic_kernel():
    """kernel_type BASIC: one weight matrix over [input, previous activation], gates i, g, f, o;
    four outputs (activation, state, concatenation, gate pre-activations)."""
    rng = np.random.default_rng(2)
    batch, n_input, depth = 2, 5, 4
    model = op_model(
        "LSTM", options("LSTMOptions", fusedActivationFunction=ACT.TANH, kernelType=schema.LSTMKernelType.BASIC),
        [0, VAR, rand(rng, 4 * depth, n_input + depth), rand(rng, 4 * depth), VAR],
        [[batch, depth], [batch, depth], [batch, n_input + depth], [batch, 4 * depth]],
        graph_inputs=[[batch, n_input]], version=2, state_shapes={1: [batch, depth], 4: [batch, depth]},
    )
    report = assert_parity(model, ["LSTM"], float_range=(-2.0, 2.0))
    assert len(report.outputs) == 4


# -- BIDIRECTIONAL_SEQUENCE_LSTM ------------------------------------------------------------------


@pytest.mark.parametrize("merge_outputs", [False, True])
@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("aux", ["none", "cross_linked", "backward_input"])
def test_bidirectional_sequence_lstm(merge_outputs, time_major, aux):
    rng = np.random.default_rng(11)
    batch, time, n_input, n_cell = 2, 4, 3, 5
    # Batch-major with merged outputs and batch > 1 reads the wrong output state in TFLite's float
    # kernel (lstm_eval.cc offsets the state by the merged row width): one sequence there.
    batch = 1 if merge_outputs and not time_major else batch
    fw = lstm_weights(rng, n_input, n_cell, n_cell, peephole=True)
    bw = lstm_weights(rng, n_input, n_cell, n_cell, cifg=True)
    seq = lambda n: [time, batch, n] if time_major else [batch, time, n]  # noqa: E731
    graph_inputs = [seq(n_input)] if aux == "none" else [seq(n_input), seq(n_input)]
    aux_operands = [None] * 9
    if aux != "none":
        aux_operands[0] = 1
    if aux == "cross_linked":
        aux_operands[1:5] = lstm_aux_weights(rng, n_input, n_cell)
        aux_operands[5:9] = lstm_aux_weights(rng, n_input, n_cell, cifg=True)
    outputs = [seq(2 * n_cell)] if merge_outputs else [seq(n_cell), seq(n_cell)]
    model = op_model(
        "BIDIRECTIONAL_SEQUENCE_LSTM",
        options("BidirectionalSequenceLSTMOptions", fusedActivationFunction=ACT.TANH, cellClip=2.0,
                mergeOutputs=merge_outputs, timeMajor=time_major),
        [0, *fw, *bw, VAR, VAR, VAR, VAR, *aux_operands], outputs, graph_inputs=graph_inputs, version=1,
        state_shapes={35: [batch, n_cell], 36: [batch, n_cell], 37: [batch, n_cell], 38: [batch, n_cell]},
    )
    assert_parity(model, ["BIDIRECTIONAL_SEQUENCE_LSTM"])


@pytest.mark.parametrize("asymmetric", [False, True])
def test_bidirectional_sequence_lstm_hybrid(asymmetric):
    rng = np.random.default_rng(5)
    batch, time, n_input, n_cell, n_output = 2, 3, 6, 5, 4
    fw = lstm_weights(rng, n_input, n_cell, n_output, projection=True, hybrid=True)
    bw = lstm_weights(rng, n_input, n_cell, n_output, projection=True, peephole=True, hybrid=True)
    model = op_model(
        "BIDIRECTIONAL_SEQUENCE_LSTM",
        options("BidirectionalSequenceLSTMOptions", fusedActivationFunction=ACT.TANH, timeMajor=True,
                asymmetricQuantizeInputs=asymmetric),
        [0, *fw, *bw, VAR, VAR, VAR, VAR, *[None] * 9], [[time, batch, n_output], [time, batch, n_output]],
        graph_inputs=[[time, batch, n_input]], version=3 if asymmetric else 2,
        state_shapes={35: [batch, n_output], 36: [batch, n_cell], 37: [batch, n_output], 38: [batch, n_cell]},
    )
    assert_parity(model, ["BIDIRECTIONAL_SEQUENCE_LSTM"])


# -- RNN family -----------------------------------------------------------------------------------


def rnn_weights(rng, n_input, units, hybrid=False):
    return [maybe_int8(rand(rng, units, n_input), hybrid), maybe_int8(rand(rng, units, units), hybrid),
            rand(rng, units, scale=0.3)]


QUANTIZATION_VERSIONS = {"float": 1, "hybrid": 2, "hybrid_asymmetric": 3}


@pytest.mark.parametrize("activation", ["TANH", "RELU", "RELU_N1_TO_1", "NONE"])
@pytest.mark.parametrize("quantization", ["float", "hybrid", "hybrid_asymmetric"])
def test_rnn(activation, quantization):
    rng = np.random.default_rng(3)
    batch, n_input, units = 3, 6, 5
    model = op_model(
        "RNN", options("RNNOptions", fusedActivationFunction=getattr(ACT, activation),
                       asymmetricQuantizeInputs=quantization == "hybrid_asymmetric"),
        [0, *rnn_weights(rng, n_input, units, quantization != "float"), VAR], [[batch, units]],
        graph_inputs=[[batch, n_input]], version=QUANTIZATION_VERSIONS[quantization], state_shapes={4: [batch, units]},
    )
    assert_parity(model, ["RNN"], float_range=(-2.0, 2.0))


@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("activation", ["TANH", "RELU"])
@pytest.mark.parametrize("quantization", ["float", "hybrid", "hybrid_asymmetric"])
def test_unidirectional_sequence_rnn(time_major, activation, quantization):
    rng = np.random.default_rng(4)
    batch, time, n_input, units = 2, 5, 4, 6
    seq = lambda n: [time, batch, n] if time_major else [batch, time, n]  # noqa: E731
    model = op_model(
        "UNIDIRECTIONAL_SEQUENCE_RNN",
        options("SequenceRNNOptions", timeMajor=time_major, fusedActivationFunction=getattr(ACT, activation),
                asymmetricQuantizeInputs=quantization == "hybrid_asymmetric"),
        [0, *rnn_weights(rng, n_input, units, quantization != "float"), VAR], [seq(units)],
        graph_inputs=[seq(n_input)], version=QUANTIZATION_VERSIONS[quantization], state_shapes={4: [batch, units]},
    )
    assert_parity(model, ["UNIDIRECTIONAL_SEQUENCE_RNN"])


@pytest.mark.parametrize("merge_outputs", [False, True])
@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("aux", ["none", "cross_linked", "backward_input"])
def test_bidirectional_sequence_rnn(merge_outputs, time_major, aux):
    rng = np.random.default_rng(6)
    batch, time, n_input, fw_units, bw_units = 2, 4, 3, 5, 4
    seq = lambda n: [time, batch, n] if time_major else [batch, time, n]  # noqa: E731
    graph_inputs = [seq(n_input)] if aux == "none" else [seq(n_input), seq(n_input)]
    aux_operands = [None, None, None]
    if aux != "none":
        aux_operands[0] = 1
    if aux == "cross_linked":
        aux_operands[1:] = [rand(rng, fw_units, n_input), rand(rng, bw_units, n_input)]
    outputs = [seq(fw_units + bw_units)] if merge_outputs else [seq(fw_units), seq(bw_units)]
    model = op_model(
        "BIDIRECTIONAL_SEQUENCE_RNN",
        options("BidirectionalSequenceRNNOptions", timeMajor=time_major, fusedActivationFunction=ACT.TANH,
                mergeOutputs=merge_outputs),
        [0, *rnn_weights(rng, n_input, fw_units), VAR, *rnn_weights(rng, n_input, bw_units), VAR, *aux_operands],
        outputs, graph_inputs=graph_inputs, version=1, state_shapes={4: [batch, fw_units], 8: [batch, bw_units]},
    )
    assert_parity(model, ["BIDIRECTIONAL_SEQUENCE_RNN"])


@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("asymmetric", [False, True])
def test_bidirectional_sequence_rnn_hybrid(time_major, asymmetric):
    """Time-major, the hybrid kernel runs both passes max_time times (states carried over). Merged
    outputs are avoided: with them and symmetric quantization the hybrid kernel dereferences a null
    zero-point array for batch rows after the first (LiteRT crashes)."""
    rng = np.random.default_rng(8)
    batch, time, n_input, units = 2, 4, 6, 5
    seq = lambda n: [time, batch, n] if time_major else [batch, time, n]  # noqa: E731
    model = op_model(
        "BIDIRECTIONAL_SEQUENCE_RNN",
        options("BidirectionalSequenceRNNOptions", fusedActivationFunction=ACT.RELU, mergeOutputs=False,
                timeMajor=time_major, asymmetricQuantizeInputs=asymmetric),
        [0, *rnn_weights(rng, n_input, units, True), VAR, *rnn_weights(rng, n_input, units, True), VAR, *[None] * 3],
        [seq(units), seq(units)], graph_inputs=[seq(n_input)], version=3 if asymmetric else 2,
        state_shapes={4: [batch, units], 8: [batch, units]},
    )
    assert_parity(model, ["BIDIRECTIONAL_SEQUENCE_RNN"])


# -- SVDF -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("activation", ["NONE", "RELU"])
@pytest.mark.parametrize("quantization", ["float", "hybrid", "hybrid_asymmetric"])
def test_svdf(rank, activation, quantization):
    rng = np.random.default_rng(9)
    batch, n_input, units, memory = 2, 7, 4, 3
    filters = units * rank
    hybrid = quantization != "float"
    model = op_model(
        "SVDF", options("SVDFOptions", rank=rank, fusedActivationFunction=getattr(ACT, activation),
                        asymmetricQuantizeInputs=quantization == "hybrid_asymmetric"),
        [0, maybe_int8(rand(rng, filters, n_input), hybrid), maybe_int8(rand(rng, filters, memory), hybrid),
         rand(rng, units, scale=0.3), VAR],
        [[batch, units]], graph_inputs=[[batch, n_input]],
        version={"float": 1, "hybrid": 2, "hybrid_asymmetric": 4}[quantization],
        state_shapes={4: [batch, memory * filters]},
    )
    assert_parity(model, ["SVDF"], float_range=(-2.0, 2.0))


# -- full-integer UNIDIRECTIONAL_SEQUENCE_LSTM written with the schema ------------------------------


def integer_lstm_model(*, cifg=False, peephole=False, projection=False, layer_norm=False, batch=2, time=4, n_input=5,
                       n_cell=8, seed=0, opcode="UNIDIRECTIONAL_SEQUENCE_LSTM") -> bytes:
    """An 8x8_16 LSTM as the converter lays it out (int8 input, weights and output state, int32
    biases, int16 cell state at 2**-11, peepholes int16, 5 intermediates of which the last, the
    hidden state's scale, is quantized), with variants the converter does not make from Keras.
    ``opcode="LSTM"``: the one-step LSTM op on [batch, n_input]. With ``layer_norm`` the gates'
    pre-activations have int16 intermediates of their own and int16 layer-norm coefficients."""
    from flatbuffer_writer import pack

    rng = np.random.default_rng(seed)
    n_output = 4 if projection else n_cell
    T = schema.TensorType
    model = schema.ModelT()
    model.version, model.buffers = 3, [schema.BufferT()]
    sg = schema.SubGraphT()
    sg.tensors = []

    def add(name, shape, dtype, scale=None, zero_point=0, data=None, variable=False):
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type, tensor.isVariable = name, list(shape), dtype, variable
        if scale is not None:
            tensor.quantization = schema.QuantizationParametersT()
            tensor.quantization.scale, tensor.quantization.zeroPoint = [scale], [zero_point]
        buffer = schema.BufferT()
        if data is not None:
            buffer.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
        model.buffers.append(buffer)
        tensor.buffer = len(model.buffers) - 1
        sg.tensors.append(tensor)
        return len(sg.tensors) - 1

    s_x, zp_x, s_h, zp_h, s_hidden, zp_hidden = 1 / 40, 4, 1 / 128, -3, 1 / 120, 2

    def weights(name, rows, cols):
        scale = float(rng.uniform(0.004, 0.01))
        return add(name, [rows, cols], T.INT8, scale, 0, rng.integers(-127, 128, [rows, cols]).astype(np.int8)), scale

    sequence = opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM"
    x = add("input", [batch, time, n_input] if sequence else [batch, n_input], T.INT8, s_x, zp_x)
    operands = [x]
    input_scales = []
    for k in range(4):
        if cifg and k == 0:
            operands.append(-1)
            input_scales.append(None)
            continue
        index, scale = weights(f"input_to_gate_{k}", n_cell, n_input)
        operands.append(index)
        input_scales.append(scale)
    for k in range(4):
        operands.append(-1 if cifg and k == 0 else weights(f"recurrent_to_gate_{k}", n_cell, n_output)[0])
    for k in range(3):
        use = peephole and not (cifg and k == 0)
        operands.append(add(f"cell_to_gate_{k}", [n_cell], T.INT16, 2.0 ** -14, 0,
                            rng.integers(-8000, 8000, [n_cell]).astype(np.int16)) if use else -1)
    for k in range(4):
        if cifg and k == 0:
            operands.append(-1)
            continue
        real = rng.normal(0, 0.5, n_cell)
        scale = 2.0 ** -23 if layer_norm else s_x * input_scales[k]  # with layer norm: added after it
        operands.append(add(f"gate_bias_{k}", [n_cell], T.INT32, scale, 0, np.round(real / scale).astype(np.int32)))
    if projection:
        index, scale = weights("projection", n_output, n_cell)
        operands.append(index)
        operands.append(add("projection_bias", [n_output], T.INT32, scale * s_hidden, 0,
                            rng.integers(-2000, 2000, [n_output]).astype(np.int32)))
    else:
        operands += [-1, -1]
    operands.append(add("output_state", [batch, n_output], T.INT8, s_h, zp_h, variable=True))
    operands.append(add("cell_state", [batch, n_cell], T.INT16, 2.0 ** -11, 0, variable=True))
    if layer_norm:
        operands += [-1 if cifg and k == 0 else
                     add(f"layer_norm_{k}", [n_cell], T.INT16, 2.0 ** -13, 0,
                         np.round(rng.normal(8192, 2000, n_cell)).astype(np.int16)) for k in range(4)]
        intermediates = [add(f"intermediate_{k}", [], T.INT16, 2.0 ** -11 * (1 + k / 4), 0) for k in range(4)]
    else:
        operands += [-1, -1, -1, -1]
        intermediates = [add(f"intermediate_{k}", [], T.FLOAT32) for k in range(4)]
    intermediates.append(add("effective_hidden_scale_intermediate", [], T.INT8, s_hidden, zp_hidden))
    y = add("output", [batch, time, n_output] if sequence else [batch, n_output], T.INT8, s_h, zp_h)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs, op.intermediates = 0, operands, [y], intermediates
    kind = "UnidirectionalSequenceLSTMOptions" if sequence else "LSTMOptions"
    op.builtinOptionsType = getattr(schema.BuiltinOptions, kind)
    op.builtinOptions = options(kind, fusedActivationFunction=ACT.TANH, cellClip=3.0,
                                projClip=0.6 if projection else 0.0, **({"timeMajor": False} if sequence else {}))
    sg.operators, sg.inputs, sg.outputs, sg.name = [op], [x], [y], "main"
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = getattr(schema.BuiltinOperator, opcode)
    code.version = 1
    model.operatorCodes, model.subgraphs, model.description = [code], [sg], "integer LSTM"
    return pack(model)


@pytest.mark.parametrize("opcode,variant", [("UNIDIRECTIONAL_SEQUENCE_LSTM", "peephole"),
                                            ("UNIDIRECTIONAL_SEQUENCE_LSTM", "layer_norm_cifg_peephole"),
                                            ("UNIDIRECTIONAL_SEQUENCE_LSTM", "layer_norm_projection"),
                                            ("LSTM", "projection")])
def test_lstm_integer_variants(opcode, variant):
    """The 8x8_16 kernel with CIFG, peepholes, a projection or layer norm, for the sequence op and
    the one-step LSTM (whose state carries over between calls)."""
    model = integer_lstm_model(cifg="cifg" in variant, peephole="peephole" in variant, projection="projection" in variant,
                               layer_norm="layer_norm" in variant, seed=len(variant), opcode=opcode)
    report = assert_parity(model, [opcode], draws=4)
    for output in report.outputs:  # the same integers as LiteRT's
        assert output.unit == "LSB" and output.max_abs_error < 0.5, report.table()
