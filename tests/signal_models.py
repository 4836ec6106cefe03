"""Writing one-op and chained models of TFLite Micro's signal-library custom ops with the schema
object API (flexbuffer options as TFLM's Python tools write them), and running their inversions:
shared by tests/ops/test_signal_*.py."""

from __future__ import annotations

import numpy as np
from flatbuffers import flexbuffers
from tensorflow.lite.python import schema_py_generated as schema

from flatbuffer_writer import pack

TYPES = {np.float32: schema.TensorType.FLOAT32, np.int16: schema.TensorType.INT16, np.int32: schema.TensorType.INT32,
         np.uint32: schema.TensorType.UINT32, np.uint64: schema.TensorType.UINT64, np.bool_: schema.TensorType.BOOL}
T_FLOAT32, T_INT32, T_INT16 = 0, 2, 7


def signal_model(tensors: dict, inputs: list, outputs: list, ops: list) -> bytes:
    """``tensors``: name -> (numpy dtype, shape, constant data or None); ``ops``:
    (custom code, input names, output names, options dict), or (builtin name such as ``"CAST"``,
    inputs, outputs, None) for a builtin operator without options."""
    model = schema.ModelT()
    model.version, model.description = 3, "signal library test"
    model.buffers = [schema.BufferT()]
    model.operatorCodes = []
    sg = schema.SubGraphT()
    sg.tensors, names = [], list(tensors)
    for name, (dtype, shape, data) in tensors.items():
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type = name, list(shape), TYPES[dtype]
        buffer = schema.BufferT()
        if data is not None:
            buffer.data = list(np.asarray(data, dtype).reshape(-1).view(np.uint8))
        model.buffers.append(buffer)
        tensor.buffer = len(model.buffers) - 1
        sg.tensors.append(tensor)
    sg.inputs, sg.outputs = [names.index(n) for n in inputs], [names.index(n) for n in outputs]
    sg.operators = []
    codes: dict[str, int] = {}
    for code, op_inputs, op_outputs, options in ops:
        if code not in codes:
            opcode = schema.OperatorCodeT()
            if code.isupper():
                opcode.builtinCode = opcode.deprecatedBuiltinCode = getattr(schema.BuiltinOperator, code)
            else:
                opcode.builtinCode = opcode.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
                opcode.customCode = code
            opcode.version = 1
            model.operatorCodes.append(opcode)
            codes[code] = len(model.operatorCodes) - 1
        op = schema.OperatorT()
        op.opcodeIndex = codes[code]
        op.inputs, op.outputs = [names.index(n) for n in op_inputs], [names.index(n) for n in op_outputs]
        if not code.isupper():  # a custom op; an upper-case code is a builtin without options
            op.customOptions = list(flexbuffers.Dumps(options))
            op.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS
        sg.operators.append(op)
    model.subgraphs = [sg]
    return pack(model)


def one_op(code: str, inputs: dict, outputs: dict, options: dict, constants: dict | None = None) -> bytes:
    constants = constants or {}
    tensors = {**{n: (d, s, None) for n, (d, s) in inputs.items()},
               **{n: (np.asarray(v).dtype.type, np.shape(v), v) for n, v in constants.items()},
               **{n: (d, s, None) for n, (d, s) in outputs.items()}}
    return signal_model(tensors, list(inputs), list(outputs), [(code, list(inputs) + list(constants), list(outputs), options)])


def run(inverted, *values):
    return [np.asarray(v) for v in inverted.run(list(values)).values()]


def assert_same(actual, expected):
    assert actual.dtype == np.asarray(expected).dtype, (actual.dtype, np.asarray(expected).dtype)
    np.testing.assert_array_equal(actual, expected)


def assert_float_close(actual, expected):
    """Float radix-5 butterflies: Grappler's arithmetic optimizer regroups KissFFT's three-term
    sums (AddN), which moves results by an ulp or two; everything else is bit-exact."""
    assert actual.dtype == expected.dtype == np.float32
    np.testing.assert_allclose(actual, expected, rtol=0, atol=4e-7 * float(np.abs(expected).max()))
    assert not np.array_equal(actual, np.zeros_like(actual))


RNG = np.random.default_rng(20261201)


def int16s(*shape, low=-32768, high=32768):
    return RNG.integers(low, high, shape).astype(np.int16)


def filter_bank_config(num_channels, bins, first=1, end=None):
    """Channels over bins first..end-1 (end defaults to bins)."""
    end = bins if end is None else end
    starts = np.sort(RNG.choice(np.arange(first, end - 6), num_channels + 1, replace=False)).astype(np.int16)
    widths = np.array([max(1, min(6, end - s)) for s in starts], np.int16)
    weight_starts = np.concatenate([[0], np.cumsum(widths[:-1])]).astype(np.int16)
    weights = RNG.integers(0, 4097, int(widths.sum())).astype(np.int16)
    return weights, (4096 - weights).astype(np.int16), starts, weight_starts, widths
