"""One eager ``tf.Variable`` per weight, made without a kernel-cache miss each.

``tf.Variable(value, name=name)`` runs a ``VarHandleOp`` whose attributes are the variable's shape and
its name (``debug_name``). TensorFlow's eager runtime caches one kernel per distinct set of
attributes, so every weight of a model (each its own name, most their own shape) instantiates a
new kernel: about 0.4 ms each, against 0.02-0.04 ms for a cached one (measured on TF 2.21; see
docs/benchmarks.md). Here every handle gets one fixed debug name, so weights of one shape share a
kernel (palm_detection_full: 133 weights, 29 shapes); the variable keeps its own name, which is
what saving, checkpoints and the frozen graph read. The shape stays in the handle: with an unknown
one, the function runtime's optimizer sees unknown shapes and results moved by an ulp.

If this TensorFlow's private constructor differs, :func:`new_weight` falls back to ``tf.Variable``
once and keeps doing so.
"""

from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf

_DEBUG_NAME = "tflite_inverter_weight"
_fast = True


def _fast_variable(value: np.ndarray, name: str) -> tf.Variable:
    from tensorflow.python.eager import context
    from tensorflow.python.framework import ops
    from tensorflow.python.ops import gen_resource_variable_ops, handle_data_util, resource_variable_ops

    initial = tf.constant(value)
    handle = gen_resource_variable_ops.var_handle_op(
        dtype=initial.dtype, shape=initial.shape, shared_name=context.anonymous_name(),
        debug_name=_DEBUG_NAME, container="")
    # The static shape TensorFlow sees when a function captures the handle.
    resource_variable_ops._set_handle_shapes_and_types(  # noqa: SLF001
        handle, handle_data_util.create_handle_data(initial.shape, initial.dtype), False)
    gen_resource_variable_ops.assign_variable_op(handle, initial)
    unique_id = f"{name}_{ops.uid()}"
    variable = resource_variable_ops.BaseResourceVariable(
        trainable=True, shape=initial.shape, dtype=initial.dtype, handle=handle, name=name,
        unique_id=unique_id, handle_name=name, in_graph_mode=False)
    handle._parent_trackable = weakref.ref(variable)  # noqa: SLF001  (as tf.Variable sets them)
    handle._name = name + ":0"  # noqa: SLF001
    handle._unique_id = unique_id  # noqa: SLF001
    return variable


def new_weight(value: np.ndarray, name: str) -> tf.Variable:
    """A trainable eager variable named ``name`` holding ``value`` (copied)."""
    global _fast
    if _fast and tf.executing_eagerly():
        try:
            return _fast_variable(value, name)
        except (AttributeError, TypeError, ImportError):  # another TensorFlow's internals: the public way
            _fast = False
    return tf.Variable(value, name=name, trainable=True)
