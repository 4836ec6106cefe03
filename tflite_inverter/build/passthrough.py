"""Passthrough: custom ops with no builder, kept as opaque nodes for re-conversion.

TensorFlow cannot compute an op it does not know, so a passed-through custom op has two faces:

- In the traced functions (the SavedModel) it is a call to a small ``tf.function`` that raises
  ``InvalidArgumentError`` naming the op when it runs, and otherwise has the op's output dtypes
  and shapes. The function carries ``experimental_implements`` with the custom code, the options
  and ``tfl_fusable_op``, the TF converter's hook for fusing a function into a custom op; so
  ``TFLiteConverter.from_saved_model`` (with ``allow_custom_ops``) writes the custom op back,
  as long as every option is a scalar (the hook supports int, float, bool and string; with a
  list option it fails, "failed to fuse for op", and the frozen pb is the route).
- In the frozen GraphDef, :func:`tflite_inverter.emit.custom_nodes.rewrite_graph_def` replaces each call by one node whose op type
  is the custom code, whose attributes are the custom options (a flexbuffer map, decoded), and
  whose ``_output_shapes`` are the op's output shapes. The sidecar JSON lists an ``OpDef`` per
  custom code: register them with ``register_custom_opdefs`` and the TF1 converter with
  ``allow_custom_ops`` writes a custom op with that code whose options are the node's attributes
  as a flexbuffer map, which is the form the original's options had.

Only options that are a flexbuffer map of scalars, strings, blobs and flat vectors of those can
travel this way (the converter writes options only from node attributes); other options are
refused before anything is built, with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .. import ir
from ..ops.implements import implements
from ..reader.custom_options import decode_options

PASSTHROUGH_KEY = "CUSTOM:(passthrough)"


@dataclass(frozen=True)
class Passthrough:
    """Which custom ops pass through: every one with no builder (``codes is None``) or those named."""

    codes: frozenset[str] | None = None

    @classmethod
    def of(cls, value: bool | str | Sequence[str] | None) -> "Passthrough | None":
        if not value:
            return None
        if value is True:
            return cls(None)
        if isinstance(value, str):
            value = [value]
        return cls(frozenset(c[len("CUSTOM:"):] if c.startswith("CUSTOM:") else c for c in value))

    def covers(self, op: ir.Operator) -> bool:
        """Whether ``op`` becomes an opaque node: with ``True``, every custom op that has no builder;
        with codes, the custom ops named, even those that have one (to keep them for re-conversion)."""
        if not op.is_custom:
            return False
        if self.codes is None:
            from ..ops import registry

            return registry.lookup(op.opcode) is None
        return op.custom_code in self.codes

    def refusal(self, subgraph: ir.Subgraph, op: ir.Operator) -> str | None:
        """Why this op cannot pass through, or ``None``."""
        if subgraph.index != 0:
            return "passthrough covers the main subgraph only (a frozen GraphDef inlines no control-flow bodies)"
        if any(i is None for i in op.inputs):
            return "passthrough cannot keep an omitted optional input"
        try:
            decode_options(op.custom_options)
        except ValueError as error:
            return f"cannot pass through: {error}"
        return None

    @property
    def spec(self):
        from ..ops.registry import OpSpec

        return OpSpec(opcode=PASSTHROUGH_KEY, builder=build_passthrough, max_version=2**31 - 1,
                      note="opaque node (passthrough)")


def build_passthrough(ctx, op: ir.Operator, inputs: list) -> list:
    import tensorflow as tf

    code = op.custom_code
    options = decode_options(op.custom_options)
    dtypes = [ctx.output_dtype(k) for k in range(len(op.outputs))]
    # The converter often cannot infer a custom op's output shape: the file then records no rank,
    # and the opaque node has an unknown shape too (the interpreter's kernel decides at run time).
    shapes = [ctx.output_shape(k) if ctx.output_tensor(k).has_rank else None for k in range(len(op.outputs))]
    message = (f"operator {op.index} (custom op {code!r}) was passed through as an opaque node: TensorFlow cannot "
               f"run it. Re-convert the frozen pb or this SavedModel to .tflite with allow_custom_ops")

    def opaque(*args):
        check = tf.debugging.Assert(tf.constant(False), [tf.constant(message)], name="passthrough_cannot_run")
        with tf.control_dependencies([check]):
            seed = _input_dependent_zero(args)
            return [_placeholder_value(shape, dtype, seed) for shape, dtype in zip(shapes, dtypes)]

    # Always fusable: with a list option the converter then fails ("failed to fuse for op"), which
    # is right; without the flag it would convert the stand-in body, zeros, silently.
    function = tf.function(opaque, autograph=False, experimental_implements=implements(code, options, fusable=True))
    return list(function(*inputs))


def _input_dependent_zero(args):
    """A float zero computed from the inputs. Outputs made from it cannot be constant-folded by the
    converter before it fuses the function (zeros alone would be folded into the consumers)."""
    import tensorflow as tf

    numeric = [a for a in args if a.dtype.is_floating or a.dtype.is_integer]
    if not numeric:
        return tf.constant(0.0)
    return tf.reduce_max(tf.cast(tf.reshape(numeric[0], [-1]), tf.float32)) * 0.0


def _placeholder_value(shape: list[int | None] | None, dtype, seed):
    """Zeros standing for an output that is never computed, with the static shape the file records
    (``None`` where dynamic or unknown). Dynamic dimensions and an unknown rank are made from
    ``seed`` so that the converter cannot fold them to constants either."""
    import tensorflow as tf

    n = tf.cast(seed, tf.int32)  # 0 when run; unknown when traced
    if shape is None:
        dims = tf.zeros([n], tf.int32)  # unknown rank
    elif shape:
        dims = tf.stack([tf.constant(d) if d is not None else n + 1 for d in shape])
    else:
        dims = tf.zeros([0], tf.int32)
    if dtype.is_floating or dtype.is_integer or dtype == tf.bool:
        fill = tf.cast(seed, dtype)
    else:
        fill = tf.zeros([], dtype)
    return tf.fill(dims, fill)


def passthrough_ops(model: ir.Model, passthrough: Passthrough | None) -> list[ir.Operator]:
    if passthrough is None:
        return []
    return [op for op in model.main.operators if passthrough.covers(op)]
