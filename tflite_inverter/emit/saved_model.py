"""SavedModel emitter: a module's variables plus one serving signature per TFLite signature.

``tf.saved_model.save`` spends most of its time (60 % on the MediaPipe models) tracing the
SavedModel's own save and restore functions, which read or assign every variable through
TensorFlow's Python op layer (a few milliseconds per variable). Only TF1-style loaders use them
(``tf.compat.v1.saved_model.load``, C++ ``LoadSavedModel`` as in TF Serving: they restore the
variables by running ``saver_def.restore_op_name``); ``tf.saved_model.load`` and the TFLite
converter read the checkpoint through the object graph. So the SavedModel is written without them
(``experimental_skip_saver``) and the same saver is then added as plain nodes to the MetaGraph: one
``RestoreV2`` feeding an ``AssignVariableOp`` per variable, and one ``SaveV2`` of every variable's
``ReadVariableOp`` plus the object graph under the checkpoint's own keys. Which graph node holds which
variable is read from the signature functions' bound inputs (no name matching needed); should any
variable not be found that way, the SavedModel is written again with TensorFlow's own saver.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tensorflow as tf
from tensorflow.core.framework.attr_value_pb2 import AttrValue
from tensorflow.core.protobuf import saved_model_pb2, saver_pb2, trackable_object_graph_pb2

from .atomic import atomic_path

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"
_CALL_OPS = ("StatefulPartitionedCall", "PartitionedCall")


def save_saved_model(module: tf.Module, signatures: Mapping[str, Any], path: Path, *, overwrite: bool = False) -> Path:
    """Write ``module`` with ``signatures`` (key -> concrete function) to ``path``, atomically: written
    directly (:mod:`tflite_inverter.emit.saved_model_proto`) when the module holds only variables,
    else by ``tf.saved_model.save``."""
    from .saved_model_proto import direct_savable, write_saved_model

    with atomic_path(path, overwrite=overwrite, directory=True) as temp:
        if direct_savable(module, signatures):
            write_saved_model(module, signatures, temp)
            if add_saver(temp):
                return path
            _empty(temp)
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


def _unique_name(taken: set[str], name: str) -> str:
    candidate, suffix = name, 0
    while candidate in taken:
        suffix += 1
        candidate = f"{name}_{suffix}"
    taken.add(candidate)
    return candidate


def add_saver(directory: Path) -> bool:
    """Add the save/restore nodes and ``saver_def`` to a SavedModel written without them; False
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

    graph_def = meta_graph.graph_def
    taken = {node.name for node in graph_def.node}
    cpu = "/device:CPU:0"

    def add(op: str, name: str, inputs=(), **attrs) -> str:
        node = graph_def.node.add(op=op, name=_unique_name(taken, name), input=list(inputs))
        for key, value in attrs.items():
            node.attr[key].CopyFrom(value)
        return node.name

    def string_const(name: str, values: list[bytes], scalar: bool = False) -> str:
        tensor = tf.make_tensor_proto(values[0] if scalar else values, dtype=tf.string)
        return add("Const", name, dtype=AttrValue(type=tf.string.as_datatype_enum), value=AttrValue(tensor=tensor))

    filename = add("Placeholder", "saver_filename", dtype=AttrValue(type=tf.string.as_datatype_enum),
                   shape=AttrValue(shape=tf.TensorShape([]).as_proto()))
    keys = [key.encode() for key, _, _ in entries]
    types = [dtype for _, _, dtype in entries]
    # Restore: one RestoreV2 of every variable, each assigned to its resource.
    assigns = []
    if entries:  # (RestoreV2 takes at least one tensor; a model without variables restores nothing)
        restore_names = string_const("saver/restore/tensor_names", keys)
        restore_slices = string_const("saver/restore/shape_and_slices", [b""] * len(keys))
        restore = add("RestoreV2", "saver/restore/RestoreV2", [filename, restore_names, restore_slices],
                      dtypes=AttrValue(list=AttrValue.ListValue(type=types)))
        graph_def.node[-1].device = cpu
        assigns = [add("AssignVariableOp", f"saver/restore/Assign_{i}", [handle, f"{restore}:{i}"],
                       dtype=AttrValue(type=dtype)) for i, (_, handle, dtype) in enumerate(entries)]
    restore_all = add("NoOp", "saver/restore_all", [f"^{a}" for a in assigns])
    # Save: every variable's value and the object graph, under the checkpoint's keys.
    reads = [add("ReadVariableOp", f"saver/save/Read_{i}", [handle], dtype=AttrValue(type=dtype))
             for i, (_, handle, dtype) in enumerate(entries)]
    object_graph = string_const("saver/save/object_graph", [object_graph_bytes], scalar=True)
    save_names = string_const("saver/save/tensor_names", keys + [OBJECT_GRAPH_KEY.encode()])
    save_slices = string_const("saver/save/shape_and_slices", [b""] * (len(keys) + 1))
    save = add("SaveV2", "saver/save/SaveV2", [filename, save_names, save_slices, *reads, object_graph],
               dtypes=AttrValue(list=AttrValue.ListValue(type=types + [tf.string.as_datatype_enum])))
    graph_def.node[-1].device = cpu
    saved = add("Identity", "saver/save/filename", [filename, f"^{save}"], T=AttrValue(type=tf.string.as_datatype_enum))
    meta_graph.saver_def.CopyFrom(saver_pb2.SaverDef(filename_tensor_name=f"{filename}:0", save_tensor_name=f"{saved}:0",
                                                     restore_op_name=restore_all, version=saver_pb2.SaverDef.V2))
    listed = {op.name for op in meta_graph.meta_info_def.stripped_op_list.op}
    for op in ("Placeholder", "Const", "RestoreV2", "AssignVariableOp", "NoOp", "ReadVariableOp", "SaveV2", "Identity"):
        if op not in listed:
            meta_graph.meta_info_def.stripped_op_list.op.add().CopyFrom(_op_def(op))
    model_file.write_bytes(saved_model.SerializeToString())
    _write_fingerprint(directory)
    return True


def _op_def(name: str):
    from tensorflow.python.framework import op_def_registry

    return op_def_registry.get(name)


def _write_fingerprint(directory: Path) -> None:
    """The fingerprint hashes saved_model.pb, which has changed: written again."""
    from tensorflow.python.saved_model import fingerprinting_utils

    fingerprinting_utils.write_fingerprint(str(directory))
