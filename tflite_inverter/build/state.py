"""Variable tensors that persist across invocations: which ones, and the value they start from.

In LiteRT a tensor with ``is_variable = true`` (the states of the LSTM, RNN and SVDF kernels) is
allocated once and keeps what the kernel writes into it until ``reset_all_variables()``. The
operators that write one declare it in their spec (``writes_inputs``); a variable tensor that no
operator writes never changes, and stays a constant of the inverted graph.

``ResetVariableTensor`` (``tensorflow/lite/core/api/tensor_utils.cc``) fills a variable tensor
with its zero point if it is int8 and with zero bytes otherwise, which is the value it has after
``allocate_tensors()`` too: the real value 0 for every state the converters write. A variable
tensor that also has a buffer keeps the buffer's value here (the interpreter has no use for it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import ir
from ..ops import registry


@dataclass(frozen=True)
class StateTensor:
    """A variable tensor some operator writes back into."""

    subgraph: int
    tensor: ir.Tensor
    operator: int  # the (first) operator that writes it
    position: int  # its input position there

    @property
    def key(self) -> tuple[int, int]:
        return self.subgraph, self.tensor.index


def state_tensors(model: ir.Model) -> dict[tuple[int, int], StateTensor]:
    """The variable tensors of ``model`` that an operator writes, by (subgraph, tensor index)."""
    found: dict[tuple[int, int], StateTensor] = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            spec = registry.lookup(op.opcode)
            if spec is None:
                continue
            for position in spec.written_inputs(op.options):
                index = op.inputs[position] if position < len(op.inputs) else None
                if index is None or not sg.tensors[index].is_variable or (sg.index, index) in found:
                    continue
                found[(sg.index, index)] = StateTensor(sg.index, sg.tensors[index], op.index, position)
    return found


def initial_value(tensor: ir.Tensor, consumed: np.ndarray) -> np.ndarray:
    """What a state holds after ``reset_all_variables()``, as the graph carries it (real values for
    a quantized state): ``consumed`` is its value among the module's constants (build/module.py
    ``_constants``: the reset value, or the buffer)."""
    return np.array(consumed, np.float32 if tensor.quantization is not None else None)
