"""8-bit integer kernels' output rescaling (ops/integer_rescale.py) and quantized LOG, on models of
the shapes of quantized classifiers, made by the TFLite converter: a MobileNetV2-like image net
(depthwise + pointwise, residual ADD, RELU6, global average pool, FC, SOFTMAX) and a YAMNet-like
audio net (a DFT as strided Conv1D, power, mel FC, LOG, depthwise-separable convs, MEAN, LOGISTIC),
full-integer with int8 I/O and per-channel weights, and with uint8 I/O and per-tensor weights."""

from __future__ import annotations

import contextlib
import random
import warnings

import numpy as np
import pytest
import tensorflow as tf

import tflite_inverter as ti

L = tf.keras.layers


def _randomize_batch_norms(model, rng):
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape),
                               rng.normal(0, 0.2, mean.shape), rng.uniform(0.5, 2, variance.shape)])


@contextlib.contextmanager
def keras_seed(seed: int):
    """Keras's initialisers seeded for one model, the process's global seeds given back afterwards
    (TF's global seed decides the seed the converter writes into other tests' random ops)."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    tf.keras.utils.set_random_seed(seed)
    try:
        yield
    finally:
        tf.random.set_seed(None)
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def mobilenet_like():
    with keras_seed(0):
        return _mobilenet_like()


def _mobilenet_like():
    x_in = tf.keras.Input([16, 16, 3], batch_size=1)
    x = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(8, 3, 2, "same", use_bias=False)(x_in)))

    def block(x, expand, out, stride):
        y = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(x.shape[-1] * expand, 1, use_bias=False)(x)))
        y = L.ReLU(6.0)(L.BatchNormalization()(L.DepthwiseConv2D(3, stride, "same", use_bias=False)(y)))
        y = L.BatchNormalization()(L.Conv2D(out, 1, use_bias=False)(y))
        return L.Add()([x, y]) if stride == 1 and x.shape[-1] == out else y

    x = block(block(block(x, 1, 8, 1), 4, 16, 2), 4, 16, 1)
    x = L.GlobalAveragePooling2D()(L.ReLU(6.0)(L.Conv2D(32, 1)(x)))
    model = tf.keras.Model(x_in, L.Softmax()(L.Dense(100)(x)))
    _randomize_batch_norms(model, np.random.default_rng(1))
    return model, [1, 16, 16, 3]


def yamnet_like():
    with keras_seed(0):
        return _yamnet_like()


def _yamnet_like():
    rng = np.random.default_rng(2)
    window, hop, bins, mels, samples = 200, 80, 32, 16, 2000
    n = np.arange(window)
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * n / window)
    k = np.arange(1, bins + 1)[:, None]
    x_in = tf.keras.Input([samples], batch_size=1)
    x = L.Reshape([samples, 1])(x_in)
    real, imag = L.Conv1D(bins, window, hop, use_bias=False), L.Conv1D(bins, window, hop, use_bias=False)
    r, i = real(x), imag(x)
    power = L.Add()([L.Multiply()([r, r]), L.Multiply()([i, i])])
    mel = L.Lambda(lambda t: tf.math.log(t + 0.01))(L.Dense(mels, use_bias=False)(power))
    x = L.Reshape([mel.shape[1], mels, 1])(mel)
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3, 2, "same", use_bias=False)(x)))
    for channels, stride in [(16, 1), (32, 2)]:
        x = L.ReLU()(L.BatchNormalization()(L.DepthwiseConv2D(3, stride, "same", use_bias=False)(x)))
        x = L.ReLU()(L.BatchNormalization()(L.Conv2D(channels, 1, use_bias=False)(x)))
    x = L.Lambda(lambda t: tf.reduce_mean(t, axis=[1, 2]))(x)
    model = tf.keras.Model(x_in, L.Dense(12, activation="sigmoid")(x))
    real.set_weights([(np.cos(np.pi * k * n / (4 * bins)) * hann).T[:, None, :].astype(np.float32)])
    imag.set_weights([(np.sin(np.pi * k * n / (4 * bins)) * hann).T[:, None, :].astype(np.float32)])
    _randomize_batch_norms(model, rng)
    return model, [1, samples]


def convert(model, shape, mode):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: ([rng.uniform(-1, 1, shape).astype(np.float32)] for _ in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8 if mode == "int8" else tf.uint8
    if mode == "uint8_per_tensor":
        converter._experimental_disable_per_channel = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.convert()


@pytest.fixture(scope="module")
def models():
    made = {}
    for name, make in (("mobilenet", mobilenet_like), ("yamnet", yamnet_like)):
        model, shape = make()
        for mode in ("int8", "uint8_per_tensor"):
            made[name, mode] = convert(model, shape, mode)
    return made


def _reference_outputs(data: bytes, inputs: list[np.ndarray]) -> list[dict[int, np.ndarray]]:
    """Every tensor of LiteRT's reference kernels (the kernels' C++ arithmetic, no delegate)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    results = []
    for x in inputs:
        interpreter = Interpreter(model_content=data, experimental_preserve_all_tensors=True,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        results.append({d["index"]: interpreter.get_tensor(d["index"]) for d in interpreter.get_tensor_details()
                        if d["index"] not in {t for t in range(0)}})
    return results


def _draws(model: ti.Model, count: int) -> list[np.ndarray]:
    tensor = model.main.tensors[model.main.inputs[0]]
    low, high = (-128, 127) if tensor.dtype == "int8" else (0, 255)
    rng = np.random.default_rng(3)
    return [rng.integers(low, high + 1, tensor.shape).astype(tensor.dtype) for _ in range(count)]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["int8", "uint8_per_tensor"])
@pytest.mark.parametrize("name", ["mobilenet", "yamnet"])
def test_classifier_matches_the_reference_kernels_operator_by_operator(models, name, mode):
    """Each operator's output, computed by the inverted operator (``integer_rescale=True``) from
    LiteRT's own input to it, is LiteRT's reference-kernel output exactly (CONV_2D, DEPTHWISE_CONV_2D
    and MUL by the kernels' double-rounding rescale, FULLY_CONNECTED by its single rounding; LOG by
    its lookup table) or within one step (ADD, MEAN,
    AVERAGE_POOL_2D, SOFTMAX, LOGISTIC keep their float emulation). The default inversion (one
    FakeQuant of the float result) is within one step of it, with more elements off."""
    data = models[name, mode]
    model = ti.load(data)
    sg = model.main
    (draw,) = _draws(model, 1)
    reference = _reference_outputs(data, [draw])[0]
    exact_ops = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MUL", "LOG"}
    checked = set()
    off_by_default = 0  # elements one step off the reference kernels without integer_rescale
    for op in sg.operators:
        if op.opcode in ("QUANTIZE", "DEQUANTIZE", "RESHAPE"):
            continue
        runtime = [t for t in op.inputs if t is not None and t >= 0 and sg.tensors[t].data is None]
        if len(set(runtime)) != 1:  # a cut with one input keeps the feed unambiguous
            continue
        cuts = dict(inputs=[sg.tensors[runtime[0]].name], outputs=[sg.tensors[op.outputs[0]].name])
        differences = []
        for rescale in (True, False):
            cut = ti.invert(data, integer_rescale=rescale, **cuts)
            (ours,) = cut.run({cut.inputs()[0].name: reference[runtime[0]]}).values()
            differences.append(np.abs(np.asarray(ours).astype(np.int64) - reference[op.outputs[0]].astype(np.int64)))
        exact, default = differences
        limit = 0 if op.opcode in exact_ops else 1
        assert exact.max() <= limit, (op.index, op.opcode, exact.max(), float((exact > 0).mean()))
        assert default.max() <= 1, (op.index, op.opcode, default.max())  # one FakeQuant: within one step
        assert (exact > 0).sum() <= (default > 0).sum(), (op.index, op.opcode, (exact > 0).sum(), (default > 0).sum())
        checked.add(op.opcode)
        off_by_default += int((default > 0).sum())
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= checked
    assert off_by_default > 0  # what the option changes: the default graph rounds once
    if name == "yamnet":
        assert {"MUL", "LOG"} <= checked


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["int8", "uint8_per_tensor"])
@pytest.mark.parametrize("name", ["mobilenet", "yamnet"])
def test_classifier_verifies_within_one_step(models, name, mode):
    """Against LiteRT's default kernels (XNNPACK, whose requantization rounds once in float) the
    output is within one step on >= 99 % of elements, by default and with ``integer_rescale``; with
    it, no intermediate tensor diverges from the builtin kernels either (by default a step of
    difference before LOG's steep part grows past the per-tensor tolerance in the YAMNet-like net)."""
    data = models[name, mode]
    report = ti.verify(data, ti.invert(data), draws=2)
    assert report.passed, report.table()
    assert report.outputs[0].within_one_step >= 0.99, report.table()
    exact = ti.verify(data, ti.invert(data, integer_rescale=True), draws=2, per_tensor=True)
    assert exact.passed and exact.outputs[0].within_one_step >= 0.99, exact.table()
    assert exact.first_divergence is None, exact.table()  # intermediate tensors too, against the builtin kernels


def test_quantized_log_of_zero_is_the_lowest_output_value():
    """TFLite's int8 LOG maps inputs <= 0 to the output grid's lowest value (its lookup table); the
    float log would give -inf there."""
    def f(x):
        return tf.math.log(tf.nn.relu(x))

    module = tf.Module()
    module.f = tf.function(f, input_signature=[tf.TensorSpec([1, 64], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.f.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    converter.representative_dataset = lambda: ([rng.uniform(0.05, 4, [1, 64]).astype(np.float32)] for _ in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = converter.convert()
    model = ti.load(data)
    assert "LOG" in model.op_histogram()
    x = np.linspace(-128, 127, 64).astype(np.int8).reshape(1, 64)  # zero point and below included
    reference = _reference_outputs(data, [x])[0][model.main.outputs[0]]
    inverted = ti.invert(data)
    (ours,) = inverted.run({inverted.inputs()[0].name: x}).values()
    output = model.main.tensors[model.main.outputs[0]]
    assert int(reference.min()) == -128  # the table's value for inputs <= 0 ...
    np.testing.assert_array_equal(np.asarray(ours), reference)  # ... and everywhere else the same
    assert output.quantization is not None
