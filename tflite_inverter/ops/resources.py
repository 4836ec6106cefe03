"""Resource variables and hash tables: VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE, HASHTABLE,
HASHTABLE_FIND, HASHTABLE_IMPORT, HASHTABLE_SIZE.

Each TFLite resource (keyed by container/shared_name, or table id) becomes one piece of state in
the module: a ``tf.Variable`` or a mutable hash table, made once by build/module.py through the spec's
resource factory, saved with the SavedModel, and persisting between calls as in the interpreter.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .registry import register

_DTYPES = {"FLOAT32": tf.float32, "INT32": tf.int32, "INT64": tf.int64, "STRING": tf.string, "BOOL": tf.bool,
           "FLOAT16": tf.float16, "INT8": tf.int8, "UINT8": tf.uint8, "INT16": tf.int16, "FLOAT64": tf.float64}


def _variable_key(op) -> str:
    return f"variable/{op.options.get('container', '')}/{op.options.get('shared_name', '')}"


def _variable_spec(ctx):
    """dtype and shape of a resource variable, from the ops that read or assign it anywhere."""
    key = _variable_key(ctx.op)
    found = []
    for sg in ctx.model.subgraphs:
        handles = {out for op in sg.operators if op.opcode == "VAR_HANDLE" and _variable_key(op) == key for out in op.outputs}
        for op in sg.operators:
            if op.opcode == "READ_VARIABLE" and op.inputs[0] in handles:
                found.append(sg.tensors[op.outputs[0]])
            elif op.opcode == "ASSIGN_VARIABLE" and op.inputs[0] in handles:
                found.append(sg.tensors[op.inputs[1]])
    if not found:
        raise ctx.fail(f"resource variable {key!r} is never read or assigned: its type is unknown")
    tensor = found[0]
    dtype = tf.as_dtype(np.dtype(tensor.dtype)) if tensor.dtype != "string" else tf.string
    shape = [None if d < 0 else d for d in tensor.shape_signature] if tensor.has_rank else None
    return key, dtype, shape


def _make_variable(ctx):
    key, dtype, shape = _variable_spec(ctx)
    static = [0 if d is None else d for d in shape] if shape is not None else []
    initial = tf.zeros(static, dtype) if dtype != tf.string else tf.fill(static, "")

    def make():
        return tf.Variable(initial, trainable=False, shape=tf.TensorShape(shape), name=key.replace("/", "_").strip("_"))

    return key, make


@register("VAR_HANDLE", max_version=1, resource_factory=_make_variable)
def build_var_handle(ctx, op, inputs):
    return [ctx.resource(_variable_key(op)).handle]


@register("READ_VARIABLE", max_version=1)
def build_read_variable(ctx, op, inputs):
    return [tf.raw_ops.ReadVariableOp(resource=inputs[0], dtype=ctx.output_dtype(0))]


@register("ASSIGN_VARIABLE", max_version=1)
def build_assign_variable(ctx, op, inputs):
    tf.raw_ops.AssignVariableOp(resource=inputs[0], value=inputs[1])
    return []


def _table_key(op) -> str:
    return f"table/{op.options['table_id']}"


def _make_table(ctx):
    o = ctx.op.options
    key_dtype, value_dtype = _DTYPES[o["key_dtype"]], _DTYPES[o["value_dtype"]]
    default = "" if value_dtype == tf.string else 0
    return _table_key(ctx.op), lambda: tf.lookup.experimental.MutableHashTable(key_dtype, value_dtype, default)


@register("HASHTABLE", max_version=1, resource_factory=_make_table)
def build_hashtable(ctx, op, inputs):
    return [ctx.resource(_table_key(op)).resource_handle]


@register("HASHTABLE_IMPORT", max_version=1)
def build_hashtable_import(ctx, op, inputs):
    tf.raw_ops.LookupTableImportV2(table_handle=inputs[0], keys=inputs[1], values=inputs[2])
    return []


@register("HASHTABLE_FIND", max_version=1)
def build_hashtable_find(ctx, op, inputs):
    return [tf.raw_ops.LookupTableFindV2(table_handle=inputs[0], keys=inputs[1], default_value=inputs[2])]


@register("HASHTABLE_SIZE", max_version=1, check_shape=False,
          note="LiteRT returns shape [1] where the file records a scalar; the builder follows LiteRT")
def build_hashtable_size(ctx, op, inputs):
    size = tf.raw_ops.LookupTableSizeV2(table_handle=inputs[0])
    return [tf.reshape(tf.cast(size, ctx.output_dtype(0)), [1])]
