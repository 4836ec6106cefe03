"""Declared operator signatures: what an operator needs before a builder may see it. No TensorFlow.

An :class:`OpSignature` says how many inputs and outputs an operator takes, which inputs must be
present, the ranks and dtypes they may have, the options that must be set, whether it may produce
RESOURCE / VARIANT tensors, and extra ``checks`` for shape relations the kernels need (a
TRANSPOSE_CONV's ``output_shape`` against its input and filter). ``passes/validate.py`` checks every
operator against the signature of its opcode; ``ops/registry.py`` attaches it to the op's ``OpSpec``.

An opcode without an entry gets only the generic checks (strides and filter sizes positive, subgraph
references in range, no RESOURCE outputs). A user registering a builder can pass ``signature=`` to
``register``; it lands in this table through :func:`declare`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from .. import ir


class OpView:
    """What a check may look at: the operator and its tensors (static shapes, constant values)."""

    def __init__(self, model: ir.Model, subgraph: ir.Subgraph, op: ir.Operator):
        self.model = model
        self.subgraph = subgraph
        self.op = op

    @property
    def options(self) -> Mapping[str, Any]:
        return self.op.options

    def input(self, position: int) -> ir.Tensor | None:
        if position >= len(self.op.inputs) or self.op.inputs[position] is None:
            return None
        return self.subgraph.tensors[self.op.inputs[position]]

    def output(self, position: int) -> ir.Tensor | None:
        if position >= len(self.op.outputs) or self.op.outputs[position] is None:
            return None
        return self.subgraph.tensors[self.op.outputs[position]]

    def constant(self, position: int) -> np.ndarray | None:
        """Input ``position`` as integers if it is a dense constant of a plain numeric dtype."""
        tensor = self.input(position)
        if tensor is None or tensor.data is None or tensor.sparsity is not None or tensor.dtype not in ir.NUMPY_DTYPES:
            return None
        return np.asarray(tensor.data)

    @staticmethod
    def static_shape(tensor: ir.Tensor | None) -> tuple[int | None, ...] | None:
        """The shape with ``None`` for dynamic dimensions; ``None`` when the rank is unknown."""
        if tensor is None or not tensor.has_rank:
            return None
        return tuple(None if d < 0 else d for d in tensor.shape_signature)


Check = Callable[[OpView], "str | None"]
ANY = None


@dataclass(frozen=True)
class OpSignature:
    inputs: tuple[int, int | None] = (0, None)  # allowed number of input slots (optional ones included)
    required: int | None = None  # the first ``required`` inputs may not be -1 (default: inputs[0])
    outputs: tuple[int, int | None] = (0, None)
    options: tuple[str, ...] = ()  # option fields that must be present (the options table must be there)
    ranks: Mapping[int, tuple[int, int]] = field(default_factory=dict)  # input position -> (min, max) rank
    dtypes: Mapping[int, frozenset[str]] = field(default_factory=dict)  # input position -> allowed dtypes
    output_dtypes: Mapping[int, frozenset[str]] = field(default_factory=dict)
    resource_outputs: bool = False  # may produce RESOURCE / VARIANT tensors
    checks: tuple[Check, ...] = ()  # check(view) -> None, or the reason the operator is invalid

    @property
    def required_inputs(self) -> int:
        return self.inputs[0] if self.required is None else self.required


_SIGNATURES: dict[str, OpSignature] = {}


def declare(opcode: str, signature: OpSignature) -> None:
    _SIGNATURES[opcode] = signature


def signature_of(opcode: str) -> OpSignature | None:
    signature = _SIGNATURES.get(opcode)
    if signature is None and opcode.startswith("CUSTOM:Flex"):
        return _SIGNATURES.get("CUSTOM:Flex*")
    return signature


def signatures() -> Mapping[str, OpSignature]:
    return MappingProxyType(_SIGNATURES)


# -- dtype sets -----------------------------------------------------------------------------------
INDEX = frozenset({"int32", "int64"})
INT32 = frozenset({"int32"})
RESOURCE = frozenset({"resource"})
TABLE_DTYPES = ("STRING", "INT64", "INT32", "FLOAT32", "BOOL", "FLOAT16", "INT8", "UINT8", "INT16", "FLOAT64")


def _shape_text(shape: tuple[int | None, ...]) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in shape) + "]"


# -- checks ------------------------------------------------------------------------------------------
def _window_input_size(out: int, kernel: int, stride: int, padding: str) -> int:
    """The input size TensorFlow's Conv2DBackpropInput computes from an output (transposed-conv) size."""
    if padding == "VALID":
        return (out - kernel + stride) // stride
    return (out + stride - 1) // stride


def check_transpose_conv(view: OpView) -> str | None:
    output_shape = view.constant(0)
    weights, x = view.static_shape(view.input(1)), view.static_shape(view.input(2))
    if output_shape is None:
        return None  # computed at run time: TensorFlow's kernel checks it
    if output_shape.ndim != 1 or output_shape.size != 4:
        return f"output_shape {output_shape.tolist()} is not 4 sizes (NHWC)"
    if np.any(output_shape <= 0):
        return f"output_shape {output_shape.tolist()} has a size below 1"
    n, h, w, c = (int(v) for v in output_shape)
    recorded = view.static_shape(view.output(0))
    if recorded is not None and len(recorded) == 4 and any(
            r is not None and r != v for r, v in zip(recorded, (n, h, w, c))):
        return f"output_shape {output_shape.tolist()} differs from the output tensor's shape {_shape_text(recorded)}"
    if weights is None or x is None:
        return None
    if weights[0] is not None and weights[0] != c:
        return f"output_shape {output_shape.tolist()} has {c} channels, the filter {_shape_text(weights)} makes {weights[0]}"
    if weights[3] is not None and x[3] is not None and weights[3] != x[3]:
        return f"the filter {_shape_text(weights)} takes {weights[3]} channels, the input {_shape_text(x)} has {x[3]}"
    if x[0] is not None and x[0] != n:
        return f"output_shape {output_shape.tolist()} has batch {n}, the input {_shape_text(x)} has {x[0]}"
    padding = view.options.get("padding", "SAME")
    for axis, out, kernel, stride_key in ((1, h, weights[1], "stride_h"), (2, w, weights[2], "stride_w")):
        stride = view.options.get(stride_key, 1)
        if kernel is None or x[axis] is None or not isinstance(stride, int) or stride < 1:
            continue
        expected = _window_input_size(out, kernel, stride, padding)
        if expected != x[axis]:
            return (f"output_shape {output_shape.tolist()} with a {kernel}-wide filter, stride {stride} and {padding} "
                    f"padding needs an input of size {expected} on axis {axis}; the input {_shape_text(x)} has {x[axis]}")
    return None


def check_conv_2d(view: OpView) -> str | None:
    x, weights = view.static_shape(view.input(0)), view.static_shape(view.input(1))
    if x is None or weights is None or len(x) != 4 or len(weights) != 4:
        return None
    if weights[3] is not None and weights[3] == 0:
        return f"the filter {_shape_text(weights)} takes no input channels"
    if x[3] is not None and weights[3] is not None and x[3] % weights[3]:
        return f"the input {_shape_text(x)} has {x[3]} channels, not a multiple of the filter's {weights[3]}"
    if x[3] is not None and weights[3] is not None and weights[0] is not None and weights[0] % (x[3] // weights[3]):
        return f"{weights[0]} filters cannot be split into {x[3] // weights[3]} groups"
    return _check_bias(view, weights[0], 2)


def check_depthwise_conv_2d(view: OpView) -> str | None:
    x, weights = view.static_shape(view.input(0)), view.static_shape(view.input(1))
    if x is None or weights is None or len(x) != 4 or len(weights) != 4:
        return None
    if weights[0] is not None and weights[0] != 1:
        return f"the depthwise filter {_shape_text(weights)} must have 1 as its first dimension"
    if x[3] is not None and weights[3] is not None and (x[3] == 0 or weights[3] % x[3]):
        return f"the filter {_shape_text(weights)} has {weights[3]} channels, not a multiple of the input's {x[3]}"
    return _check_bias(view, weights[3], 2)


def check_fully_connected(view: OpView) -> str | None:
    x, weights = view.static_shape(view.input(0)), view.static_shape(view.input(1))
    if weights is None or len(weights) != 2:
        return None
    if x is not None and x and None not in x and weights[1] is not None:
        elements = int(np.prod(x, dtype=np.int64))
        if weights[1] == 0 or elements % weights[1]:
            return f"the input {_shape_text(x)} ({elements} values) cannot be read as rows of {weights[1]}"
    return _check_bias(view, weights[0], 2)


def _check_bias(view: OpView, channels: int | None, position: int) -> str | None:
    bias = view.static_shape(view.input(position))
    if bias is None or channels is None:
        return None
    size = int(np.prod([d for d in bias if d is not None], dtype=np.int64)) if bias else 1
    if None not in bias and size != channels:
        return f"the bias {view.input(position).name!r} {_shape_text(bias)} does not have one value per output channel ({channels})"
    return None


def check_resize(view: OpView) -> str | None:
    if view.options.get("align_corners") and view.options.get("half_pixel_centers"):
        return "align_corners and half_pixel_centers are both set (the kernels take one or neither)"
    size = view.constant(1)
    if size is not None and (size.size != 2 or np.any(size <= 0)):
        return f"size {size.tolist()} is not two positive sizes"
    return None


def check_split(view: OpView) -> str | None:
    count = view.options.get("num_splits")
    if not isinstance(count, int) or count < 1:
        return f"num_splits {count} is below 1"
    if len(view.op.outputs) != count:
        return f"num_splits is {count} but the operator has {len(view.op.outputs)} outputs"
    axis, x = view.constant(0), view.static_shape(view.input(1))
    if axis is None or x is None:
        return None
    if axis.size != 1:
        return f"axis {axis.tolist()} is not one value"
    a = int(axis.reshape(-1)[0])
    if not -len(x) <= a < len(x):
        return f"axis {a} is out of range for the input {_shape_text(x)}"
    size = x[a]
    if size is not None and size % count:
        return f"dimension {a} of the input {_shape_text(x)} does not split into {count} equal parts"
    return None


def check_split_v(view: OpView) -> str | None:
    count = view.options.get("num_splits")
    if not isinstance(count, int) or count < 1:
        return f"num_splits {count} is below 1"
    if len(view.op.outputs) != count:
        return f"num_splits is {count} but the operator has {len(view.op.outputs)} outputs"
    sizes = view.constant(1)
    if sizes is not None and sizes.size != count:
        return f"size_splits {sizes.tolist()} does not give {count} sizes"
    return None


def check_reshape(view: OpView) -> str | None:
    # LiteRT's rule (ShapeIsVector): the shape operand counts only if it is a 1-D int32 tensor;
    # otherwise ReshapeOptions.new_shape gives the shape (ops/shape.py follows the same rule).
    operand = view.input(1)
    used = operand is not None and operand.has_rank and len(operand.shape) == 1 and operand.dtype == "int32"
    shape = view.constant(1) if used else None
    if shape is None and not used and "new_shape" in view.options:
        shape = np.asarray(view.options["new_shape"], np.int64)
        if shape.tolist() == [0]:
            shape = np.zeros([0], np.int64)  # [0]: a scalar in legacy models
    if shape is None:
        return None
    if shape.ndim > 1:
        return f"the new shape {shape.tolist()} is not a vector"
    values = [int(v) for v in shape.reshape(-1)]
    if sum(v == -1 for v in values) > 1 or any(v < -1 for v in values):
        return f"the new shape {values} has more than one -1 or a negative size"
    x = view.static_shape(view.input(0))
    if x is None or None in x:
        return None
    elements = int(np.prod(x, dtype=np.int64))
    known = int(np.prod([v for v in values if v != -1], dtype=np.int64))
    if (-1 not in values and known != elements) or (-1 in values and (known == 0 or elements % known)):
        return f"the input {_shape_text(x)} ({elements} values) cannot be reshaped to {values}"
    return None


def check_concatenation(view: OpView) -> str | None:
    ranks = {len(s) for i in range(len(view.op.inputs)) if (s := view.static_shape(view.input(i))) is not None}
    axis = view.options.get("axis", 0)
    if len(ranks) > 1:
        return f"inputs of ranks {sorted(ranks)} cannot be concatenated"
    if ranks and not -max(ranks) <= axis < max(ranks, default=0):
        return f"axis {axis} is out of range for inputs of rank {max(ranks)}"
    return None


def check_hashtable(view: OpView) -> str | None:
    for key in ("key_dtype", "value_dtype"):
        if view.options.get(key) not in TABLE_DTYPES:
            return f"{key} {view.options.get(key)!r} is not a type a hash table can hold"
    return None


def check_while(view: OpView) -> str | None:
    cond, body = view.options.get("cond_subgraph_index"), view.options.get("body_subgraph_index")
    subgraphs = view.model.subgraphs
    if not (isinstance(cond, int) and isinstance(body, int) and 0 <= cond < len(subgraphs) and 0 <= body < len(subgraphs)):
        return None  # reported by the subgraph-reference check
    n = len(view.op.inputs)
    if len(subgraphs[body].inputs) != n or len(subgraphs[body].outputs) != n or len(view.op.outputs) != n:
        return (f"{n} loop values, but the body subgraph {body} takes {len(subgraphs[body].inputs)} and returns "
                f"{len(subgraphs[body].outputs)}, and the operator has {len(view.op.outputs)} outputs")
    if len(subgraphs[cond].inputs) != n or len(subgraphs[cond].outputs) != 1:
        return (f"the cond subgraph {cond} takes {len(subgraphs[cond].inputs)} values and returns "
                f"{len(subgraphs[cond].outputs)}; the loop has {n} values and needs one predicate")
    return None


def check_if(view: OpView) -> str | None:
    subgraphs = view.model.subgraphs
    operands = len(view.op.inputs) - 1
    for key in ("then_subgraph_index", "else_subgraph_index"):
        index = view.options.get(key)
        if not isinstance(index, int) or not 0 <= index < len(subgraphs):
            return None
        branch = subgraphs[index]
        if len(branch.inputs) != operands or len(branch.outputs) != len(view.op.outputs):
            return (f"{key} {index} takes {len(branch.inputs)} values and returns {len(branch.outputs)}; the operator "
                    f"passes {operands} and has {len(view.op.outputs)} outputs")
    return None


def check_call(view: OpView) -> str | None:
    index = view.options.get("subgraph")
    subgraphs = view.model.subgraphs
    if not isinstance(index, int) or not 0 <= index < len(subgraphs):
        return None
    callee = subgraphs[index]
    if len(callee.inputs) != len(view.op.inputs) or len(callee.outputs) != len(view.op.outputs):
        return (f"subgraph {index} takes {len(callee.inputs)} values and returns {len(callee.outputs)}; the operator "
                f"passes {len(view.op.inputs)} and has {len(view.op.outputs)} outputs")
    return None


def check_call_once(view: OpView) -> str | None:
    index = view.options.get("init_subgraph_index")
    subgraphs = view.model.subgraphs
    if isinstance(index, int) and 0 <= index < len(subgraphs) and subgraphs[index].inputs:
        return f"init subgraph {index} takes {len(subgraphs[index].inputs)} inputs; CALL_ONCE passes none"
    return None


def check_pack(view: OpView) -> str | None:
    count = view.options.get("values_count")
    if count != len(view.op.inputs):
        return f"values_count is {count} but the operator has {len(view.op.inputs)} inputs"
    return None


def check_unpack(view: OpView) -> str | None:
    count = view.options.get("num")
    if count != len(view.op.outputs):
        return f"num is {count} but the operator has {len(view.op.outputs)} outputs"
    return None


# -- the table -----------------------------------------------------------------------------------------
def _sig(**kwargs: Any) -> OpSignature:
    for key in ("ranks", "dtypes", "output_dtypes"):
        kwargs[key] = MappingProxyType(dict(kwargs.get(key, {})))
    return OpSignature(**kwargs)


_CONV_OPTIONS = ("padding", "stride_h", "stride_w", "dilation_h_factor", "dilation_w_factor")
_POOL_OPTIONS = ("padding", "stride_h", "stride_w", "filter_height", "filter_width")

for _opcode, _signature in {
    "CONV_2D": _sig(inputs=(2, 3), outputs=(1, 1), options=_CONV_OPTIONS, ranks={0: (4, 4), 1: (4, 4)},
                    checks=(check_conv_2d,)),
    "DEPTHWISE_CONV_2D": _sig(inputs=(2, 3), outputs=(1, 1), options=_CONV_OPTIONS + ("depth_multiplier",),
                              ranks={0: (4, 4), 1: (4, 4)}, checks=(check_depthwise_conv_2d,)),
    "TRANSPOSE_CONV": _sig(inputs=(3, 4), outputs=(1, 1), options=("padding", "stride_h", "stride_w"),
                           ranks={0: (1, 1), 1: (4, 4), 2: (4, 4)}, dtypes={0: INDEX}, checks=(check_transpose_conv,)),
    "FULLY_CONNECTED": _sig(inputs=(2, 3), outputs=(1, 2), ranks={1: (2, 2)}, checks=(check_fully_connected,)),
    "AVERAGE_POOL_2D": _sig(inputs=(1, 1), outputs=(1, 1), options=_POOL_OPTIONS, ranks={0: (4, 4)}),
    "MAX_POOL_2D": _sig(inputs=(1, 1), outputs=(1, 1), options=_POOL_OPTIONS, ranks={0: (4, 4)}),
    "L2_POOL_2D": _sig(inputs=(1, 1), outputs=(1, 1), options=_POOL_OPTIONS, ranks={0: (4, 4)}),
    "RESIZE_BILINEAR": _sig(inputs=(2, 2), outputs=(1, 1), ranks={0: (4, 4), 1: (1, 1)}, dtypes={1: INT32},
                            checks=(check_resize,)),
    "RESIZE_NEAREST_NEIGHBOR": _sig(inputs=(2, 2), outputs=(1, 1), ranks={0: (4, 4), 1: (1, 1)}, dtypes={1: INT32},
                                    checks=(check_resize,)),
    "SPLIT": _sig(inputs=(2, 2), outputs=(1, None), options=("num_splits",), ranks={0: (0, 1)}, dtypes={0: INT32},
                  checks=(check_split,)),
    "SPLIT_V": _sig(inputs=(3, 3), outputs=(1, None), options=("num_splits",), ranks={1: (1, 1), 2: (0, 1)},
                    dtypes={1: INDEX, 2: INT32}, checks=(check_split_v,)),
    "RESHAPE": _sig(inputs=(1, 2), outputs=(1, 1), checks=(check_reshape,)),
    "CONCATENATION": _sig(inputs=(1, None), outputs=(1, 1), options=("axis",), checks=(check_concatenation,)),
    "SOFTMAX": _sig(inputs=(1, 1), outputs=(1, 1), ranks={0: (1, 8)}),
    "LOGISTIC": _sig(inputs=(1, 1), outputs=(1, 1)),
    "TANH": _sig(inputs=(1, 1), outputs=(1, 1)),
    "RELU": _sig(inputs=(1, 1), outputs=(1, 1)),
    "RELU6": _sig(inputs=(1, 1), outputs=(1, 1)),
    "ADD": _sig(inputs=(2, 2), outputs=(1, 1)),
    "SUB": _sig(inputs=(2, 2), outputs=(1, 1)),
    "MUL": _sig(inputs=(2, 2), outputs=(1, 1)),
    "DIV": _sig(inputs=(2, 2), outputs=(1, 1)),
    "MAXIMUM": _sig(inputs=(2, 2), outputs=(1, 1)),
    "MINIMUM": _sig(inputs=(2, 2), outputs=(1, 1)),
    "MEAN": _sig(inputs=(2, 2), outputs=(1, 1), dtypes={1: INDEX}),
    "PAD": _sig(inputs=(2, 2), outputs=(1, 1), ranks={1: (2, 2)}, dtypes={1: INDEX}),
    "PADV2": _sig(inputs=(3, 3), outputs=(1, 1), ranks={1: (2, 2)}, dtypes={1: INDEX}),
    "TRANSPOSE": _sig(inputs=(2, 2), outputs=(1, 1), ranks={1: (1, 1)}, dtypes={1: INDEX}),
    "PACK": _sig(inputs=(1, None), outputs=(1, 1), options=("values_count", "axis"), checks=(check_pack,)),
    "UNPACK": _sig(inputs=(1, 1), outputs=(1, None), options=("num", "axis"), checks=(check_unpack,)),
    "STRIDED_SLICE": _sig(inputs=(4, 4), outputs=(1, 1), ranks={1: (1, 1), 2: (1, 1), 3: (1, 1)},
                          dtypes={1: INDEX, 2: INDEX, 3: INDEX}),
    "SLICE": _sig(inputs=(3, 3), outputs=(1, 1), ranks={1: (1, 1), 2: (1, 1)}, dtypes={1: INDEX, 2: INDEX}),
    "GATHER": _sig(inputs=(2, 2), outputs=(1, 1), dtypes={1: INDEX | frozenset({"int16", "int8"})}),
    "EXPAND_DIMS": _sig(inputs=(2, 2), outputs=(1, 1), dtypes={1: INDEX}),
    "SQUEEZE": _sig(inputs=(1, 1), outputs=(1, 1)),
    "SHAPE": _sig(inputs=(1, 1), outputs=(1, 1)),
    "CAST": _sig(inputs=(1, 1), outputs=(1, 1)),
    "TILE": _sig(inputs=(2, 2), outputs=(1, 1), ranks={1: (1, 1)}, dtypes={1: INDEX}),
    "BATCH_MATMUL": _sig(inputs=(2, 2), outputs=(1, 1)),
    "ARG_MAX": _sig(inputs=(2, 2), outputs=(1, 1), dtypes={1: INDEX}),
    "ARG_MIN": _sig(inputs=(2, 2), outputs=(1, 1), dtypes={1: INDEX}),
    "SUM": _sig(inputs=(2, 2), outputs=(1, 1), dtypes={1: INDEX}),
    "REDUCE_MAX": _sig(inputs=(2, 2), outputs=(1, 1), dtypes={1: INDEX}),
    "REDUCE_MIN": _sig(inputs=(2, 2), outputs=(1, 1), dtypes={1: INDEX}),
    "REDUCE_PROD": _sig(inputs=(2, 2), outputs=(1, 1), dtypes={1: INDEX}),
    "PRELU": _sig(inputs=(2, 2), outputs=(1, 1)),
    "LEAKY_RELU": _sig(inputs=(1, 1), outputs=(1, 1)),
    "HARD_SWISH": _sig(inputs=(1, 1), outputs=(1, 1)),
    "LESS": _sig(inputs=(2, 2), outputs=(1, 1)),
    "GREATER": _sig(inputs=(2, 2), outputs=(1, 1)),
    "DEQUANTIZE": _sig(inputs=(1, 1), outputs=(1, 1)),
    "QUANTIZE": _sig(inputs=(1, 1), outputs=(1, 1)),
    "WHILE": _sig(outputs=(0, None), options=("cond_subgraph_index", "body_subgraph_index"), resource_outputs=True,
                  checks=(check_while,)),
    "IF": _sig(inputs=(1, None), outputs=(0, None), options=("then_subgraph_index", "else_subgraph_index"),
               resource_outputs=True, checks=(check_if,)),
    "CALL": _sig(options=("subgraph",), resource_outputs=True, checks=(check_call,)),
    "CALL_ONCE": _sig(inputs=(0, 0), outputs=(0, 0), options=("init_subgraph_index",), checks=(check_call_once,)),
    "VAR_HANDLE": _sig(inputs=(0, 0), outputs=(1, 1), output_dtypes={0: RESOURCE}, resource_outputs=True),
    "READ_VARIABLE": _sig(inputs=(1, 1), outputs=(1, 1), dtypes={0: RESOURCE}),
    "ASSIGN_VARIABLE": _sig(inputs=(2, 2), outputs=(0, 0), dtypes={0: RESOURCE}),
    "HASHTABLE": _sig(inputs=(0, 0), outputs=(1, 1), options=("table_id", "key_dtype", "value_dtype"),
                      output_dtypes={0: RESOURCE}, resource_outputs=True, checks=(check_hashtable,)),
    "HASHTABLE_FIND": _sig(inputs=(3, 3), outputs=(1, 1), dtypes={0: RESOURCE}),
    "HASHTABLE_IMPORT": _sig(inputs=(3, 3), outputs=(0, 0), dtypes={0: RESOURCE}),
    "HASHTABLE_SIZE": _sig(inputs=(1, 1), outputs=(1, 1), dtypes={0: RESOURCE}),
    "CUSTOM:Flex*": _sig(resource_outputs=True),
}.items():
    declare(_opcode, _signature)
