"""Parity tests for tflite_inverter/ops/embedding.py.

The converter emits none of these ops (tf.nn.embedding_lookup becomes GATHER), so every model is
a converted one edited (:func:`single_op_model`): a tf.function with the op's model inputs and
outputs of the op's output shapes is converted, then its operators are replaced by the one op
under test, with constant inputs added as new tensors.

CONCAT_EMBEDDINGS is not tested: LiteRT registers no kernel for it (see
``test_concat_embeddings_has_no_kernel``), so there is nothing to compare against.
"""

import numpy as np
import pytest
import tensorflow as tf

from flatbuffer_writer import edit
from parity import assert_parity, convert
from tensorflow.lite.python import schema_py_generated as schema

TYPES = {"float32": schema.TensorType.FLOAT32, "int32": schema.TensorType.INT32, "uint8": schema.TensorType.UINT8,
         "int8": schema.TensorType.INT8, "int64": schema.TensorType.INT64, "string": schema.TensorType.STRING,
         "int4": schema.TensorType.INT4, "bool": schema.TensorType.BOOL}


def tf_dtype(name):
    return tf.string if name == "string" else tf.as_dtype(name)


def const(value, dtype=None, scale=None, zero_point=None, axis=0, packed=None):
    """A constant op input: numpy value, TFLite type name, optional quantization; ``packed`` gives the
    raw bytes when they are not value.tobytes() (int4)."""
    value = np.asarray(value)
    return {"value": value, "dtype": dtype or value.dtype.name, "scale": scale, "zero_point": zero_point, "axis": axis,
            "packed": packed}


def _base_outputs(args, outputs):
    """Tensors of the requested output shapes and dtypes that depend on the inputs (so that the
    converter neither folds nor drops them)."""
    first = args[0]
    if first.dtype == tf.string:
        seed = tf.reduce_sum(tf.strings.length(first))
    else:
        seed = tf.reduce_sum(tf.cast(first, tf.int32))
    result = []
    for k, (shape, dtype) in enumerate(outputs):
        static = [1 + k if d is None else d for d in shape]  # distinct, so the converter merges no two outputs
        if dtype == "string":
            result.append(tf.gather(tf.reshape(first, [-1]), tf.zeros(static, tf.int32) + seed * 0))
        else:
            result.append(tf.zeros(static, tf_dtype(dtype)) + tf.cast(seed + k, tf_dtype(dtype)))
    return result


def single_op_model(opcode, inputs, op_inputs, outputs, options=None, version=1):
    """A model whose only operator is ``opcode``.

    ``inputs``: model inputs as {name: (shape, dtype)} (names sort in positional order);
    ``op_inputs``: for each op input, a model input name, a :func:`const`, or None (optional);
    ``outputs``: (shape, dtype) per op output, None for a dynamic dimension;
    ``options``: (schema options object, BuiltinOptions union type)."""
    return ops_model(inputs, outputs, [(opcode, op_inputs, list(range(len(outputs))), options, version)])


def ops_model(inputs, outputs, operators):
    """A model of several independent operators: each is (opcode, op inputs, positions of its
    outputs in ``outputs``, options, version), as for :func:`single_op_model`. Each output must be
    a distinct tensor of the converted model (checked)."""
    specs = [tf.TensorSpec(inputs[n][0], tf_dtype(inputs[n][1]), name=n) for n in sorted(inputs)]
    model = convert(lambda *args: _base_outputs(args, outputs), specs)

    def change(m):
        sg = m.subgraphs[0]
        by_name = {sg.tensors[i].name.decode().split("serving_default_")[-1].split(":")[0]: i for i in sg.inputs}
        signature_outputs = {o.name.decode(): o.tensorIndex for o in m.signatureDefs[0].outputs}
        assert len(set(signature_outputs.values())) == len(outputs), "the converter merged outputs"
        for index, (shape, dtype) in zip((signature_outputs[f"output_{k}"] for k in range(len(outputs))), outputs):
            tensor = sg.tensors[index]
            tensor.type = TYPES[dtype]
            tensor.shape = [1 if d is None else d for d in shape]
            tensor.shapeSignature = [-1 if d is None else d for d in shape] if None in shape else None
            tensor.quantization = None
        operators_t = []
        for opcode, op_inputs, positions, options, version in operators:
            indices = []
            for item in op_inputs:
                if item is None:
                    indices.append(-1)
                elif isinstance(item, str):
                    indices.append(by_name[item])
                else:
                    indices.append(_add_constant(m, sg, item))
            code = schema.OperatorCodeT()
            builtin = getattr(schema.BuiltinOperator, opcode)
            code.builtinCode = builtin
            code.deprecatedBuiltinCode = min(builtin, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
            code.version = version
            m.operatorCodes.append(code)
            op = schema.OperatorT()
            op.opcodeIndex = len(m.operatorCodes) - 1
            op.inputs = indices
            op.outputs = [signature_outputs[f"output_{k}"] for k in positions]
            if options is not None:
                op.builtinOptions, op.builtinOptionsType = options
            operators_t.append(op)
        sg.operators = operators_t

    return edit(model, change)


def _add_constant(m, sg, item):
    tensor = schema.TensorT()
    value = item["value"]
    tensor.shape = list(value.shape)
    tensor.type = TYPES[item["dtype"]]
    tensor.name = f"constant_{len(sg.tensors)}".encode()
    if item["scale"] is not None:
        q = schema.QuantizationParametersT()
        q.scale = [float(s) for s in np.atleast_1d(item["scale"])]
        q.zeroPoint = [int(z) for z in np.atleast_1d(item["zero_point"] if item["zero_point"] is not None else 0)]
        q.quantizedDimension = item["axis"]
        tensor.quantization = q
    buffer = schema.BufferT()
    if item["dtype"] == "string":
        buffer.data = list(_string_buffer(value.reshape(-1)))
    else:
        raw = item["packed"] if item["packed"] is not None else value.tobytes()
        buffer.data = list(np.frombuffer(raw, np.uint8))
    m.buffers.append(buffer)
    tensor.buffer = len(m.buffers) - 1
    sg.tensors.append(tensor)
    return len(sg.tensors) - 1


def _string_buffer(strings):
    """TFLite's string tensor layout: count, offsets (count + 1), then the bytes."""
    data = [s if isinstance(s, bytes) else str(s).encode() for s in strings]
    header = 4 * (len(data) + 2)
    offsets = np.cumsum([header] + [len(s) for s in data]).astype(np.int32)
    return np.int32(len(data)).tobytes() + offsets.tobytes() + b"".join(data)


def floats(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(np.float32)


# -- EMBEDDING_LOOKUP -------------------------------------------------------------------------------

IDS = [[np.array([3, 0, 9, 3], np.int32)], [np.array([1, 8, 8, 2], np.int32)]]


def test_embedding_lookup_float():
    model = single_op_model("EMBEDDING_LOOKUP", {"a": ([4], "int32")}, ["a", const(floats(10, 3))], [([4, 3], "float32")])
    assert_parity(model, ["EMBEDDING_LOOKUP"], inputs=IDS)


def test_embedding_lookup_table_input():
    """A run-time table of rank 3 and int32 type (the kernel copies rows of any type)."""
    model = single_op_model("EMBEDDING_LOOKUP", {"a": ([4], "int32"), "b": ([10, 2, 3], "int32")}, ["a", "b"],
                            [([4, 2, 3], "int32")])
    table = np.random.default_rng(0).integers(-50, 50, [10, 2, 3]).astype(np.int32)
    assert_parity(model, ["EMBEDDING_LOOKUP"], inputs=[ids + [table] for ids in IDS])


@pytest.mark.parametrize("dtype,per_channel,version", [("int8", False, 1), ("uint8", False, 1), ("int8", True, 4),
                                                       ("int4", False, 4), ("int4", True, 4)])
def test_embedding_lookup_hybrid(dtype, per_channel, version):
    """A quantized table and a float output: TFLite's hybrid kernel, scale * q (zero point 0),
    per row with per-channel scales (v4), int4 nibbles low first (v4)."""
    rng = np.random.default_rng(1)
    low, high = {"int8": (-127, 127), "uint8": (0, 255), "int4": (-8, 7)}[dtype]
    q = rng.integers(low, high + 1, [10, 4])
    scale = rng.uniform(0.01, 0.1, [10]) if per_channel else 0.05
    if dtype == "int4":
        nibbles = (q & 0xF).astype(np.uint8).reshape(-1, 2)
        packed = (nibbles[:, 0] | (nibbles[:, 1] << 4)).astype(np.uint8).tobytes()
        table = const(q.astype(np.int8), "int4", scale, np.zeros_like(np.atleast_1d(scale), int), packed=packed)
    else:
        table = const(q.astype(dtype), dtype, scale, np.zeros_like(np.atleast_1d(scale), int))
    model = single_op_model("EMBEDDING_LOOKUP", {"a": ([4], "int32")}, ["a", table], [([4, 4], "float32")], version=version)
    assert_parity(model, ["EMBEDDING_LOOKUP"], inputs=IDS)


# -- HASHTABLE_LOOKUP --------------------------------------------------------------------------------

def hashtable_model(keys, values, value_dtype, lookups=5):
    value_shape = list(np.asarray(values).shape)
    op_inputs = ["a", const(np.asarray(keys, np.int32)), const(values, value_dtype)]
    return single_op_model("HASHTABLE_LOOKUP", {"a": ([lookups], "int32")}, op_inputs,
                           [([lookups] + value_shape[1:], value_dtype), ([lookups], "uint8")])


@pytest.mark.parametrize("value_dtype", ["float32", "int32", "uint8", "string"])
def test_hashtable_lookup(value_dtype):
    """Hits copy the value row, misses give zeros (an empty string) and hit 0."""
    keys = [-7, -2, 0, 3, 11, 40]
    if value_dtype == "string":
        values = np.array([b"minus seven", b"minus two", b"zero", b"", b"eleven", b"forty"], dtype=object)
    elif value_dtype == "float32":
        values = floats(6, 2)
    else:
        values = np.random.default_rng(0).integers(1, 100, [6, 3]).astype(value_dtype)
    model = hashtable_model(keys, values, value_dtype)
    lookups = [[np.array([3, 4, -7, 40, 0], np.int32)], [np.array([11, -2, 1, 2, -8], np.int32)]]
    assert_parity(model, ["HASHTABLE_LOOKUP"], inputs=lookups)


def test_hashtable_lookup_bsearch_quirks():
    """Unsorted keys [5, 1, 9, 3, 7, 2]: the binary search finds only 1 and 3 of the lookups
    [5, 1, 9, 3, 7] (TFLite's answer, replayed). Far-apart keys [-2147483000, 2147483000, 2147483001]:
    the kernel's comparator ``a - b`` would overflow, but LiteRT finds all three (its build compares
    exactly), and so does the builder."""
    unsorted = hashtable_model([5, 1, 9, 3, 7, 2], floats(6, 2), "float32")
    assert_parity(unsorted, ["HASHTABLE_LOOKUP"],
                  inputs=[[np.array([5, 1, 9, 3, 7], np.int32)], [np.array([2, 4, 1, 9, 3], np.int32)]])
    far = hashtable_model([-2147483000, 2147483000, 2147483001], np.array([1, 2, 3], np.int32), "int32", lookups=3)
    assert_parity(far, ["HASHTABLE_LOOKUP"], inputs=[[np.array([-2147483000, 2147483000, 2147483001], np.int32)]], draws=1)


# -- EMBEDDING_LOOKUP_SPARSE ----------------------------------------------------------------------------

def sparse_model(combiner, dense_shape, table, lookups, dense_shape_input=False):
    rank = len(dense_shape)
    options = schema.EmbeddingLookupSparseOptionsT()
    options.combiner = getattr(schema.CombinerType, combiner)
    inputs = {"a": ([lookups], "int32"), "b": ([lookups, rank], "int32"), "d": ([lookups], "float32")}
    op_inputs = ["a", "b", const(np.array(dense_shape, np.int32)), "d", const(table)]
    out_shape = list(dense_shape[:-1]) + list(table.shape[1:])
    if dense_shape_input:
        inputs["c"] = ([rank], "int32")
        op_inputs[2] = "c"
        out_shape = [None] * (rank - 1) + list(table.shape[1:])
    return single_op_model("EMBEDDING_LOOKUP_SPARSE", inputs, op_inputs, [(out_shape, "float32")],
                           options=(options, schema.BuiltinOptions.EmbeddingLookupSparseOptions))


@pytest.mark.parametrize("combiner", ["SUM", "MEAN", "SQRTN"])
def test_embedding_lookup_sparse(combiner):
    """Sorted sparse indices (a SparseTensor's order), an empty output row, weights of any sign."""
    model = sparse_model(combiner, [3, 4], floats(10, 3), 6)
    ids = np.array([1, 7, 7, 0, 9, 2], np.int32)
    indices = np.array([[0, 0], [0, 1], [0, 3], [2, 0], [2, 1], [2, 2]], np.int32)
    inputs = [[ids, indices, np.array([1.0, 0.5, 2.0, -1.0, 3.0, 0.25], np.float32)],
              [ids[::-1].copy(), indices, np.array([0.3, 0.3, 1.0, 2.0, -0.5, 1.5], np.float32)]]
    assert_parity(model, ["EMBEDDING_LOOKUP_SPARSE"], inputs=inputs)


@pytest.mark.parametrize("combiner", ["SUM", "MEAN", "SQRTN"])
def test_embedding_lookup_sparse_runs(combiner):
    """Rows met again after another row (runs), a rank-3 lookup and a rank-3 table: the output row
    is added to and divided again, as TFLite's kernel does."""
    model = sparse_model(combiner, [2, 2, 5], floats(8, 2, 2, seed=3), 6)
    ids = np.array([1, 7, 3, 0, 5, 2], np.int32)
    indices = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 1], [1, 0, 2], [0, 1, 3], [0, 0, 0]], np.int32)
    inputs = [[ids, indices, np.array([1.0, 0.5, 2.0, 1.0, 3.0, 0.25], np.float32)],
              [ids, indices[::-1].copy(), np.array([0.3, 0.7, 1.0, 2.0, 0.5, 1.5], np.float32)]]
    assert_parity(model, ["EMBEDDING_LOOKUP_SPARSE"], inputs=inputs)


def test_embedding_lookup_sparse_dense_shape_input():
    """A run-time dense shape: the output is sized when the op runs. (Indices beyond the dense shape
    are not tried: TFLite's kernel skips their sums but then divides memory past the output.)"""
    model = sparse_model("MEAN", [3, 4], floats(10, 3), 4, dense_shape_input=True)
    ids, indices = np.array([1, 7, 2, 9], np.int32), np.array([[0, 0], [0, 1], [2, 3], [3, 0]], np.int32)
    inputs = [[ids, indices, np.array([4, 4], np.int32), np.array([1.0, 0.5, 2.0, 1.0], np.float32)],
              [ids, indices, np.array([4, 6], np.int32), np.array([2.0, 1.0, 1.0, 4.0], np.float32)]]
    assert_parity(model, ["EMBEDDING_LOOKUP_SPARSE"], inputs=inputs)


# -- LSH_PROJECTION -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,weighted", [("float32", True), ("float32", False), ("int32", True), ("uint8", False)])
def test_lsh_projection(dtype, weighted):
    """Signs of weighted sums of FarmHash Fingerprint64 values of (seed, row) byte strings; the
    SPARSE and DENSE projections of the same input."""
    seeds = np.random.default_rng(5).uniform(-100, 100, [4, 6]).astype(np.float32)
    inputs = {"a": ([5, 3], dtype)}
    op_inputs = [const(seeds), "a"] + (["b"] if weighted else [])
    if weighted:
        inputs["b"] = ([5], "float32")
    operators = []
    for position, kind in enumerate(["SPARSE", "DENSE"]):
        options = schema.LSHProjectionOptionsT()
        options.type = getattr(schema.LSHProjectionType, kind)
        operators.append(("LSH_PROJECTION", op_inputs, [position], (options, schema.BuiltinOptions.LSHProjectionOptions), 1))
    model = ops_model(inputs, [([4], "int32"), ([24], "int32")], operators)
    rng = np.random.default_rng(6)
    draws = [[(rng.uniform(-5, 5, [5, 3]) if dtype == "float32" else rng.integers(0, 200, [5, 3])).astype(dtype)]
             + ([rng.uniform(-1, 1, [5]).astype(np.float32)] if weighted else []) for _ in range(3)]
    assert_parity(model, ["LSH_PROJECTION"], inputs=draws)


# -- SKIP_GRAM --------------------------------------------------------------------------------------------

SENTENCES = [
    b"the quick brown fox jumps",
    b"  two  leading spaces and\ttab",
    b" one leading space",
    b"trailing  spaces   ",
    b"a\nb\rc\vd\fe",
    b"\tstarts with a tab then words",
]


SKIP_GRAM_OPTIONS = [(3, 1, False), (2, 2, True), (1, 0, False), (3, 0, True)]


def test_skip_gram():
    """Four option sets (ngram_size, max_skip_size, include_all_ngrams) on one input, one draw per
    sentence (the number of n-grams depends on it). " one leading space" loses "one" in TFLite's
    tokenizer, leaving two words: no 3-gram, an empty output on both sides."""
    operators = []
    for position, (size, skip, include_all) in enumerate(SKIP_GRAM_OPTIONS):
        options = schema.SkipGramOptionsT()
        options.ngramSize, options.maxSkipSize, options.includeAllNgrams = size, skip, include_all
        operators.append(("SKIP_GRAM", ["a"], [position], (options, schema.BuiltinOptions.SkipGramOptions), 1))
    model = ops_model({"a": ([1], "string")}, [([None], "string")] * len(SKIP_GRAM_OPTIONS), operators)
    for sentence in SENTENCES:
        assert_parity(model, ["SKIP_GRAM"], inputs=[[np.array([sentence], dtype=bytes)]], draws=1)


def test_concat_embeddings_has_no_kernel():
    """CONCAT_EMBEDDINGS: LiteRT's op resolver has no kernel, so no builder is registered."""
    from ai_edge_litert.interpreter import Interpreter

    from tflite_inverter import ops

    model = single_op_model("CONCAT_EMBEDDINGS", {"a": ([2, 3], "float32")}, ["a"], [([2, 3], "float32")])
    with pytest.raises((RuntimeError, ValueError), match="CONCAT_EMBEDDINGS"):
        Interpreter(model_content=model).allocate_tensors()
    assert ops.lookup("CONCAT_EMBEDDINGS") is None
