"""Parity tests for tflite_inverter/ops/indexing.py.

Indices come from model inputs (so the converter cannot fold the op) and are passed explicitly
where random integers would be out of range. To keep the file fast, the dtypes an op accepts
are covered by one model holding one instance of the op per dtype (:func:`check_cases`); the
op versions those dtypes select are recorded by ``parity._record_versions``.

Ops with data-dependent output shapes (UNIQUE, WHERE, SEGMENT_SUM) get draws that produce the
same output shape, so the draws can be stacked and compared element by element.

Dtypes the converter refuses for an op are covered by retyping a converted model's tensors
(int8 REVERSE_V2, int16/uint8 REVERSE_SEQUENCE) or not at all (int64 ARG_MAX, int16 ONE_HOT).
"""

import numpy as np
import pytest
import tensorflow as tf

from parity import assert_parity, convert


def spec(*shape, dtype=tf.float32):
    return tf.TensorSpec(list(shape), dtype)


def floats(*shape, seed=0):
    return np.random.default_rng(seed).uniform(-1.0, 1.0, shape).astype(np.float32)


def values(dtype, shape, seed=0):
    """Random values of a numpy dtype name (strings and bools included)."""
    rng = np.random.default_rng(seed)
    if dtype == "string":
        return np.array([b"s%d" % v for v in rng.integers(0, 1000, int(np.prod(shape)))], dtype=bytes).reshape(shape)
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.startswith("float"):
        return rng.uniform(-1.0, 1.0, shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(max(info.min, -100), min(info.max, 100) + 1, shape).astype(dtype)


def tf_dtype(name):
    return tf.string if name == "string" else tf.as_dtype(name)


def check_cases(opcodes, cases, **kwargs):
    """One model holding every case. A case is (function, input specs, [inputs of draw 0, of draw 1]);
    its outputs become model outputs. Inputs are named in00, in01, ... so that the signature's
    (alphabetical) order is the order of the cases."""
    specs, count = [], 0
    for _, case_specs, _ in cases:
        for s in case_specs:
            specs.append(tf.TensorSpec(s.shape, s.dtype, name=f"in{count:02d}"))
            count += 1

    def function(*args):
        outputs, position = [], 0
        for case_function, case_specs, _ in cases:
            result = case_function(*args[position:position + len(case_specs)])
            outputs.extend(result if isinstance(result, (list, tuple)) else [result])
            position += len(case_specs)
        return outputs

    model = convert(function, specs)
    draws = len(cases[0][2])
    inputs = [[np.asarray(v) for case in cases for v in case[2][d]] for d in range(draws)]
    return assert_parity(model, opcodes, inputs=inputs, **kwargs)


# -- GATHER_ND ---------------------------------------------------------------------------------------

GATHER_ND_DTYPES = [("float32", "int32"), ("int32", "int64"), ("string", "int32"), ("int16", "int32"),
                    ("float32", "int16"), ("bool", "int32"), ("int8", "int32"), ("int64", "int64")]


def test_gather_nd_dtypes():
    """String params are GATHER_ND v2, int16 params v3, int16 indices v4, bool params v5."""
    cases = []
    for n, (params, index) in enumerate(GATHER_ND_DTYPES):
        indices = [np.array([[3, 4], [0, 0], [2, 1]], index), np.array([[1, 2], [1, 2], [3, 0]], index)]
        cases.append((tf.gather_nd, [spec(4, 5, 3, dtype=tf_dtype(params)), spec(3, 2, dtype=tf_dtype(index))],
                      [[values(params, [4, 5, 3], n + d), indices[d]] for d in range(2)]))
    check_cases(["GATHER_ND"], cases)


@pytest.mark.parametrize("index_depth", [1, 3])
def test_gather_nd_depth(index_depth):
    model = convert(lambda a, b: tf.gather_nd(a, b), [spec(4, 5, 3), spec(2, 2, index_depth, dtype=tf.int32)])
    rng = np.random.default_rng(index_depth)
    high = np.array([4, 5, 3][:index_depth])
    inputs = [[floats(4, 5, 3, seed=s), (rng.integers(0, 1 << 20, [2, 2, index_depth]) % high).astype(np.int32)]
              for s in range(2)]
    assert_parity(model, ["GATHER_ND"], inputs=inputs)


# -- SCATTER_ND ----------------------------------------------------------------------------------------

def test_scatter_nd_dtypes():
    """Repeated indices add up (bool: or), as in TensorFlow."""
    indices = [np.array([[4], [0], [4], [2]], np.int32), np.array([[1], [1], [1], [3]], np.int32)]
    cases = [(lambda a, b: tf.scatter_nd(b, a, [5, 3]), [spec(4, 3, dtype=tf.as_dtype(dtype)), spec(4, 1, dtype=tf.int32)],
              [[values(dtype, [4, 3], n + d), indices[d]] for d in range(2)])
             for n, dtype in enumerate(["float32", "int32", "int64", "int8", "uint8", "bool"])]
    check_cases(["SCATTER_ND"], cases)


def test_scatter_nd_shape_input():
    model = convert(lambda a, b, c: tf.scatter_nd(b, a, c), [spec(3), spec(3, 2, dtype=tf.int32), spec(2, dtype=tf.int32)])
    inputs = [[floats(3, seed=s), np.array([[0, 1], [2, 3], [0, 1]], np.int32), np.array([3, 4], np.int32)] for s in range(2)]
    assert_parity(model, ["SCATTER_ND"], inputs=inputs)


# -- SPARSE_TO_DENSE -----------------------------------------------------------------------------------

def test_sparse_to_dense_dtypes():
    """Repeated indices: TFLite keeps the last value written (int64 values are v2, int8/uint8 v3)."""
    indices = [[[3, 4], [0, 1], [3, 4], [2, 2]], [[1, 1], [0, 0], [1, 1], [1, 1]]]
    function = lambda a, b, c: tf.compat.v1.sparse_to_dense(a, [4, 5], b, c, validate_indices=False)  # noqa: E731
    cases = []
    dtypes = [("float32", "int32"), ("int32", "int64"), ("int64", "int32"), ("int8", "int32"), ("uint8", "int64")]
    for n, (dtype, index) in enumerate(dtypes):
        specs = [spec(4, 2, dtype=tf.as_dtype(index)), spec(4, dtype=tf.as_dtype(dtype)), spec(dtype=tf.as_dtype(dtype))]
        cases.append((function, specs,
                      [[np.array(indices[d], index), values(dtype, [4], n + d), values(dtype, [], n + d + 5)] for d in range(2)]))
    check_cases(["SPARSE_TO_DENSE"], cases)


def test_sparse_to_dense_vector_scalar_and_scalar_value():
    vector = lambda a, b: tf.compat.v1.sparse_to_dense(a, [6], b, -1.0, validate_indices=False)  # noqa: E731
    matrix = lambda a, b: tf.compat.v1.sparse_to_dense(a, [3, 4], b, 0.5, validate_indices=False)  # noqa: E731
    cases = [
        (vector, [spec(3, dtype=tf.int32), spec(3)], [[np.array([5, 0, 5], np.int32), floats(3, seed=0)],
                                                      [np.array([2, 3, 4], np.int32), floats(3, seed=1)]]),
        (vector, [spec(dtype=tf.int32), spec()], [[np.array(4, np.int32), floats(seed=2)],
                                                  [np.array(0, np.int32), floats(seed=3)]]),
        (matrix, [spec(3, 2, dtype=tf.int32), spec()], [[np.array([[0, 1], [2, 3], [1, 0]], np.int32), floats(seed=4)],
                                                        [np.array([[2, 2], [0, 0], [2, 2]], np.int32), floats(seed=5)]]),
    ]
    check_cases(["SPARSE_TO_DENSE"], cases)


# -- SEGMENT_SUM, UNSORTED_SEGMENT_* -------------------------------------------------------------------

def test_segment_sum():
    ids = [np.array([0, 0, 1, 2, 2, 2], np.int32), np.array([0, 1, 1, 1, 2, 2], np.int32)]
    cases = [(tf.math.segment_sum, [spec(6, 3, dtype=tf.as_dtype(dtype)), spec(6, dtype=tf.int32)],
              [[values(dtype, [6, 3], n + d), ids[d]] for d in range(2)]) for n, dtype in enumerate(["float32", "int32"])]
    check_cases(["SEGMENT_SUM"], cases)


UNSORTED = {
    "UNSORTED_SEGMENT_SUM": tf.math.unsorted_segment_sum,
    "UNSORTED_SEGMENT_PROD": tf.math.unsorted_segment_prod,
    "UNSORTED_SEGMENT_MAX": tf.math.unsorted_segment_max,
    "UNSORTED_SEGMENT_MIN": tf.math.unsorted_segment_min,
}


@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_unsorted_segment(dtype):
    """Negative ids are dropped; empty segments hold the identity (0, 1, lowest, highest)."""
    model = convert(lambda a, b: [UNSORTED[op](a, b, 5) for op in sorted(UNSORTED)],
                    [spec(6, 3, dtype=tf.as_dtype(dtype)), spec(6, dtype=tf.int32)])
    ids = [np.array([3, 0, -1, 3, 1, 0], np.int32), np.array([4, 4, 4, 0, -2, 2], np.int32)]
    assert_parity(model, sorted(UNSORTED), inputs=[[values(dtype, [6, 3], s), i] for s, i in enumerate(ids)])


def test_unsorted_segment_matrix_ids_and_count_input():
    model = convert(lambda a, b, c: [UNSORTED[op](a, b, c) for op in sorted(UNSORTED)],
                    [spec(2, 3, 4), spec(2, 3, dtype=tf.int32), spec(dtype=tf.int32)])
    ids = np.array([[0, 2, 2], [1, 0, 3]], np.int32)
    assert_parity(model, sorted(UNSORTED), inputs=[[floats(2, 3, 4, seed=s), ids, np.array(5, np.int32)] for s in range(2)])


# -- ONE_HOT ---------------------------------------------------------------------------------------------

def test_one_hot_axis():
    """Out-of-range and negative indices give a row of off values."""
    model = convert(lambda a: [tf.one_hot(a, 4, 2.5, -1.0, axis=axis) for axis in (-1, 0, 1)], [spec(2, 3, dtype=tf.int32)])
    indices = [np.array([[0, 3, 4], [-1, 2, 1]], np.int32), np.array([[1, 1, 0], [3, 9, 2]], np.int32)]
    assert_parity(model, ["ONE_HOT"], inputs=[[i] for i in indices])


def test_one_hot_dtypes():
    dtypes = [("int32", "int64"), ("int64", "int32"), ("bool", "int32"), ("int8", "int32"), ("uint8", "int64")]

    def case(dtype, index):
        on, off = (True, False) if dtype == "bool" else (7, 3)
        function = lambda a: tf.one_hot(a, 5, tf.constant(on, dtype), tf.constant(off, dtype))  # noqa: E731
        return function, [spec(4, dtype=tf.as_dtype(index))], [[np.array([0, 4, 2, 7], index)], [np.array([1, 1, -3, 3], index)]]

    check_cases(["ONE_HOT"], [case(*d) for d in dtypes])


def test_one_hot_inputs():
    model = convert(lambda a, b, c, d: tf.one_hot(a, b, c, d), [spec(3, dtype=tf.int32), spec(dtype=tf.int32), spec(), spec()])
    inputs = [[np.array([0, 2, 5], np.int32), np.array(6, np.int32), floats(seed=s), floats(seed=s + 9)] for s in range(2)]
    assert_parity(model, ["ONE_HOT"], inputs=inputs)


# -- TOPK_V2 -----------------------------------------------------------------------------------------------

def test_topk_dtypes():
    """Ties (drawn from few distinct values) go to the lower index first, as in TensorFlow.
    int8 input is TOPK_V2 v2, int16 v3."""
    cases = [(lambda a: tf.math.top_k(a, 3), [spec(4, 7, dtype=tf.as_dtype(dtype))],
              [[np.random.default_rng(n + d).integers(-2, 3, [4, 7]).astype(dtype)] for d in range(2)])
             for n, dtype in enumerate(["float32", "int32", "int8", "uint8", "int64", "int16"])]
    check_cases(["TOPK_V2"], cases)


def test_topk_k_input_and_nan():
    """NaN ranks below -inf in TFLite; the builder orders it the same way."""
    model = convert(lambda a, b: tf.math.top_k(a, b), [spec(3, 6), spec(dtype=tf.int32)])
    x = np.array([[np.nan, 1.0, -np.inf, 1.0, np.nan, 0.0],
                  [-0.0, 0.0, np.nan, -np.inf, -np.inf, 2.0],
                  [np.inf, np.nan, 3.0, np.nan, -1.0, np.inf]], np.float32)
    assert_parity(model, ["TOPK_V2"], inputs=[[x, np.array(6, np.int32)], [floats(3, 6), np.array(6, np.int32)]])


# -- ARG_MAX, ARG_MIN ----------------------------------------------------------------------------------------

def test_arg_max_min_axis():
    """Ties (few distinct values) go to the first index; int32 and int64 outputs."""
    def function(a):
        return [f(a, axis, output_type=t)
                for axis in (0, 1, -1) for f in (tf.math.argmax, tf.math.argmin) for t in (tf.int32, tf.int64)]

    model = convert(function, [spec(3, 4, 5)])
    ties = [np.random.default_rng(s).integers(-2, 3, [3, 4, 5]).astype(np.float32) for s in range(2)]
    assert_parity(model, ["ARG_MAX", "ARG_MIN"], inputs=[[t] for t in ties])


def test_arg_max_min_dtypes():
    """int8 input is ARG_MAX/ARG_MIN v2, bool v3."""
    function = lambda a: [tf.math.argmax(a, 1), tf.math.argmin(a, 0, output_type=tf.int32)]  # noqa: E731
    cases = [(function, [spec(4, 6, dtype=tf.as_dtype(dtype))],
              [[np.random.default_rng(n + d).integers(0, 2 if dtype == "bool" else 4, [4, 6]).astype(dtype)] for d in range(2)])
             for n, dtype in enumerate(["int32", "int8", "uint8", "bool"])]
    check_cases(["ARG_MAX", "ARG_MIN"], cases)


def test_arg_max_min_nan():
    """NaN never wins. TFLite's float32 kernel for an axis whose later dimensions are all 1 (axis 1
    here) is a plain scan from element 0, so a slice starting with NaN gives 0; over axis 0 a
    number after a leading NaN wins, as in TensorFlow."""
    model = convert(lambda a, b: [tf.math.argmax(a, b), tf.math.argmin(a, b)], [spec(4, 4, 1), spec(dtype=tf.int32)])
    x = np.array([[np.nan, -np.inf, np.nan, np.nan],
                  [np.nan, np.nan, np.inf, np.nan],
                  [1.0, np.nan, -0.0, np.nan],
                  [np.nan, -1.0, np.inf, np.nan]], np.float32)[..., np.newaxis]
    assert_parity(model, ["ARG_MAX", "ARG_MIN"], inputs=[[x, np.array(0, np.int32)], [x, np.array(1, np.int32)]])


# -- UNIQUE ---------------------------------------------------------------------------------------------------

def test_unique():
    """Both draws are permutations of the same multiset: the same number of unique values."""
    def case(n, dtype, index):
        base = np.array([3, 1, 3, 0, 2, 1, 1, 0, 5, 3], dtype)
        if dtype == "float32":  # -0.0 and 0.0 are one value
            base = np.array([0.75, 0.0, 0.75, -0.0, 0.5, -0.25, -0.25, 0.0, 1.0, 0.75], np.float32)
        return (lambda a: tf.unique(a, out_idx=index), [spec(None, dtype=tf.as_dtype(dtype))],
                [[base], [np.random.default_rng(n).permutation(base)]])

    dtypes = [("float32", tf.int32), ("int32", tf.int64), ("int64", tf.int32), ("int8", tf.int32), ("uint8", tf.int64),
              ("int16", tf.int32)]
    check_cases(["UNIQUE"], [case(n, *d) for n, d in enumerate(dtypes)])


# -- WHERE -------------------------------------------------------------------------------------------------------

def test_where():
    """A bool condition is WHERE v1; a numeric one (non-zero elements) v2."""
    x = floats(3, 4)
    cases = [(lambda a: tf.where(a > 0), [spec(3, 4)], [[x], [x[::-1].copy()]])]
    for dtype in ["float32", "int32", "int64", "int8", "uint8"]:
        y = np.random.default_rng(len(cases)).integers(0, 3, [2, 3, 4]).astype(dtype)
        cases.append((lambda a: tf.where(a), [spec(2, 3, 4, dtype=tf.as_dtype(dtype))], [[y], [y[::-1, ::-1].copy()]]))
    check_cases(["WHERE"], cases)


# -- REVERSE_V2, REVERSE_SEQUENCE -----------------------------------------------------------------------------------

def test_reverse_axes():
    model = convert(lambda a: [tf.reverse(a, axis) for axis in ([1], [-1], [0, 1], [1, 2], [0, 1, 2])], [spec(2, 3, 4)])
    assert_parity(model, ["REVERSE_V2"])


def test_reverse_dtypes():
    """bool input is REVERSE_V2 v2; the axis is a model input."""
    cases = [(lambda a, b: tf.reverse(a, b), [spec(3, 4, dtype=tf.as_dtype(dtype)), spec(1, dtype=tf.int32)],
              [[values(dtype, [3, 4], n + d), np.array([d], np.int32)] for d in range(2)])
             for n, dtype in enumerate(["float32", "int32", "bool", "uint8", "int16", "int64"])]
    check_cases(["REVERSE_V2"], cases)


def test_reverse_sequence():
    """seq_axis/batch_axis in both orders and non-adjacent; lengths 0 and 1 leave a row as is."""
    def function(a, b):
        return [tf.reverse_sequence(a, b, seq_axis=s, batch_axis=t) for s, t in ((1, 0), (0, 1), (2, 0), (0, 2))]

    model = convert(function, [spec(3, 3, 3), spec(3, dtype=tf.int32)])
    lengths = [np.array([0, 3, 2], np.int32), np.array([1, 3, 3], np.int32)]
    assert_parity(model, ["REVERSE_SEQUENCE"], inputs=[[floats(3, 3, 3, seed=s), l] for s, l in enumerate(lengths)])


def test_reverse_sequence_dtypes():
    cases = [(lambda a, b: tf.reverse_sequence(a, b, seq_axis=1, batch_axis=0),
              [spec(2, 5, dtype=tf.as_dtype(dtype)), spec(2, dtype=tf.as_dtype(length))],
              [[values(dtype, [2, 5], d), np.array([[5, 3], [2, 4]][d], length)] for d in range(2)])
             for dtype, length in [("int32", "int64"), ("int64", "int32")]]
    check_cases(["REVERSE_SEQUENCE"], cases)


def test_reverse_retyped():
    """Types the converter refuses for these ops (int8 REVERSE_V2, v3; int16 and uint8
    REVERSE_SEQUENCE), made by converting int32 and retyping the tensors."""
    from flatbuffer_writer import edit
    from tensorflow.lite.python import schema_py_generated as schema

    model = convert(lambda a, b, c, d: [tf.reverse(a, [1]), tf.reverse_sequence(b, c, seq_axis=1, batch_axis=0),
                                        tf.reverse_sequence(d, c, seq_axis=1, batch_axis=0)],
                    [spec(3, 4, dtype=tf.int32), spec(2, 5, dtype=tf.int32), spec(2, dtype=tf.int32), spec(2, 5, dtype=tf.int32)])
    types = {"a": schema.TensorType.INT8, "b": schema.TensorType.INT16, "d": schema.TensorType.UINT8}

    def retype(m):
        sg = m.subgraphs[0]
        inputs = {i.name.decode(): i.tensorIndex for i in m.signatureDefs[0].inputs}
        outputs = {o.name.decode(): o.tensorIndex for o in m.signatureDefs[0].outputs}
        for name, output in zip("abd", ("output_0", "output_1", "output_2")):
            sg.tensors[inputs[name]].type = sg.tensors[outputs[output]].type = types[name]
        for code in m.operatorCodes:
            if code.builtinCode == schema.BuiltinOperator.REVERSE_V2:
                code.version = 3

    model = edit(model, retype)
    inputs = [[values("int8", [3, 4], d), values("int16", [2, 5], d), np.array([[5, 2], [3, 4]][d], np.int32),
               values("uint8", [2, 5], d + 2)] for d in range(2)]
    assert_parity(model, ["REVERSE_V2", "REVERSE_SEQUENCE"], inputs=inputs)


# -- MATRIX_DIAG, MATRIX_SET_DIAG ----------------------------------------------------------------------------------

def test_matrix_diag():
    model = convert(lambda a, b, c: [tf.linalg.diag(a), tf.linalg.diag(b), tf.linalg.diag(c)],
                    [spec(4), spec(2, 3), spec(2, 2, 3, dtype=tf.int32)])
    assert_parity(model, ["MATRIX_DIAG"])


def test_matrix_set_diag():
    """Square, tall, wide and batched matrices."""
    model = convert(lambda a, b, c, d, e, f: [tf.linalg.set_diag(a, b), tf.linalg.set_diag(c, d), tf.linalg.set_diag(e, f)],
                    [spec(4, 3), spec(3), spec(3, 5), spec(3), spec(2, 3, 3, dtype=tf.int32), spec(2, 3, dtype=tf.int32)])
    assert_parity(model, ["MATRIX_SET_DIAG"])


# -- DYNAMIC_UPDATE_SLICE ----------------------------------------------------------------------------------------------

def dynamic_update_slice(a, b, c):
    """XLA's DynamicUpdateSlice (input a, update b, start c), which the converter maps to DYNAMIC_UPDATE_SLICE."""
    from tensorflow.compiler.tf2xla.python import xla

    return xla.dynamic_update_slice(a, b, c)


def test_dynamic_update_slice_clamped():
    """Start indices are clamped so the update fits: [3, 4] writes at [2, 3], [-2, 9] at [0, 3]."""
    starts = [[[1, 2], [3, 4]], [[-2, 9], [0, 0]]]
    cases = [(dynamic_update_slice, [spec(4, 5), spec(2, 2), spec(2, dtype=tf.int32)],
              [[floats(4, 5, seed=n + d), floats(2, 2, seed=n + d + 3), np.array(starts[n][d], np.int32)] for d in range(2)])
             for n in range(2)]
    check_cases(["DYNAMIC_UPDATE_SLICE"], cases)


def test_dynamic_update_slice_dtypes():
    """int64 start indices are DYNAMIC_UPDATE_SLICE v2, int16 data v4."""
    starts = [[1, 1, 1], [-1, 5, 0]]
    dtypes = [("float32", "int64"), ("int32", "int32"), ("int16", "int32"), ("int8", "int32"), ("bool", "int32"),
              ("int64", "int64")]
    cases = [(dynamic_update_slice, [spec(2, 4, 3, dtype=tf.as_dtype(dtype)), spec(1, 3, 2, dtype=tf.as_dtype(dtype)),
                                     spec(3, dtype=tf.as_dtype(index))],
              [[values(dtype, [2, 4, 3], n + d), values(dtype, [1, 3, 2], n + d + 4), np.array(starts[d], index)]
               for d in range(2)])
             for n, (dtype, index) in enumerate(dtypes)]
    check_cases(["DYNAMIC_UPDATE_SLICE"], cases)


# -- BUCKETIZE -----------------------------------------------------------------------------------------------------------

def test_bucketize():
    """A value equal to a boundary goes to the bucket above it (upper bound)."""
    def case(dtype, boundaries, x):
        x = np.array(x, dtype)
        return (lambda a: tf.raw_ops.Bucketize(input=a, boundaries=boundaries), [spec(2, 5, dtype=tf.as_dtype(dtype))],
                [[x], [x[::-1].copy()]])

    check_cases(["BUCKETIZE"], [
        case("float32", [-0.5, 0.0, 0.25, 0.5], [[-0.5, 0.0, 0.25, 0.5, -1.0], [0.1, 0.3, 0.7, -0.2, 0.25]]),
        case("float32", [0.0], [[-0.5, 0.0, 0.25, 0.5, -1.0], [0.1, 0.3, 0.7, -0.2, 0.25]]),
        case("int32", [-3.0, 0.0, 0.5, 7.0], [[-3, 0, 1, 7, -11], [10, 12, -10, 5, 6]]),
        case("int64", [-10.0, 10.0], [[-3, 0, 1, 7, -11], [10, 12, -10, 5, 6]]),
    ])


# -- int8-quantized models -------------------------------------------------------------------------------------------------

def test_quantized_int8():
    """Full-integer int8 model: TOPK_V2 v2, ARG_MAX/ARG_MIN v2 and REVERSE_V2 v3 on int8 activations,
    GATHER_ND on int8; the inverted graph carries real values, ranking and copying them alike."""
    indices = tf.constant([[1, 2], [3, 0], [0, 5]], tf.int32)

    def function(a):
        return [*tf.math.top_k(a, 3), tf.math.argmax(a, 1), tf.math.argmin(a, 0), tf.reverse(a, [1]), tf.gather_nd(a, indices)]

    model = convert(function, [spec(4, 6)], mode="int8")
    assert_parity(model, ["TOPK_V2", "ARG_MAX", "ARG_MIN", "REVERSE_V2", "GATHER_ND"])
