"""SavedModel emitter: a module's variables plus one serving signature per TFLite signature.

A module holding only dictionaries of variables (every inversion but those with state to reset) is
written directly from its traced functions (:mod:`tflite_inverter.emit.saved_model_proto`). Any other
goes through ``tf.saved_model.save``, which spends most of its time (60 % on the MediaPipe models)
tracing the SavedModel's own save and restore functions, reading or assigning every variable through
TensorFlow's Python op layer; so it is written without them (``experimental_skip_saver``) and the
same saver is then added as plain nodes (:mod:`tflite_inverter.emit.saver_nodes`). Which graph node
holds which variable is read from the signature functions' bound inputs (no name matching needed);
should any variable not be found that way, the SavedModel is written again with TensorFlow's own saver.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2, trackable_object_graph_pb2

from .atomic import atomic_path
from .saved_model_proto import direct_children, write_saved_model
from .saver_nodes import OBJECT_GRAPH_KEY, add_saver_nodes, write_fingerprint
_CALL_OPS = ("StatefulPartitionedCall", "PartitionedCall")


def save_saved_model(module: tf.Module, signatures: Mapping[str, Any], path: Path, *, overwrite: bool = False) -> Path:
    """Write ``module`` with ``signatures`` (key -> concrete function) to ``path``, atomically: written
    directly (:mod:`tflite_inverter.emit.saved_model_proto`) when the module holds only variables,
    else by ``tf.saved_model.save``."""
    with atomic_path(path, overwrite=overwrite, directory=True) as temp:
        children = direct_children(module, signatures)
        if children is not None:
            write_saved_model(children, signatures, temp)
            return path
        options = tf.saved_model.SaveOptions(experimental_skip_saver=True)
        tf.saved_model.save(module, str(temp), signatures=dict(signatures), options=options)
        if not add_saver(temp):
            _empty(temp)
            tf.saved_model.save(module, str(temp), signatures=dict(signatures))
    return path


def _empty(directory: Path) -> None:
    shutil.rmtree(directory)
    directory.mkdir()


def _variable_nodes(meta_graph) -> dict[int, str] | None:
    """Object graph node id of each variable -> the ``VarHandleOp`` node holding it in the graph, from
    the signature calls' trailing (captured) inputs and their functions' ``bound_inputs``; ``None``
    if a variable is not reached that way."""
    objects = meta_graph.object_graph_def
    variables = {i for i, node in enumerate(objects.nodes) if node.WhichOneof("kind") == "variable"}
    nodes = {node.name: node for node in meta_graph.graph_def.node}
    found: dict[int, str] = {}
    for node in meta_graph.graph_def.node:
        if node.op not in _CALL_OPS or node.attr["f"].func.name not in objects.concrete_functions:
            continue
        bound = list(objects.concrete_functions[node.attr["f"].func.name].bound_inputs)
        data = [i for i in node.input if not i.startswith("^")]
        if not bound or len(bound) > len(data):
            continue
        for node_id, source in zip(bound, data[len(data) - len(bound):]):
            handle = nodes.get(source.split(":")[0])
            if node_id not in variables or handle is None or handle.op != "VarHandleOp":
                continue
            if found.setdefault(node_id, handle.name) != handle.name:
                return None
    return found if set(found) == variables else None


def add_saver(directory: Path) -> bool:
    """Add the save/restore nodes and ``saver_def`` to a SavedModel TensorFlow wrote without them; False
    (nothing changed) when its variables cannot all be mapped to their graph nodes."""
    directory = Path(directory)
    model_file = directory / "saved_model.pb"
    saved_model = saved_model_pb2.SavedModel.FromString(model_file.read_bytes())
    meta_graph = saved_model.meta_graphs[0]
    if meta_graph.HasField("saver_def"):
        return True
    handles = _variable_nodes(meta_graph)
    if handles is None:
        return False
    prefix = str(directory / "variables" / "variables")
    reader = tf.train.load_checkpoint(prefix)
    object_graph_bytes = reader.get_tensor(OBJECT_GRAPH_KEY)
    graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(object_graph_bytes)
    entries: list[tuple[str, str, int]] = []  # checkpoint key, VarHandleOp node, dtype enum
    dtypes = {node.name: node.attr["dtype"].type for node in meta_graph.graph_def.node if node.op == "VarHandleOp"}
    for node_id, handle in sorted(handles.items()):
        attributes = [a for a in graph.nodes[node_id].attributes if a.name == "VARIABLE_VALUE"]
        if len(attributes) != 1:
            return False
        entries.append((attributes[0].checkpoint_key, handle, dtypes[handle]))
    if {key for key, _, _ in entries} | {OBJECT_GRAPH_KEY} != set(reader.get_variable_to_dtype_map()):
        return False  # the checkpoint holds something else: leave it to TensorFlow's own saver
    add_saver_nodes(meta_graph, entries, object_graph_bytes)
    model_file.write_bytes(saved_model.SerializeToString())
    write_fingerprint(directory)
    return True


