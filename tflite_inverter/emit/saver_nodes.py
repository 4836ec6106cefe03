"""The saver of a SavedModel as plain graph nodes, for TF1 loaders, and the SavedModel's fingerprint.

TF1-style loaders (``tf.compat.v1.saved_model.load``, C++ ``LoadSavedModel`` as in TF Serving) restore
the variables by running ``saver_def.restore_op_name``; ``tf.saved_model.load`` and the TFLite
converter read the checkpoint through the object graph instead. The saver here is one ``RestoreV2``
feeding an ``AssignVariableOp`` per variable, and one ``SaveV2`` of every variable's ``ReadVariableOp``
plus the object graph, under the checkpoint's own keys (what TensorFlow's traced saver functions
compute, without tracing them).
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
from tensorflow.core.framework.attr_value_pb2 import AttrValue
from tensorflow.core.protobuf import saver_pb2

OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


def unique_name(taken: set[str], name: str) -> str:
    """``name``, or ``name_1``, ``name_2``... : the first not in ``taken`` (which it joins)."""
    candidate, suffix = name, 0
    while candidate in taken:
        suffix += 1
        candidate = f"{name}_{suffix}"
    taken.add(candidate)
    return candidate


def add_saver_nodes(meta_graph, entries: list[tuple[str, str, int]], object_graph_bytes: bytes) -> None:
    """The save/restore nodes and ``saver_def`` of ``meta_graph``: ``entries`` are (checkpoint key,
    VarHandleOp node, dtype enum) of every variable, ``object_graph_bytes`` the checkpoint's object graph."""
    graph_def = meta_graph.graph_def
    taken = {node.name for node in graph_def.node}
    cpu = "/device:CPU:0"

    def add(op: str, name: str, inputs=(), **attrs) -> str:
        node = graph_def.node.add(op=op, name=unique_name(taken, name), input=list(inputs))
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


def _op_def(name: str):
    from tensorflow.python.framework import op_def_registry

    return op_def_registry.get(name)


def write_fingerprint(directory: Path) -> None:
    """The fingerprint hashes saved_model.pb, which has changed: written again."""
    from tensorflow.python.saved_model import fingerprinting_utils

    fingerprinting_utils.write_fingerprint(str(directory))
