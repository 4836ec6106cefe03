"""Parity tests for tflite_inverter/ops/stablehlo_regions.py: StableHLO ops whose regions TFLite
stores as subgraphs (COMPOSITE, WHILE, CASE, REDUCE, REDUCE_WINDOW, SORT).

Models are written from scratch (``graph_writer``) with their computation subgraphs; LiteRT is the
reference for COMPOSITE, CASE and REDUCE_WINDOW, a numpy transcription of the spec for the others
(LiteRT 2.3 has no kernel for them).
"""

from __future__ import annotations

import json

from flatbuffers import flexbuffers

import numpy as np
import pytest
from tensorflow.lite.python import schema_py_generated as schema

import tflite_inverter as ti
from graph_writer import ModelWriter
from stablehlo_parity import (CaseTable, assert_litert, check_case, compare_option, computation, integers, options,
                              uniform)

CASES = CaseTable()
numpy_case = CASES.numpy_case


def _reduce_model(shape, dimensions, body, init, out_shape):
    m = ModelWriter()
    g = m.main
    x = g.input(shape)
    option = options("StablehloReduceOptions", dimensions=dimensions, bodySubgraphIndex=computation(m, body))
    g.outputs(*g.op("STABLEHLO_REDUCE", [x, g.const(np.float32(init))], [(out_shape, "float32")], option))
    return m.pack()


@numpy_case
def reduce_sum():
    x = uniform([2, 3, 4])
    return _reduce_model([2, 3, 4], [0, 2], "STABLEHLO_ADD", 0.5, [3]), "STABLEHLO_REDUCE", [x], \
        [x.sum(axis=(0, 2)) + np.float32(0.5)]


@numpy_case
def reduce_max():
    x = uniform([2, 3, 4])
    return _reduce_model([2, 3, 4], [1], "STABLEHLO_MAXIMUM", 0.25, [2, 4]), "STABLEHLO_REDUCE", [x], \
        [np.maximum(x.max(axis=1), np.float32(0.25))]


def _reduce_window_model(shape, window, strides, base, dilations, padding, body, init):
    rank = len(shape)
    padded = [(n - 1) * b + 1 + lo + hi for n, b, (lo, hi) in zip(shape, base, padding)]
    out = [(p - (w - 1) * d - 1) // s + 1 for p, w, d, s in zip(padded, window, dilations, strides)]
    m = ModelWriter()
    g = m.main
    x = g.input(shape)
    option = options("StablehloReduceWindowOptions", windowDimensions=window, windowStrides=strides,
                     baseDilations=base, windowDilations=dilations, padding=[v for pair in padding for v in pair],
                     bodySubgraphIndex=computation(m, body))
    assert rank == len(window)
    g.outputs(*g.op("STABLEHLO_REDUCE_WINDOW", [x, g.const(np.float32(init))], [(out, "float32")], option))
    return m.pack()


@pytest.mark.parametrize("body,init", [("STABLEHLO_ADD", 0.0), ("STABLEHLO_MAXIMUM", -np.inf)])
def test_reduce_window_litert(body, init):
    """A pooling window with strides, padding, base and window dilation."""
    model = _reduce_window_model([1, 5, 6, 2], [1, 3, 2, 1], [1, 2, 1, 1], [1, 1, 2, 1], [1, 1, 2, 1],
                                 [(0, 0), (1, 1), (0, 1), (0, 0)], body, init)
    assert_litert(model, "STABLEHLO_REDUCE_WINDOW")


@pytest.mark.parametrize("body,init,pool", [("STABLEHLO_ADD", 0.0, "AvgPool"),
                                            ("STABLEHLO_MAXIMUM", -np.inf, "MaxPool")])
def test_reduce_window_pooling_litert(body, init, pool):
    """An NCHW pooling window (what litert-torch writes for max_pool2d / avg_pool2d sums) becomes a
    TensorFlow pool."""
    model = _reduce_window_model([2, 3, 6, 5], [1, 1, 3, 2], [1, 1, 2, 2], [1, 1, 1, 1], [1, 1, 1, 1],
                                 [(0, 0), (0, 0), (1, 1), (0, 1)], body, init)
    assert_litert(model, "STABLEHLO_REDUCE_WINDOW")
    inverted = ti.invert(model)
    graph = inverted.functions[inverted.default_signature].get_concrete_function().graph
    assert any(op.type == pool for op in graph.get_operations()), [op.type for op in graph.get_operations()]


def test_composite_litert_and_visible(tmp_path):
    """The decomposition runs; the composite's name, version and attributes are the experimental_implements
    of the tf.function around it, in the SavedModel too."""
    m = ModelWriter()
    g = m.main
    x, y = g.input([2, 3]), g.input([2, 3])
    body = m.graph("rms_norm_decomposition")
    bx, by = body.input([2, 3]), body.input([2, 3])
    (square,) = body.op("MUL", [bx, bx], [([2, 3], "float32")], options("MulOptions"))
    body.outputs(*body.op("ADD", [square, by], [([2, 3], "float32")], options("AddOptions")))
    builder = flexbuffers.Builder()
    with builder.Map():
        builder.Float("epsilon", 1e-6)
        builder.Int("axis", -1)
        with builder.Map("nested"):  # no attribute can hold a map: kept as its JSON text
            builder.Int("depth", 2)
    option = options("StableHLOCompositeOptions", name=b"odml.rms_norm", decompositionSubgraphIndex=1,
                     compositeAttributes=list(builder.Finish()), compositeAttributesFormat=1, version=2)
    g.outputs(*g.op("STABLEHLO_COMPOSITE", [x, y], [([2, 3], "float32")], option))
    model = m.pack()
    assert_litert(model, "STABLEHLO_COMPOSITE")
    inverted = ti.invert(model)
    graph = inverted.functions[inverted.default_signature].get_concrete_function().graph.as_graph_def()
    implements = [f.attr["_implements"].func for f in graph.library.function if "_implements" in f.attr]
    assert len(implements) == 1, implements
    assert implements[0].name == "odml.rms_norm"
    attributes = implements[0].attr
    assert attributes["composite_version"].i == 2 and attributes["axis"].i == -1
    assert attributes["epsilon"].f == pytest.approx(1e-6)
    assert json.loads(attributes["nested"].s) == {"depth": 2}
    inverted.save_saved_model(tmp_path / "saved_model")
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel.FromString((tmp_path / "saved_model" / "saved_model.pb").read_bytes())
    library = saved.meta_graphs[0].graph_def.library.function
    assert {f.attr["_implements"].func.name for f in library if "_implements" in f.attr} == {"odml.rms_norm"}


def _case_model(branch_ops):
    m = ModelWriter()
    g = m.main
    index, x = g.input([], "int32"), g.input([2, 3])
    branches = []
    for opcode in branch_ops:
        b = m.graph()
        bx = b.input([2, 3])
        b.outputs(*b.op(opcode, [bx, bx], [([2, 3], "float32")]))
        branches.append(len(m.graphs) - 1)
    option = schema.StablehloCaseOptionsT()
    option.branchSubgraphIndices = branches
    g.outputs(*g.op("STABLEHLO_CASE", [index, x], [([2, 3], "float32")], option))
    return m.pack()


def test_case_litert():
    """Index 0, 1, 2 and out of range (-1, 7: the last branch)."""
    model = _case_model(["ADD", "MUL", "MAXIMUM"])
    assert ti.load(model).subgraphs[0].operators[0].options["branch_subgraph_indices"] == (1, 2, 3)
    x = uniform([2, 3])
    inputs = [[np.array(i, np.int32), x] for i in (0, 1, 2, -1, 7)]
    assert_litert(model, "STABLEHLO_CASE", inputs=inputs)


def test_case_options_past_the_end_of_the_file_are_invalid():
    """StablehloCaseOptions are read from the raw table (the tflite readers predate them): a vector
    length past the end of the file is an InvalidModelError, not a crash or a huge allocation."""
    model = _case_model(["ADD", "MUL", "MAXIMUM"])
    vector = np.array([3, 1, 2, 3], np.int32).tobytes()
    assert model.count(vector) == 1
    broken = model.replace(vector, np.array([1 << 30, 1, 2, 3], np.int32).tobytes())
    with pytest.raises(ti.InvalidModelError, match="operator 0.*branch_subgraph_indices.*past the end"):
        ti.load(broken)


@numpy_case
def while_loop():
    """while i < 5: (i, x) = (i + 1, x * 1.5 + 0.25)."""
    m = ModelWriter()
    g = m.main
    counter, x = g.input([], "int32"), g.input([2, 2])
    cond = m.graph("cond")
    ci, cx = cond.input([], "int32"), cond.input([2, 2])
    cond.outputs(*cond.op("STABLEHLO_COMPARE", [ci, cond.const(np.int32(5))], [([], "bool")],
                          compare_option("LT", "SIGNED")))
    body = m.graph("body")
    bi, bx = body.input([], "int32"), body.input([2, 2])
    (next_i,) = body.op("STABLEHLO_ADD", [bi, body.const(np.int32(1))], [([], "int32")])
    (scaled,) = body.op("STABLEHLO_MULTIPLY", [bx, body.const(np.full([2, 2], 1.5, np.float32))], [([2, 2], "float32")])
    (next_x,) = body.op("STABLEHLO_ADD", [scaled, body.const(np.full([2, 2], 0.25, np.float32))], [([2, 2], "float32")])
    body.outputs(next_i, next_x)
    option = options("StablehloWhileOptions", condSubgraphIndex=1, bodySubgraphIndex=2)
    g.outputs(*g.op("STABLEHLO_WHILE", [counter, x], [([], "int32"), ([2, 2], "float32")], option))
    start, value = np.array(1, np.int32), uniform([2, 2])
    i, v = int(start), value.copy()
    while i < 5:
        i, v = i + 1, (v * np.float32(1.5) + np.float32(0.25)).astype(np.float32)
    return m.pack(), "STABLEHLO_WHILE", [start, value], [np.array(i, np.int32), v]


def _sort_model(shape, dimension, direction, swapped=False):
    m = ModelWriter()
    g = m.main
    keys, values = g.input(shape, "int32"), g.input(shape)
    comparator = m.graph("comparator")
    arguments = [comparator.input([], "int32"), comparator.input([], "int32"), comparator.input([]),
                 comparator.input([])]
    lhs, rhs = (arguments[1], arguments[0]) if swapped else (arguments[0], arguments[1])
    comparator.outputs(*comparator.op("STABLEHLO_COMPARE", [lhs, rhs], [([], "bool")],
                                      compare_option(direction, "SIGNED")))
    option = options("StablehloSortOptions", dimension=dimension, isStable=True, comparatorSubgraphIndex=1)
    g.outputs(*g.op("STABLEHLO_SORT", [keys, values], [(shape, "int32"), (shape, "float32")], option))
    return m.pack()


def _stable_sort_reference(keys, values, axis, descending):
    order = np.argsort(-keys if descending else keys, axis=axis, kind="stable")
    return [np.take_along_axis(keys, order, axis), np.take_along_axis(values, order, axis)]


@numpy_case
def sort_ascending_stable():
    keys, values = integers([3, 6], 0, 3), uniform([3, 6])
    return _sort_model([3, 6], 1, "LT"), "STABLEHLO_SORT", [keys, values], \
        _stable_sort_reference(keys, values, 1, False)


@numpy_case
def sort_descending_swapped_arguments():
    """compare(b, a) LT orders descending; along dimension 0; ties keep their order."""
    keys, values = integers([5, 2], 0, 3, seed=1), uniform([5, 2], seed=1)
    return _sort_model([5, 2], 0, "LT", swapped=True), "STABLEHLO_SORT", [keys, values], \
        _stable_sort_reference(keys, values, 0, True)


def _argmax_body(m: ModelWriter, value_dtype="float32", index_dtype="int32") -> int:
    """The body TensorFlow's converter writes for argmax: (value, index) pairs, the larger value
    and, on a tie, the smaller index."""
    g = m.graph("argmax_body")
    v0, i0 = g.input([], value_dtype), g.input([], index_dtype)
    v1, i1 = g.input([], value_dtype), g.input([], index_dtype)
    (ge,) = g.op("STABLEHLO_COMPARE", [v0, v1], [([], "bool")], compare_option("GE"))
    (value,) = g.op("STABLEHLO_SELECT", [ge, v0, v1], [([], value_dtype)])
    (eq,) = g.op("STABLEHLO_COMPARE", [v0, v1], [([], "bool")], compare_option("EQ"))
    (smaller,) = g.op("STABLEHLO_MINIMUM", [i0, i1], [([], index_dtype)])
    (picked,) = g.op("STABLEHLO_SELECT", [ge, i0, i1], [([], index_dtype)])
    (index,) = g.op("STABLEHLO_SELECT", [eq, smaller, picked], [([], index_dtype)])
    g.outputs(value, index)
    return len(m.graphs) - 1


@numpy_case
def reduce_argmax_variadic():
    """Two operands (values and their iota) and a compare-and-select body: the generic tree. Rows
    of 7 (odd: init values fill the pairs) with ties, which go to the first index."""
    x = np.round(uniform([3, 7], -2, 2), 0).astype(np.float32)
    m = ModelWriter()
    g = m.main
    xi, positions = g.input([3, 7]), g.input([3, 7], "int32")
    option = options("StablehloReduceOptions", dimensions=[1], bodySubgraphIndex=_argmax_body(m))
    g.outputs(*g.op("STABLEHLO_REDUCE", [xi, positions, g.const(np.float32(-np.inf)), g.const(np.int32(0))],
                    [([3], "float32"), ([3], "int32")], option))
    iota = np.broadcast_to(np.arange(7, dtype=np.int32), [3, 7]).copy()
    return m.pack(), "STABLEHLO_REDUCE", [x, iota], [x.max(axis=1), np.argmax(x, axis=1).astype(np.int32)]


@numpy_case
def reduce_window_select_body():
    """A max written as COMPARE + SELECT (not one op): the generic tree over each window."""
    m = ModelWriter()
    g = m.main
    x = g.input([1, 5, 4, 1])
    body = m.graph("select_max")
    a, b = body.input([]), body.input([])
    (gt,) = body.op("STABLEHLO_COMPARE", [a, b], [([], "bool")], compare_option("GT"))
    body.outputs(*body.op("STABLEHLO_SELECT", [gt, a, b], [([], "float32")]))
    option = options("StablehloReduceWindowOptions", windowDimensions=[1, 3, 2, 1], windowStrides=[1, 2, 2, 1],
                     baseDilations=[1, 1, 1, 1], windowDilations=[1, 1, 1, 1], padding=[0, 0, 1, 1, 0, 0, 0, 0],
                     bodySubgraphIndex=1)
    g.outputs(*g.op("STABLEHLO_REDUCE_WINDOW", [x, g.const(np.float32(-np.inf))], [([1, 3, 2, 1], "float32")], option))
    value = uniform([1, 5, 4, 1])
    padded = np.pad(value, [(0, 0), (1, 1), (0, 0), (0, 0)], constant_values=-np.inf)
    expected = np.zeros([1, 3, 2, 1], np.float32)
    for r in range(3):
        for c in range(2):
            expected[0, r, c, 0] = padded[0, 2 * r:2 * r + 3, 2 * c:2 * c + 2, 0].max()
    return m.pack(), "STABLEHLO_REDUCE_WINDOW", [value], [expected]


def test_reduce_body_of_the_wrong_arity_is_a_build_error():
    m = ModelWriter()
    g = m.main
    x = g.input([2, 3])
    option = options("StablehloReduceOptions", dimensions=[1], bodySubgraphIndex=_argmax_body(m))
    g.outputs(*g.op("STABLEHLO_REDUCE", [x, g.const(np.float32(0))], [([2], "float32")], option))
    with pytest.raises(ti.BuildError, match="computation subgraph 1 takes 4 arguments and gives 2 results"):
        ti.invert(m.pack())


@numpy_case
def sort_two_keys():
    """A lexicographic comparator (key 0 descending, then key 1 ascending): every pair compared."""
    m = ModelWriter()
    g = m.main
    first, second, payload = g.input([2, 6], "int32"), g.input([2, 6], "int32"), g.input([2, 6])
    c = m.graph("comparator")
    a0, b0, a1, b1, _, _ = (c.input([], "int32"), c.input([], "int32"), c.input([], "int32"), c.input([], "int32"),
                            c.input([]), c.input([]))
    (greater,) = c.op("STABLEHLO_COMPARE", [a0, b0], [([], "bool")], compare_option("GT", "SIGNED"))
    (equal,) = c.op("STABLEHLO_COMPARE", [a0, b0], [([], "bool")], compare_option("EQ", "SIGNED"))
    (less,) = c.op("STABLEHLO_COMPARE", [a1, b1], [([], "bool")], compare_option("LT", "SIGNED"))
    (tie_break,) = c.op("STABLEHLO_AND", [equal, less], [([], "bool")])
    c.outputs(*c.op("STABLEHLO_OR", [greater, tie_break], [([], "bool")]))
    option = options("StablehloSortOptions", dimension=1, isStable=True, comparatorSubgraphIndex=1)
    g.outputs(*g.op("STABLEHLO_SORT", [first, second, payload], [([2, 6], "int32"), ([2, 6], "int32"),
                                                                  ([2, 6], "float32")], option))
    keys0, keys1, values = integers([2, 6], 0, 3), integers([2, 6], 0, 2, seed=1), uniform([2, 6])
    expected = [np.empty_like(keys0), np.empty_like(keys1), np.empty_like(values)]
    for row in range(2):
        order = sorted(range(6), key=lambda i: (-keys0[row, i], keys1[row, i], i))  # stable: ties by position
        for k, source in enumerate((keys0, keys1, values)):
            expected[k][row] = source[row, order]
    return m.pack(), "STABLEHLO_SORT", [keys0, keys1, values], expected


# Registered last: every case above is in the table.
@pytest.mark.parametrize("case", sorted(CASES.numpy))
def test_numpy_reference(case):
    check_case(CASES.numpy[case], against_litert=False)


def _sdpa_reference(q, k, v, mask, scale, cap=None):
    """numpy transcription of litert-torch's scaled_dot_product_attention layer (the composite's meaning)."""
    heads, groups = q.shape[2], k.shape[2]
    qh = q.transpose(0, 2, 1, 3) * scale
    kh, vh = (np.repeat(t.transpose(0, 2, 1, 3), heads // groups, axis=1) for t in (k, v))
    scores = qh @ kh.transpose(0, 1, 3, 2)
    if cap is not None:
        scores = np.tanh(scores / cap) * cap
    scores = scores + mask
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return (weights @ vh).transpose(0, 2, 1, 3)


def _sdpa_model(q_shape, kv_shape, mask_shape, attributes: dict):
    """odml.scaled_dot_product_attention whose decomposition computes something else (q * 2): the
    result then shows which of the two a runtime computed."""
    m = ModelWriter()
    g = m.main
    q, k, v, mask = g.input(q_shape), g.input(kv_shape), g.input(kv_shape), g.input(mask_shape)
    body = m.graph("not_attention")
    bq = body.input(q_shape)
    for shape in (kv_shape, kv_shape, mask_shape):
        body.input(shape)
    body.outputs(*body.op("MUL", [bq, body.const(np.float32(2.0))], [(q_shape, "float32")], options("MulOptions")))
    builder = flexbuffers.Builder()
    with builder.Map():
        for key, value in attributes.items():
            builder.Key(key)
            builder.Float(value, byte_width=4)  # float32, as litert-torch writes it (XNNPACK misreads 8 bytes)
    option = options("StableHLOCompositeOptions", name=b"odml.scaled_dot_product_attention", decompositionSubgraphIndex=1,
                     compositeAttributes=list(builder.Finish()), compositeAttributesFormat=1, version=0)
    g.outputs(*g.op("STABLEHLO_COMPOSITE", [q, k, v, mask], [(q_shape, "float32")], option))
    return m.pack()


@pytest.mark.parametrize("q_shape,kv_shape", [([1, 3, 4, 8], [1, 6, 2, 8]), ([1, 1, 2, 8], [1, 6, 1, 8])])
def test_scaled_dot_product_attention_composite_is_attention(q_shape, kv_shape):
    """litert-torch's decompositions of this composite are not always attention (docs/known-issues.md);
    LiteRT's default kernels (XNNPACK) compute it natively, its builtin kernels run the decomposition.
    The inversion computes attention: equal to the default kernels (no noise floor: the reference
    kernels compute the decomposition) and to a numpy transcription of the layer."""
    rng = np.random.default_rng(3)
    mask_shape = [1, 1, q_shape[1], kv_shape[1]]
    mask = np.where(rng.uniform(size=mask_shape) < 0.3, np.float32(-1e9), np.float32(0))
    mask[..., 0] = 0  # every query sees one key
    q, k, v = (rng.normal(size=s).astype(np.float32) for s in (q_shape, kv_shape, kv_shape))
    model = _sdpa_model(q_shape, kv_shape, mask_shape, {"scale": 0.3})
    report = ti.verify(model, ti.invert(model), inputs=[[q, k, v, mask]], noise_floor=False, rtol=1e-5)
    assert report.passed, report.table()
    got = ti.invert(model).run([q, k, v, mask])["out_00"]
    np.testing.assert_allclose(got, _sdpa_reference(q, k, v, mask, 0.3), rtol=1e-5, atol=1e-6)
    assert np.abs(got - 2 * q).max() > 0.1  # not the decomposition


def test_scaled_dot_product_attention_composite_soft_cap_and_default_scale():
    rng = np.random.default_rng(4)
    q_shape, kv_shape, mask_shape = [1, 2, 2, 4], [1, 5, 1, 4], [1, 1, 2, 5]
    q, k, v = (rng.normal(size=s).astype(np.float32) * 3 for s in (q_shape, kv_shape, kv_shape))
    mask = np.zeros(mask_shape, np.float32)
    got = ti.invert(_sdpa_model(q_shape, kv_shape, mask_shape, {"logit_cap": 2.0})).run([q, k, v, mask])["out_00"]
    np.testing.assert_allclose(got, _sdpa_reference(q, k, v, mask, 0.5, cap=2.0), rtol=1e-5, atol=1e-6)


def test_scaled_dot_product_attention_composite_of_another_form_runs_its_decomposition():
    """An attribute the definition does not know (here ``is_causal``) leaves the result to the decomposition."""
    rng = np.random.default_rng(5)
    q_shape, kv_shape, mask_shape = [1, 2, 2, 4], [1, 5, 1, 4], [1, 1, 2, 5]
    q, k, v = (rng.normal(size=s).astype(np.float32) for s in (q_shape, kv_shape, kv_shape))
    model = _sdpa_model(q_shape, kv_shape, mask_shape, {"scale": 0.5, "is_causal": 1.0})
    got = ti.invert(model).run([q, k, v, np.zeros(mask_shape, np.float32)])["out_00"]
    np.testing.assert_array_equal(got, 2 * q)
