"""Frozen GraphDef emitter: variables folded into constants, plus a JSON sidecar.

The sidecar (``<name>.json`` next to the ``.pb``) names the input and output nodes with
their shapes and dtypes, which is what ``tf.compat.v1.lite.TFLiteConverter.from_frozen_graph``
needs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from .atomic import atomic_path, refuse_existing

if TYPE_CHECKING:
    from ..inverted import InvertedModel


def frozen_graph(inverted: "InvertedModel", signature: str | None = None) -> tuple[tf.compat.v1.GraphDef, dict]:
    """The frozen GraphDef of one signature and the description of its inputs and outputs."""
    key = signature or inverted.default_signature
    concrete = inverted.concrete_functions[key]
    frozen = convert_variables_to_constants_v2(concrete)
    graph_def = frozen.graph.as_graph_def()
    inputs = []
    for spec, tensor in zip(inverted.inputs(key), frozen.inputs):
        inputs.append({
            "name": spec.name,
            "node": tensor.name.split(":")[0],
            "tensor": tensor.name,
            "shape": spec.shape,
            "dtype": spec.dtype,
            "tflite_tensor": spec.tensor.name,
        })
    outputs = []
    position = {tensor.name: i for i, tensor in enumerate(concrete.outputs)}
    for spec in inverted.outputs(key):
        tensor = frozen.outputs[position[concrete.structured_outputs[spec.name].name]]
        outputs.append({
            "name": spec.name,
            "node": tensor.name.split(":")[0],
            "tensor": tensor.name,
            "shape": spec.shape,
            "dtype": spec.dtype,
            "tflite_tensor": spec.tensor.name,
        })
    return graph_def, {"signature": key, "inputs": inputs, "outputs": outputs}


def sidecar_path(pb_path: Path) -> Path:
    return pb_path.with_suffix(".json")


def save_frozen_pb(inverted: "InvertedModel", path: Path, *, overwrite: bool = False, signature: str | None = None) -> Path:
    graph_def, description = frozen_graph(inverted, signature)
    sidecar = sidecar_path(path)
    refuse_existing(sidecar, overwrite)
    with atomic_path(path, overwrite=overwrite, directory=False) as temp_pb:
        temp_pb.write_bytes(graph_def.SerializeToString())
        with atomic_path(sidecar, overwrite=overwrite, directory=False) as temp_json:
            temp_json.write_text(json.dumps(description, indent=2) + "\n")
    return path
