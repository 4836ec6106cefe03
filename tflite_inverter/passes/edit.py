"""Making a changed copy of a model: the one way passes write (frozen dataclasses, shared arrays)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from .. import ir


def with_subgraphs(model: ir.Model, subgraphs: Mapping[int, ir.Subgraph]) -> ir.Model:
    """``model`` with the subgraphs of the given indices replaced (the same object when none is)."""
    if not subgraphs:
        return model
    return dataclasses.replace(model, subgraphs=tuple(subgraphs.get(sg.index, sg) for sg in model.subgraphs))


def with_tensors(subgraph: ir.Subgraph, tensors: Mapping[int, ir.Tensor]) -> ir.Subgraph:
    """``subgraph`` with the tensors of the given indices replaced."""
    if not tensors:
        return subgraph
    return dataclasses.replace(subgraph, tensors=tuple(tensors.get(t.index, t) for t in subgraph.tensors))


def map_tensors(model: ir.Model, change: Callable[[ir.Subgraph, ir.Tensor], ir.Tensor | None]) -> ir.Model:
    """Apply ``change`` to every tensor; it returns a replacement, or ``None`` to keep the tensor."""
    subgraphs = {}
    for sg in model.subgraphs:
        changed = {t.index: new for t in sg.tensors if (new := change(sg, t)) is not None}
        if changed:
            subgraphs[sg.index] = with_tensors(sg, changed)
    return with_subgraphs(model, subgraphs)


def tensor_location(model: ir.Model, subgraph: ir.Subgraph, tensor: ir.Tensor) -> str:
    return f"{model.source}: subgraph {subgraph.index} tensor {tensor.name!r}"


def constant_values(subgraph: ir.Subgraph) -> dict[int, object]:
    """Every constant of a subgraph as operators consume it (:attr:`ir.Tensor.value`), by index."""
    return {t.index: t.value for t in subgraph.tensors if t.data is not None}
