"""Opcode numbers to names.

Names come from the generated readers (the ``tflite`` package, written out below); opcodes added to the
schema after that package was generated are listed in ``NEWER_OPCODES`` so that a model
using them is still named (and reported as unsupported rather than misread).
``schema/opcodes.csv`` at the repository root is the full table; ``schema/check_opcodes.py``
checks this module and the installed readers against it.

An ``OperatorCode`` holds its opcode in two fields: the int8 ``deprecated_builtin_code`` (what
files before schema v3a set, and still the only field of many) and the int32 ``builtin_code``
(what new writers such as ai-edge-quantizer set, leaving the byte field at 0). The schema's rule
is the larger of the two, with 127 in the byte field a placeholder meaning "look in the int
field". :func:`resolve_builtin_code` applies it to the *raw* fields: the ``tflite`` package's
``OperatorCode.BuiltinCode()`` returns the byte field whenever the int field is below 127, so it
reads a DEQUANTIZE (6) written only into the int field as ADD (0).
"""

from __future__ import annotations

# Added to schema.fbs after the generated readers of tflite 2.18.
NEWER_OPCODES: dict[int, str] = {
    209: "STABLEHLO_CASE",
}

NEWER_TENSOR_TYPES: dict[int, str] = {
    19: "INT2",
    20: "UINT4",
}


def _enum_names(enum_class: type) -> dict[int, str]:
    return {
        value: name
        for name, value in vars(enum_class).items()
        if not name.startswith("_") and isinstance(value, int)
    }


# The ``BuiltinOperator`` and ``TensorType`` enums of the generated readers (tflite 2.18), written out
# so that reading a model does not import the ``tflite`` package (~190 modules, ~40 ms: issue 14).
# ``schema/check_opcodes.py`` and tests/test_reader_tables.py check them against the installed readers.
READER_OPCODES: dict[int, str] = {
    0: 'ADD', 1: 'AVERAGE_POOL_2D', 2: 'CONCATENATION', 3: 'CONV_2D', 4: 'DEPTHWISE_CONV_2D', 5: 'DEPTH_TO_SPACE',
    6: 'DEQUANTIZE', 7: 'EMBEDDING_LOOKUP', 8: 'FLOOR', 9: 'FULLY_CONNECTED', 10: 'HASHTABLE_LOOKUP',
    11: 'L2_NORMALIZATION', 12: 'L2_POOL_2D', 13: 'LOCAL_RESPONSE_NORMALIZATION', 14: 'LOGISTIC',
    15: 'LSH_PROJECTION', 16: 'LSTM', 17: 'MAX_POOL_2D', 18: 'MUL', 19: 'RELU', 20: 'RELU_N1_TO_1', 21: 'RELU6',
    22: 'RESHAPE', 23: 'RESIZE_BILINEAR', 24: 'RNN', 25: 'SOFTMAX', 26: 'SPACE_TO_DEPTH', 27: 'SVDF', 28: 'TANH',
    29: 'CONCAT_EMBEDDINGS', 30: 'SKIP_GRAM', 31: 'CALL', 32: 'CUSTOM', 33: 'EMBEDDING_LOOKUP_SPARSE', 34: 'PAD',
    35: 'UNIDIRECTIONAL_SEQUENCE_RNN', 36: 'GATHER', 37: 'BATCH_TO_SPACE_ND', 38: 'SPACE_TO_BATCH_ND',
    39: 'TRANSPOSE', 40: 'MEAN', 41: 'SUB', 42: 'DIV', 43: 'SQUEEZE', 44: 'UNIDIRECTIONAL_SEQUENCE_LSTM',
    45: 'STRIDED_SLICE', 46: 'BIDIRECTIONAL_SEQUENCE_RNN', 47: 'EXP', 48: 'TOPK_V2', 49: 'SPLIT',
    50: 'LOG_SOFTMAX', 51: 'DELEGATE', 52: 'BIDIRECTIONAL_SEQUENCE_LSTM', 53: 'CAST', 54: 'PRELU', 55: 'MAXIMUM',
    56: 'ARG_MAX', 57: 'MINIMUM', 58: 'LESS', 59: 'NEG', 60: 'PADV2', 61: 'GREATER', 62: 'GREATER_EQUAL',
    63: 'LESS_EQUAL', 64: 'SELECT', 65: 'SLICE', 66: 'SIN', 67: 'TRANSPOSE_CONV', 68: 'SPARSE_TO_DENSE',
    69: 'TILE', 70: 'EXPAND_DIMS', 71: 'EQUAL', 72: 'NOT_EQUAL', 73: 'LOG', 74: 'SUM', 75: 'SQRT', 76: 'RSQRT',
    77: 'SHAPE', 78: 'POW', 79: 'ARG_MIN', 80: 'FAKE_QUANT', 81: 'REDUCE_PROD', 82: 'REDUCE_MAX', 83: 'PACK',
    84: 'LOGICAL_OR', 85: 'ONE_HOT', 86: 'LOGICAL_AND', 87: 'LOGICAL_NOT', 88: 'UNPACK', 89: 'REDUCE_MIN',
    90: 'FLOOR_DIV', 91: 'REDUCE_ANY', 92: 'SQUARE', 93: 'ZEROS_LIKE', 94: 'FILL', 95: 'FLOOR_MOD', 96: 'RANGE',
    97: 'RESIZE_NEAREST_NEIGHBOR', 98: 'LEAKY_RELU', 99: 'SQUARED_DIFFERENCE', 100: 'MIRROR_PAD', 101: 'ABS',
    102: 'SPLIT_V', 103: 'UNIQUE', 104: 'CEIL', 105: 'REVERSE_V2', 106: 'ADD_N', 107: 'GATHER_ND', 108: 'COS',
    109: 'WHERE', 110: 'RANK', 111: 'ELU', 112: 'REVERSE_SEQUENCE', 113: 'MATRIX_DIAG', 114: 'QUANTIZE',
    115: 'MATRIX_SET_DIAG', 116: 'ROUND', 117: 'HARD_SWISH', 118: 'IF', 119: 'WHILE',
    120: 'NON_MAX_SUPPRESSION_V4', 121: 'NON_MAX_SUPPRESSION_V5', 122: 'SCATTER_ND', 123: 'SELECT_V2',
    124: 'DENSIFY', 125: 'SEGMENT_SUM', 126: 'BATCH_MATMUL', 127: 'PLACEHOLDER_FOR_GREATER_OP_CODES',
    128: 'CUMSUM', 129: 'CALL_ONCE', 130: 'BROADCAST_TO', 131: 'RFFT2D', 132: 'CONV_3D', 133: 'IMAG', 134: 'REAL',
    135: 'COMPLEX_ABS', 136: 'HASHTABLE', 137: 'HASHTABLE_FIND', 138: 'HASHTABLE_IMPORT', 139: 'HASHTABLE_SIZE',
    140: 'REDUCE_ALL', 141: 'CONV_3D_TRANSPOSE', 142: 'VAR_HANDLE', 143: 'READ_VARIABLE', 144: 'ASSIGN_VARIABLE',
    145: 'BROADCAST_ARGS', 146: 'RANDOM_STANDARD_NORMAL', 147: 'BUCKETIZE', 148: 'RANDOM_UNIFORM',
    149: 'MULTINOMIAL', 150: 'GELU', 151: 'DYNAMIC_UPDATE_SLICE', 152: 'RELU_0_TO_1', 153: 'UNSORTED_SEGMENT_PROD',
    154: 'UNSORTED_SEGMENT_MAX', 155: 'UNSORTED_SEGMENT_SUM', 156: 'ATAN2', 157: 'UNSORTED_SEGMENT_MIN',
    158: 'SIGN', 159: 'BITCAST', 160: 'BITWISE_XOR', 161: 'RIGHT_SHIFT', 162: 'STABLEHLO_LOGISTIC',
    163: 'STABLEHLO_ADD', 164: 'STABLEHLO_DIVIDE', 165: 'STABLEHLO_MULTIPLY', 166: 'STABLEHLO_MAXIMUM',
    167: 'STABLEHLO_RESHAPE', 168: 'STABLEHLO_CLAMP', 169: 'STABLEHLO_CONCATENATE',
    170: 'STABLEHLO_BROADCAST_IN_DIM', 171: 'STABLEHLO_CONVOLUTION', 172: 'STABLEHLO_SLICE',
    173: 'STABLEHLO_CUSTOM_CALL', 174: 'STABLEHLO_REDUCE', 175: 'STABLEHLO_ABS', 176: 'STABLEHLO_AND',
    177: 'STABLEHLO_COSINE', 178: 'STABLEHLO_EXPONENTIAL', 179: 'STABLEHLO_FLOOR', 180: 'STABLEHLO_LOG',
    181: 'STABLEHLO_MINIMUM', 182: 'STABLEHLO_NEGATE', 183: 'STABLEHLO_OR', 184: 'STABLEHLO_POWER',
    185: 'STABLEHLO_REMAINDER', 186: 'STABLEHLO_RSQRT', 187: 'STABLEHLO_SELECT', 188: 'STABLEHLO_SUBTRACT',
    189: 'STABLEHLO_TANH', 190: 'STABLEHLO_SCATTER', 191: 'STABLEHLO_COMPARE', 192: 'STABLEHLO_CONVERT',
    193: 'STABLEHLO_DYNAMIC_SLICE', 194: 'STABLEHLO_DYNAMIC_UPDATE_SLICE', 195: 'STABLEHLO_PAD',
    196: 'STABLEHLO_IOTA', 197: 'STABLEHLO_DOT_GENERAL', 198: 'STABLEHLO_REDUCE_WINDOW', 199: 'STABLEHLO_SORT',
    200: 'STABLEHLO_WHILE', 201: 'STABLEHLO_GATHER', 202: 'STABLEHLO_TRANSPOSE', 203: 'DILATE',
    204: 'STABLEHLO_RNG_BIT_GENERATOR', 205: 'REDUCE_WINDOW', 206: 'STABLEHLO_COMPOSITE',
    207: 'STABLEHLO_SHIFT_LEFT', 208: 'STABLEHLO_CBRT',
}
READER_TENSOR_TYPES: dict[int, str] = {
    0: 'FLOAT32', 1: 'FLOAT16', 2: 'INT32', 3: 'UINT8', 4: 'INT64', 5: 'STRING', 6: 'BOOL', 7: 'INT16',
    8: 'COMPLEX64', 9: 'INT8', 10: 'FLOAT64', 11: 'COMPLEX128', 12: 'UINT64', 13: 'RESOURCE', 14: 'VARIANT',
    15: 'UINT32', 16: 'UINT16', 17: 'INT4', 18: 'BFLOAT16',
}

OPCODE_NAMES: dict[int, str] = {**READER_OPCODES, **NEWER_OPCODES}
TENSOR_TYPE_NAMES: dict[int, str] = {**READER_TENSOR_TYPES, **NEWER_TENSOR_TYPES}

# TensorType name -> numpy-style dtype name used in the IR.
DTYPE_OF_TENSOR_TYPE: dict[str, str] = {
    "FLOAT32": "float32",
    "FLOAT16": "float16",
    "FLOAT64": "float64",
    "BFLOAT16": "bfloat16",
    "INT2": "int2",
    "INT4": "int4",
    "UINT4": "uint4",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT16": "int16",
    "UINT16": "uint16",
    "INT32": "int32",
    "UINT32": "uint32",
    "INT64": "int64",
    "UINT64": "uint64",
    "BOOL": "bool",
    "STRING": "string",
    "COMPLEX64": "complex64",
    "COMPLEX128": "complex128",
    "RESOURCE": "resource",
    "VARIANT": "variant",
}


PLACEHOLDER_FOR_GREATER_OP_CODES = 127


def resolve_builtin_code(deprecated: int | None, builtin: int | None) -> int:
    """The opcode number from the raw ``deprecated_builtin_code`` and ``builtin_code`` fields
    (``None`` for a field absent from the table: both default to 0, ADD).

    Raises ``ValueError`` for a negative code or a placeholder with nothing in the int field."""
    byte_field = 0 if deprecated is None else int(deprecated)
    int_field = 0 if builtin is None else int(builtin)
    if byte_field < 0 or int_field < 0:
        raise ValueError(f"negative opcode (deprecated_builtin_code={byte_field}, builtin_code={int_field})")
    if byte_field == PLACEHOLDER_FOR_GREATER_OP_CODES:
        if builtin is None:
            raise ValueError("deprecated_builtin_code is the placeholder 127 but builtin_code is absent")
        return int_field
    return max(byte_field, int_field)


def opcode_name(code: int) -> str:
    return OPCODE_NAMES.get(code, f"UNKNOWN_OPCODE_{code}")
