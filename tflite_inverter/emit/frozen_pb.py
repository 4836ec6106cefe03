"""Frozen GraphDef emitter: the weights as Const nodes, plus a JSON sidecar.

The signature's graph comes without its weights: the traced function's ``ReadVariableOp`` nodes
(or, where a weight is read inside a control-flow body, a placeholder per weight in a second
trace) stand for them. The small GraphDef that results is written first, then each weight is
appended as a Const ``NodeDef`` with the name of the node it replaces, one at a time. Protocol buffers merge concatenated messages (a repeated field's entries are appended), so
the file is one valid GraphDef, and the weights are never all copied into one proto in memory.

The sidecar (``<name>.json`` next to the ``.pb``) names the input and output nodes with their
shapes and dtypes, which is what ``tf.compat.v1.lite.TFLiteConverter.from_frozen_graph`` needs.

A GraphDef holds no variables, so the states a stateful model keeps across calls (the variable
tensors of LSTM/RNN/SVDF kernels) become extra inputs and outputs: the sidecar's ``state`` list
gives, for each, the input node it is read from, the output node holding what the call wrote
into it (the caller feeds it back as the next call's input), and the first call's value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import tensorflow as tf
from tensorflow.core.framework.tensor_pb2 import TensorProto

from ..errors import TfliteInverterError
from .atomic import atomic_path, refuse_existing
from .custom_nodes import register_opdefs, rewrite_graph_def


class FreezableModel(Protocol):
    """What the emitter reads of the model it writes (an ``InvertedModel`` is one)."""

    model: Any  # the ir.Model, for its source and custom ops
    module: Any  # the tf.Module: ``weights`` and ``resources``
    passthrough: Any

    def frozen_concrete_function(self, signature: str | None = None) -> tuple[Any, dict[str, str | None]]: ...
    def frozen_states(self, signature: str | None = None) -> list[dict]: ...
    def inputs(self, signature: str | None = None) -> list: ...
    def outputs(self, signature: str | None = None) -> list: ...
    @property
    def default_signature(self) -> str: ...

_GRAPH_DEF_NODE_FIELD = 1  # GraphDef.node


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, length: int) -> bytes:
    """The tag and length of a length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(length)


def const_node_pieces(name: str, value: Any) -> list:
    """``GraphDef.node`` entry of a Const node holding ``value`` (a numpy array), as byte pieces to
    write in order: the array's bytes go to the file as they are (``TensorProto.tensor_content``,
    little-endian as TensorFlow writes it), never copied into a proto. A string array or a
    big-endian machine goes through ``make_tensor_proto``."""
    import sys

    import numpy as np

    dtype = tf.as_dtype(value.dtype).as_datatype_enum
    head = tf.compat.v1.NodeDef(name=name, op="Const")
    head.attr["dtype"].type = dtype
    if value.dtype.kind in "OSU" or sys.byteorder != "little":
        head.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
        data = head.SerializeToString()
        return [_field(_GRAPH_DEF_NODE_FIELD, len(data)), data]
    content = np.ascontiguousarray(value).reshape(-1).view(np.uint8)
    tensor = TensorProto(dtype=dtype, tensor_shape=tf.TensorShape(value.shape).as_proto())
    tensor_head = tensor.SerializeToString() + _field(4, len(content))  # TensorProto.tensor_content = 4
    tensor_length = len(tensor_head) + len(content)
    attr_head = _field(8, tensor_length)  # AttrValue.tensor = 8
    key = b"value"
    entry_head = _field(1, len(key)) + key + _field(2, len(attr_head) + tensor_length)  # map entry: key 1, value 2
    node_head = head.SerializeToString() + _field(5, len(entry_head) + len(attr_head) + tensor_length)  # NodeDef.attr = 5
    node_length = len(node_head) + len(entry_head) + len(attr_head) + tensor_length
    return [_field(_GRAPH_DEF_NODE_FIELD, node_length) + node_head + entry_head + attr_head + tensor_head, content]


def _io_description(inverted: "FreezableModel", key: str, concrete) -> dict:
    def entry(spec, tensor):
        return {"name": spec.name, "node": tensor.name.split(":")[0], "tensor": tensor.name, "shape": spec.shape,
                "dtype": spec.dtype, "tflite_tensor": spec.tensor.name}

    inputs = [entry(spec, tensor) for spec, tensor in zip(inverted.inputs(key), concrete.inputs)]
    outputs = [entry(spec, concrete.structured_outputs[spec.name]) for spec in inverted.outputs(key)]
    return {"signature": key, "inputs": inputs, "outputs": outputs}


def write_frozen_graph(inverted: "FreezableModel", handle: BinaryIO, signature: str | None = None) -> dict:
    """Write the frozen GraphDef of one signature to ``handle``; return its I/O description."""
    key = signature or inverted.default_signature
    if inverted.module.resources:
        raise TfliteInverterError(
            f"{inverted.model.source}: the model keeps state between calls ({', '.join(sorted(inverted.module.resources))}); "
            "a frozen GraphDef has no variables: use the SavedModel")
    concrete, placeholders = inverted.frozen_concrete_function(key)
    custom_opdefs: list[str] = []
    if inverted.passthrough is not None:
        graph_def = concrete.graph.as_graph_def(add_shapes=True)  # the opaque nodes need _output_shapes
        custom_opdefs = rewrite_graph_def(graph_def, inverted.model)
    else:
        graph_def = concrete.graph.as_graph_def()
    kept = [node for node in graph_def.node if node.name not in placeholders]
    del graph_def.node[:]
    graph_def.node.extend(kept)
    handle.write(graph_def.SerializeToString())
    del graph_def
    for node_name, weight_name in placeholders.items():
        if weight_name is None:
            continue  # a captured variable handle: dropped, its reads became Const nodes
        value = inverted.module.weights[weight_name].numpy()
        for piece in const_node_pieces(node_name, value):
            handle.write(piece)
        del value
    description = _io_description(inverted, key, concrete)
    states = inverted.frozen_states(key)
    if states:
        description["state"] = states
    if custom_opdefs:
        description["custom_opdefs"] = custom_opdefs
    return description


def tflite_converter(pb_path: str | Path, description: dict | None = None):
    """A TF1 ``TFLiteConverter`` for a frozen pb written here, set up from its sidecar: input and
    output nodes, input shapes (dynamic dimensions as 1), and, when the pb holds passed-through
    custom ops, their ``OpDef`` s registered and ``allow_custom_ops`` set.

    With custom ops the converter is made from the GraphDef itself, not through
    ``from_frozen_graph``: that imports the graph into a session first, which drops the opaque
    nodes' ``_output_shapes`` (an OpDef registered at run time has no shape function), and every op
    after them would lose its static shape."""
    pb_path = Path(pb_path)
    if description is None:
        description = json.loads(sidecar_path(pb_path).read_text())
    states = description.get("state", [])
    inputs = [i["node"] for i in description["inputs"]] + [s["input"]["node"] for s in states]
    outputs = [o["node"] for o in description["outputs"]] + [s["output"]["node"] for s in states]
    shapes = {i["node"]: [1 if d is None else d for d in i["shape"]] for i in description["inputs"]}
    shapes.update({s["input"]["node"]: s["shape"] for s in states})
    opdefs = description.get("custom_opdefs", [])
    if not opdefs:
        return tf.compat.v1.lite.TFLiteConverter.from_frozen_graph(str(pb_path), inputs, outputs, input_shapes=shapes)
    register_opdefs(opdefs)
    graph_def = tf.compat.v1.GraphDef.FromString(pb_path.read_bytes())
    converter = tf.compat.v1.lite.TFLiteConverter(graph_def, None, None, input_arrays_with_shape=[(n, shapes[n]) for n in inputs],
                                                  output_arrays=outputs)
    converter.allow_custom_ops = True
    return converter


def frozen_graph(inverted: "FreezableModel", signature: str | None = None) -> tuple[tf.compat.v1.GraphDef, dict]:
    """The frozen GraphDef of one signature in memory, and the description of its inputs and outputs."""
    import io

    buffer = io.BytesIO()
    description = write_frozen_graph(inverted, buffer, signature)
    return tf.compat.v1.GraphDef.FromString(buffer.getvalue()), description


def sidecar_path(pb_path: Path) -> Path:
    return pb_path.with_suffix(".json")


def save_frozen_pb(inverted: "FreezableModel", path: Path, *, overwrite: bool = False, signature: str | None = None) -> Path:
    sidecar = sidecar_path(path)
    refuse_existing(sidecar, overwrite)
    with atomic_path(path, overwrite=overwrite, directory=False) as temp_pb:
        with open(temp_pb, "wb") as handle:
            description = write_frozen_graph(inverted, handle, signature)
        with atomic_path(sidecar, overwrite=overwrite, directory=False) as temp_json:
            temp_json.write_text(json.dumps(description, indent=2) + "\n")
    return path
