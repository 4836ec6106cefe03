"""A decoder-only LLM with two signatures, prefill and decode, sharing weights (issue 10, part 4).

The model is the litert-torch form made with TensorFlow: token embedding by GATHER, rotary
embedding with COS/SIN, causal attention (BATCH_MATMUL, SOFTMAX), the KV cache passed in and
returned, updated with DYNAMIC_UPDATE_SLICE (``tf2xla``'s ``dynamic_update_slice``), and
FULLY_CONNECTED projections. ``TFLiteConverter.from_saved_model`` with both signature keys writes
one subgraph per signature; both subgraphs name the same buffers for the weights.

Three files: float, the converter's dynamic-range (per-channel int8 FULLY_CONNECTED weights, hybrid
kernels) and ai-edge-quantizer's weight-only int8 (int8 weights behind DEQUANTIZE).
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.compiler.tf2xla.python import xla

import tflite_inverter as ti
from flatbuffer_writer import edit
from generative import greedy, inverted_specs, run_litert

VOCAB, DIM, HEADS, LAYERS, CACHE, PREFILL = 64, 32, 2, 2, 16, 4
HEAD_DIM = DIM // HEADS
PROMPT, STEPS = [5, 17, 3], 10
DEFAULT_RTOL = 1e-4


class TinyDecoder(tf.Module):
    def __init__(self):
        rng = np.random.default_rng(0)

        def weight(*shape, scale=0.25):
            return tf.Variable((rng.normal(size=shape) * scale).astype(np.float32))

        self.embedding = weight(VOCAB, DIM, scale=1.0)
        self.wq, self.wk, self.wv, self.wo = ([weight(DIM, DIM) for _ in range(LAYERS)] for _ in range(4))
        self.head = weight(DIM, VOCAB)

    @staticmethod
    def rope(x, positions):  # x [1, S, HEADS, HEAD_DIM]
        inverse = 1.0 / (100.0 ** (np.arange(0, HEAD_DIM, 2, dtype=np.float32) / HEAD_DIM))
        angle = tf.cast(positions, tf.float32)[:, None] * inverse[None, :]
        cos, sin = tf.cos(angle)[None, :, None, :], tf.sin(angle)[None, :, None, :]
        x1, x2 = x[..., :HEAD_DIM // 2], x[..., HEAD_DIM // 2:]
        return tf.concat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1)

    def step(self, tokens, positions, kv_k, kv_v):
        length = tokens.shape[1]
        x = tf.gather(self.embedding, tokens)
        keys, values = [], []
        zero = tf.constant(0, tf.int32)
        start = tf.stack([zero, positions[0], zero, zero])
        causal = tf.cast(tf.range(CACHE)[None, :] <= positions[:, None], tf.float32)  # [S, CACHE]
        for layer, (cache_k, cache_v) in enumerate(zip(tf.unstack(kv_k), tf.unstack(kv_v))):
            flat = tf.reshape(x, [length, DIM])

            def project(w):
                return tf.reshape(tf.matmul(flat, w[layer]), [1, length, HEADS, HEAD_DIM])

            q, k, v = self.rope(project(self.wq), positions), self.rope(project(self.wk), positions), project(self.wv)
            cache_k = xla.dynamic_update_slice(cache_k, k, start)
            cache_v = xla.dynamic_update_slice(cache_v, v, start)
            keys.append(cache_k)
            values.append(cache_v)
            scores = tf.einsum("bshd,bthd->bhst", q, cache_k) / np.sqrt(HEAD_DIM) + (1.0 - causal) * -1e9
            attended = tf.einsum("bhst,bthd->bshd", tf.nn.softmax(scores, -1), cache_v)
            x = x + tf.reshape(tf.matmul(tf.reshape(attended, [length, DIM]), self.wo[layer]), [1, length, DIM])
        logits = tf.matmul(tf.reshape(x, [length, DIM]), self.head)
        return {"logits": tf.reshape(logits, [1, length, VOCAB]), "kv_k": tf.stack(keys), "kv_v": tf.stack(values)}

    @staticmethod
    def specs(length):
        cache = [LAYERS, 1, CACHE, HEADS, HEAD_DIM]
        return [tf.TensorSpec([1, length], tf.int32, name="tokens"), tf.TensorSpec([length], tf.int32, name="input_pos"),
                tf.TensorSpec(cache, tf.float32, name="kv_k"), tf.TensorSpec(cache, tf.float32, name="kv_v")]

    @tf.function(input_signature=specs(PREFILL))
    def prefill(self, tokens, input_pos, kv_k, kv_v):
        return self.step(tokens, input_pos, kv_k, kv_v)

    @tf.function(input_signature=specs(1))
    def decode(self, tokens, input_pos, kv_k, kv_v):
        return self.step(tokens, input_pos, kv_k, kv_v)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    """Paths of the float, dynamic-range and weight-only int8 files."""
    from ai_edge_quantizer import quantizer, recipe

    work = tmp_path_factory.mktemp("llm")
    module = TinyDecoder()
    tf.saved_model.save(module, str(work / "sm"), signatures={"prefill": module.prefill, "decode": module.decode})
    paths = {}
    for name, optimizations in (("float", []), ("dynamic_range", [tf.lite.Optimize.DEFAULT])):
        converter = tf.lite.TFLiteConverter.from_saved_model(str(work / "sm"), signature_keys=["prefill", "decode"])
        converter.optimizations = optimizations
        paths[name] = work / f"{name}.tflite"
        paths[name].write_bytes(converter.convert())
    float_bytes = paths["float"].read_bytes()
    weight_only = quantizer.Quantizer(float_bytes, recipe.weight_only_wi8_afp32()).quantize(None, enable_progress_report=False)
    paths["weight_only_int8"] = work / "weight_only_int8.tflite"
    paths["weight_only_int8"].write_bytes(bytes(weight_only.quantized_model))
    return {name: str(path) for name, path in paths.items()}


@pytest.fixture(scope="module")
def inversions(models) -> dict[tuple[str, str], ti.InvertedModel]:
    cache = {}

    def get(name: str, quantized: str) -> ti.InvertedModel:
        if (name, quantized) not in cache:
            cache[name, quantized] = ti.invert(models[name], quantized=quantized)
        return cache[name, quantized]

    return get


@pytest.fixture(scope="module")
def litert_runs(models) -> dict[str, tuple]:
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = run_litert(models[name], PROMPT, STEPS)
        return cache[name]

    return get


def _weight_constants(model: ti.Model):
    """(subgraph, tensor) of every constant the inversion makes a variable: float or quantized
    int8 data with more than one element (int32 shapes and indices stay constants)."""
    for sg in model.subgraphs:
        for t in sg.tensors:
            if t.data is not None and t.data.size > 1 and (t.dtype == "float32" or (t.dtype == "int8" and t.quantization)):
                yield sg.index, t


def test_the_converter_writes_one_subgraph_per_signature_over_shared_buffers(models):
    expected_ops = {"GATHER", "COS", "SIN", "BATCH_MATMUL", "SOFTMAX", "DYNAMIC_UPDATE_SLICE", "FULLY_CONNECTED"}
    for name, path in models.items():
        model = ti.load(path)
        assert {s.key for s in model.signatures} == {"prefill", "decode"}
        assert len(model.subgraphs) == 2 and {s.subgraph_index for s in model.signatures} == {0, 1}
        for sg in model.subgraphs:
            present = {op.opcode for op in sg.operators}
            assert expected_ops <= present, (name, sg.name, sorted(present))
        buffers = [{t.buffer for s, t in _weight_constants(model) if s == index} for index in (0, 1)]
        assert buffers[0] and buffers[0] == buffers[1], name  # each weight's bytes are in the file once
    encodings = ti.load(models["dynamic_range"]).weight_encodings()
    assert encodings["int8 per-channel (axis 0), symmetric"] == 2 * (4 * LAYERS + 1)  # every FULLY_CONNECTED
    assert "DEQUANTIZE" in ti.load(models["weight_only_int8"]).op_histogram()


@pytest.mark.parametrize("name,quantized", [("float", "fake_quant"), ("dynamic_range", "fake_quant"),
                                            ("weight_only_int8", "dequantize")])
def test_weights_are_variables_once(models, inversions, name, quantized):
    model = ti.load(models[name])
    inverted = inversions(name, quantized)
    unique = {t.buffer: t for _, t in _weight_constants(model)}
    per_subgraph = [sum(t.data.size * 4 for s, t in _weight_constants(model) if s == index) for index in (0, 1)]
    expected = sum(t.data.size * 4 for t in unique.values())  # float32 variables
    assert per_subgraph[0] == per_subgraph[1] == expected  # each signature uses every weight
    variables = list(inverted.module.weights.values())
    assert len(variables) == len(unique)
    assert sum(v.numpy().nbytes for v in variables) == expected


def test_identical_weights_in_separate_buffers_become_one_variable(models):
    """A writer may store each signature's copy of a weight in its own buffer: one variable still."""
    def split_buffers(model):
        decode = next(sg for sg in model.subgraphs if sg.name.decode() == "decode")
        for tensor in decode.tensors:
            data = model.buffers[tensor.buffer].data
            if data is not None and len(data):
                model.buffers.append(type(model.buffers[tensor.buffer])())
                model.buffers[-1].data = bytes(bytearray(data))
                tensor.buffer = len(model.buffers) - 1

    data = edit(open(models["float"], "rb").read(), split_buffers)
    model = ti.load(data)
    buffers = [{t.buffer for s, t in _weight_constants(model) if s == index} for index in (0, 1)]
    assert buffers[0] and not buffers[0] & buffers[1]
    inverted = ti.invert(data)
    assert len(inverted.module.weights) == len(buffers[0])
    report = ti.verify(data, inverted, draws=1)
    assert report.passed, report.table()


@pytest.mark.parametrize("name,quantized", [("float", "fake_quant"), ("dynamic_range", "fake_quant"),
                                            ("weight_only_int8", "fake_quant"), ("weight_only_int8", "dequantize")])
def test_verify_runs_every_signature(models, inversions, name, quantized):
    report = ti.verify(models[name], inversions(name, quantized), draws=2)
    assert list(report.by_signature) == ["decode", "prefill"]
    assert report.passed, report.table()
    assert {o.name for o in report.outputs} == {f"{s}: {o}" for s in ("decode", "prefill") for o in ("logits", "kv_k", "kv_v")}
    assert "signatures 'decode', 'prefill'" in report.table()


def test_verify_with_dequantized_hybrid_weights_fails_on_every_signature(models, inversions):
    """dequantize mode computes the hybrid FULLY_CONNECTEDs in float: beyond tolerance, but close."""
    report = ti.verify(models["dynamic_range"], inversions("dynamic_range", "dequantize"), draws=2)
    assert not report.by_signature["decode"].passed and not report.by_signature["prefill"].passed
    assert all(o.max_abs_error < 0.1 * o.magnitude for o in report.outputs), report.table()


def _assert_steps_match(logits, reference, floors):
    for step, (got, ref, floor) in enumerate(zip(logits, reference, floors, strict=True)):
        tolerance = max(DEFAULT_RTOL * max(1.0, float(np.abs(ref).max())), 2 * floor)
        error = float(np.abs(got - ref).max())
        assert error <= tolerance, f"step {step}: logits off by {error:.3g} (tolerance {tolerance:.3g})"


@pytest.mark.parametrize("name,quantized", [("float", "fake_quant"), ("dynamic_range", "fake_quant"),
                                            ("weight_only_int8", "fake_quant"), ("weight_only_int8", "dequantize")])
def test_greedy_decoding_matches_litert_token_for_token(inversions, litert_runs, name, quantized):
    tokens, reference, floors = litert_runs(name)
    inverted = inversions(name, quantized)
    got_tokens, logits = greedy(lambda key, feeds: inverted.run(feeds, signature=key), inverted_specs(inverted),
                                PROMPT, STEPS)
    assert len(got_tokens) == STEPS + 1 and len(set(tokens)) > 3  # a sequence, not one token repeated
    assert got_tokens == tokens
    _assert_steps_match(logits, reference, floors)


def test_greedy_decoding_with_dequantized_hybrid_weights_stays_close(inversions, litert_runs):
    """Float math instead of the hybrid kernels' on-the-fly input quantization: fed LiteRT's tokens
    (teacher forcing), the logits stay within 5% of the magnitude at every step."""
    tokens, reference, _ = litert_runs("dynamic_range")
    inverted = inversions("dynamic_range", "dequantize")
    _, logits = greedy(lambda key, feeds: inverted.run(feeds, signature=key), inverted_specs(inverted), PROMPT, STEPS,
                       forced=tokens[:-1])
    for step, (got, ref) in enumerate(zip(logits, reference, strict=True)):
        assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max(), step


def test_saved_model_decodes_like_litert(models, inversions, litert_runs, tmp_path):
    """The SavedModel's two signatures over one set of variables, the cache threaded between calls."""
    tokens, reference, floors = litert_runs("weight_only_int8")
    inverted = inversions("weight_only_int8", "dequantize")
    path = inverted.save_saved_model(tmp_path / "sm")
    expected = sum(v.numpy().nbytes for v in inverted.module.weights.values())
    stored = sum(f.stat().st_size for f in (path / "variables").glob("variables.data-*"))
    assert expected <= stored < 1.1 * expected + 4096, (stored, expected)  # the weights once, not per signature
    loaded = tf.saved_model.load(str(path))
    assert set(loaded.signatures) == {"prefill", "decode"}

    def call(key, feeds):
        return {k: v.numpy() for k, v in loaded.signatures[key](**{n: tf.constant(v) for n, v in feeds.items()}).items()}

    got_tokens, logits = greedy(call, inverted_specs(inverted), PROMPT, STEPS)
    assert got_tokens == tokens
    _assert_steps_match(logits, reference, floors)
