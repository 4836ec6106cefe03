"""The signatures an inverted model exposes: the model's SignatureDefs, or one over the main subgraph."""

from __future__ import annotations

from dataclasses import dataclass

from .. import ir
from ..names import sanitize_name, unique_names
from ..passes.cut import Cut


@dataclass(frozen=True)
class SignatureInfo:
    key: str
    subgraph_index: int
    input_names: tuple[str, ...]
    input_tensors: tuple[int, ...]
    output_names: tuple[str, ...]
    output_tensors: tuple[int, ...]
    operators: frozenset[int] | None = None  # a cut model builds only these operators of its subgraph


def cut_signature(model: ir.Model, plan: Cut) -> SignatureInfo:
    """A ``serving_default`` over the main subgraph of a cut (:func:`tflite_inverter.passes.cut.plan_cut`)."""
    sg = model.main
    return SignatureInfo(
        "serving_default", 0,
        tuple(unique_names([sanitize_name(sg.tensors[i].name) for i in plan.inputs])), plan.inputs,
        tuple(unique_names([sanitize_name(sg.tensors[i].name) for i in plan.outputs])), plan.outputs,
        plan.operators,
    )


def model_signatures(model: ir.Model) -> list[SignatureInfo]:
    """The model's SignatureDefs, or one ``serving_default`` over the main subgraph."""
    if model.signatures:
        return [
            SignatureInfo(
                sig.key, sig.subgraph_index,
                tuple(unique_names([sanitize_name(n) for n in sig.inputs])), tuple(sig.inputs.values()),
                tuple(unique_names([sanitize_name(n) for n in sig.outputs])), tuple(sig.outputs.values()),
            )
            for sig in model.signatures
        ]
    sg = model.main
    return [
        SignatureInfo(
            "serving_default", 0,
            tuple(unique_names([sanitize_name(sg.tensors[i].name) for i in sg.inputs])), sg.inputs,
            tuple(unique_names([sanitize_name(sg.tensors[i].name) for i in sg.outputs])), sg.outputs,
        )
    ]
