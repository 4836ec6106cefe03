"""Control flow over subgraphs: WHILE, IF, CALL_ONCE, CALL.

A subgraph is traced where TensorFlow needs it: inside ``tf.while_loop``'s cond and body, or
``tf.cond``'s branches, through ``ctx.run_subgraph``.
"""

from __future__ import annotations

import tensorflow as tf

from .registry import register


def _invariant(tensor) -> tf.TensorShape:
    if not tensor.has_rank:
        return tf.TensorShape(None)
    return tf.TensorShape([None if d < 0 else d for d in tensor.shape_signature])


@register("WHILE", max_version=1)
def build_while(ctx, op, inputs):
    o = op.options
    cond_index, body_index = o["cond_subgraph_index"], o["body_subgraph_index"]
    body_graph = ctx.model.subgraphs[body_index]

    def cond(*loop_vars):
        (keep_going,) = ctx.run_subgraph(cond_index, list(loop_vars))
        return tf.reshape(keep_going, [])

    def body(*loop_vars):
        return ctx.run_subgraph(body_index, list(loop_vars))

    # A loop variable may change shape between iterations when the body's input is dynamic.
    invariants = [_invariant(body_graph.tensors[i]) for i in body_graph.inputs]
    results = tf.while_loop(cond, body, list(inputs), shape_invariants=invariants)
    return list(results) if isinstance(results, (list, tuple)) else [results]


@register("IF", max_version=1)
def build_if(ctx, op, inputs):
    o = op.options
    predicate, operands = tf.reshape(inputs[0], []), list(inputs[1:])
    outputs = tf.cond(
        tf.cast(predicate, tf.bool),
        lambda: ctx.run_subgraph(o["then_subgraph_index"], operands),
        lambda: ctx.run_subgraph(o["else_subgraph_index"], operands),
    )
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


@register("CALL", max_version=1)
def build_call(ctx, op, inputs):
    return ctx.run_subgraph(op.options["subgraph"], list(inputs))


def _call_once_flag(ctx):
    key = f"call_once/{ctx.op.options['init_subgraph_index']}"
    return key, lambda: tf.Variable(False, trainable=False, name=key.replace("/", "_"))


@register("CALL_ONCE", max_version=1, resource_factory=_call_once_flag)
def build_call_once(ctx, op, inputs):
    """Runs the init subgraph (variable and table initialisation) on the first call only, like
    TFLite, which runs it once per interpreter; a flag variable in the module remembers it."""
    index = op.options["init_subgraph_index"]
    done = ctx.resource(f"call_once/{index}")

    def initialise():
        ctx.run_subgraph(index, [])
        with tf.control_dependencies([done.assign(True)]):
            return tf.constant(True)

    tf.cond(done.read_value(), lambda: tf.constant(True), initialise)
    return []
