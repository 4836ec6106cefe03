"""What builders see: the build context, dtypes in the graph, and fused activations (the one place)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from .. import ir
from ..errors import BuildError, TfliteInverterError
from ..quant.grids import is_quantized_activation

TF_DTYPES: dict[str, tf.DType] = {
    "float32": tf.float32, "float16": tf.float16, "float64": tf.float64, "bfloat16": tf.bfloat16,
    "int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16, "uint16": tf.uint16,
    "int32": tf.int32, "uint32": tf.uint32, "int64": tf.int64, "uint64": tf.uint64,
    "bool": tf.bool, "string": tf.string, "complex64": tf.complex64, "complex128": tf.complex128,
    "resource": tf.resource, "variant": tf.variant, "int4": tf.int8, "uint4": tf.uint8, "int2": tf.int8,
}

_ACTIVATIONS = {
    "NONE": lambda x: x,
    "RELU": tf.nn.relu,
    "RELU_N1_TO_1": lambda x: tf.clip_by_value(x, -1.0, 1.0),
    "RELU6": tf.nn.relu6,
    "TANH": tf.math.tanh,
}


def apply_fused_activation(x: tf.Tensor, activation: str) -> tf.Tensor:
    """The one place fused activations are applied; an unknown activation raises."""
    try:
        function = _ACTIVATIONS[activation]
    except KeyError:
        raise TfliteInverterError(f"unsupported fused activation {activation!r}") from None
    return function(x)


def graph_dtype(tensor: ir.Tensor) -> tf.DType:
    """The dtype a tensor has in the inverted graph: quantized activations are carried as their
    real (float32) values; everything else keeps its TFLite type."""
    return tf.float32 if is_quantized_activation(tensor) else TF_DTYPES[tensor.dtype]


def output_name(sg: ir.Subgraph, op: ir.Operator) -> str:
    return sg.tensors[op.outputs[0]].name if op.outputs and op.outputs[0] is not None else "?"


class BuildContext:
    """What a builder (or folder) may know about its operator, without touching files."""

    def __init__(self, model: ir.Model, subgraph: ir.Subgraph, op: ir.Operator, constants: Mapping[int, np.ndarray],
                 runtime: Any = None):
        self.model = model
        self.subgraph = subgraph
        self.op = op
        self._constants = constants
        self._runtime = runtime

    @property
    def options(self) -> Mapping[str, Any]:
        return self.op.options

    def input_tensor(self, position: int) -> ir.Tensor | None:
        if position >= len(self.op.inputs) or self.op.inputs[position] is None:
            return None
        return self.subgraph.tensors[self.op.inputs[position]]

    def output_tensor(self, position: int) -> ir.Tensor:
        return self.subgraph.tensors[self.op.outputs[position]]

    def constant(self, position: int) -> np.ndarray | None:
        """Input ``position`` as numpy if it is constant (after folding), in TFLite layout, as the
        file stores it (integers for a quantized weight; the builder sees real values as inputs)."""
        if position >= len(self.op.inputs) or self.op.inputs[position] is None:
            return None
        return self._constants.get(self.op.inputs[position])

    def output_dtype(self, position: int = 0) -> tf.DType:
        """The dtype output ``position`` has in the graph (float32 for a quantized activation)."""
        return graph_dtype(self.output_tensor(position))

    def output_shape(self, position: int = 0) -> list[int | None]:
        """Static output shape from the file, ``None`` where the dimension is dynamic."""
        return [None if d < 0 else d for d in self.output_tensor(position).shape_signature]

    def run_subgraph(self, index: int, inputs: Sequence[tf.Tensor]) -> list[tf.Tensor]:
        """Trace subgraph ``index`` on ``inputs`` (in its input order); its outputs in order.
        For control flow (WHILE, IF, CALL_ONCE): the builder decides where the trace happens."""
        if self._runtime is None or not 0 <= index < len(self.model.subgraphs):
            raise self.fail(f"cannot run subgraph {index}")
        sg = self.model.subgraphs[index]
        if len(inputs) != len(sg.inputs):
            raise self.fail(f"subgraph {index} takes {len(sg.inputs)} inputs, got {len(inputs)}")
        values = self._runtime.run_subgraph(index, dict(zip(sg.inputs, inputs)))
        return [values[i] if i in values else self._runtime.constant_tensor(index, i) for i in sg.outputs]

    @property
    def quantized_mode(self) -> str:
        """``fake_quant`` or ``dequantize``: how the inversion treats quantized models."""
        return self._runtime.quantized_mode if self._runtime is not None else "fake_quant"

    @property
    def integer_rescale(self) -> bool:
        """Whether 8-bit kernels' output rescaling is emulated exactly (``invert(integer_rescale=True)``)."""
        return bool(getattr(self._runtime, "integer_rescale", False))

    def resource(self, key: str):
        """The module-level state object (tf.Variable, hash table) for a TFLite resource key."""
        if self._runtime is None or key not in self._runtime.resources:
            raise self.fail(f"no resource {key!r}")
        return self._runtime.resources[key]

    def write_variable(self, position: int, value: tf.Tensor) -> None:
        """What the kernel writes back into variable input ``position`` (an LSTM's output or cell
        state, an SVDF's memory), in the graph's dtype: kept for the next call unless the module is
        stateless. Only positions the spec declares in ``writes_inputs``."""
        if self._runtime is not None:
            self._runtime.write_variable(self, position, value)

    def fail(self, message: str) -> BuildError:
        return BuildError(
            f"{self.model.source}: subgraph {self.subgraph.index} operator {self.op.index} {self.op.opcode} "
            f"(output {output_name(self.subgraph, self.op)!r}): {message}"
        )
