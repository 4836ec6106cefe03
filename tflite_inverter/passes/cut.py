"""Cutting the main subgraph to the operators between chosen tensors (drop post-processing for
an accelerator, or start after pre-processing)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from .. import ir
from ..display import did_you_mean
from ..errors import TfliteInverterError
from .edit import with_subgraphs


@dataclass(frozen=True)
class Cut:
    """Where a cut starts and ends (tensor indices of the main subgraph) and the operators between."""

    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    operators: frozenset[int]


def needed_operators(subgraph: ir.Subgraph, outputs: Sequence[int], inputs: Sequence[int]) -> frozenset[int]:
    """The operators that compute ``outputs`` from ``inputs`` (and the constants): walking back
    from the outputs, stopping at the given inputs."""
    producer = {out: op for op in subgraph.operators for out in op.outputs if out is not None}
    needed: set[int] = set()
    stack, seen, stop = list(outputs), set(), set(inputs)
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor in stop:
            continue
        seen.add(tensor)
        op = producer.get(tensor)
        if op is not None and op.index not in needed:
            needed.add(op.index)
            stack.extend(i for i in op.inputs if i is not None)
    return frozenset(needed)


def plan_cut(model: ir.Model, inputs: Sequence[str] | None, outputs: Sequence[str] | None) -> Cut:
    """The cut of the main subgraph that starts at tensors named ``inputs`` and ends at ``outputs``
    (default: the model's own); raises naming a tensor that does not exist or is not given."""
    sg = model.main
    by_name = {t.name: t.index for t in sg.tensors}
    for name in [*(inputs or []), *(outputs or [])]:
        if name not in by_name:
            raise TfliteInverterError(f"{model.source}: no tensor named {name!r} in the main subgraph"
                                      + did_you_mean(name, by_name) + "; model.tensors() lists them")
    input_tensors = tuple(by_name[n] for n in inputs) if inputs else tuple(sg.inputs)
    output_tensors = tuple(by_name[n] for n in outputs) if outputs else tuple(sg.outputs)
    operators = needed_operators(sg, output_tensors, input_tensors)
    by_index = {op.index: op for op in sg.operators}
    produced = {out for i in operators for out in by_index[i].outputs}
    constants = {t.index for t in sg.tensors if t.data is not None}
    missing = {i for op in operators for i in by_index[op].inputs
               if i is not None and i not in produced and i not in input_tensors and i not in constants}
    if missing:
        raise TfliteInverterError(f"{model.source}: the outputs need tensors the inputs do not give: "
                                  f"{sorted(sg.tensors[i].name for i in missing)[:5]}")
    return Cut(input_tensors, output_tensors, operators)


def cut(model: ir.Model, plan: Cut) -> ir.Model:
    """The model whose main subgraph holds only ``plan``'s operators, with its inputs and outputs;
    its SignatureDefs are dropped (a cut model has one signature over the main subgraph)."""
    sg = model.main
    restricted = dataclasses.replace(sg, inputs=plan.inputs, outputs=plan.outputs,
                                     operators=tuple(op for op in sg.operators if op.index in plan.operators))
    return dataclasses.replace(with_subgraphs(model, {sg.index: restricted}), signatures=())
