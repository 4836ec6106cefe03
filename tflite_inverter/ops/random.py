"""Random ops: RANDOM_UNIFORM, RANDOM_STANDARD_NORMAL, MULTINOMIAL, reproducing LiteRT's streams.

TFLite's kernels own one Philox-4x32 generator per op, made from the ``seed`` and ``seed2``
options (``PhiloxRandom(seed, seed2)``: key = seed, high counter words = seed2, each option cut to
its low 32 bits and sign-extended) when the interpreter prepares the op, and advanced at every
invocation:

* RANDOM_UNIFORM: ``n`` floats from ``ceil(n / 4)`` Philox blocks (``Uint32ToFloat``), [0, 1);
* RANDOM_STANDARD_NORMAL: the same blocks through Box-Muller (``BoxMullerFloat``);
* MULTINOMIAL: one double in [0, 1) from each two uint32 of the stream (``Uint64ToDouble``),
  continuing across rows, scaled by the row's total of ``exp(logit - max)`` over finite logits
  and looked up in their running sum (upper bound), in double; the generator then skips
  ``batch * ceil4(num_samples) * 2 * 256`` blocks.

The builders compute exactly that with TensorFlow's stateless Philox ops (the same Philox, the
same ``Uint32ToFloat`` and Box-Muller), given the block counter; the counter is a ``tf.Variable``
of the module (one per op, made by build/module.py through the resource factory), advanced by each call
as the interpreter advances its generator. So invocation k of the inverted model gives what
invocation k of a fresh interpreter gives, value for value.

Differences that remain:

* ``seed == seed2 == 0`` means a nondeterministic seed in TFLite; the builders then use
  TensorFlow's unseeded stateful ops: same distribution, other numbers.
* The interpreter re-seeds an op when it prepares it again (after an input is resized); the
  counter only moves forward. It is saved with a SavedModel at its current value; a frozen
  GraphDef cannot hold it (the frozen-pb emitter leaves module state as resource placeholders).
* TensorFlow's own seeded ops would not do: RandomUniform/RandomStandardNormal reserve ``256 * n``
  blocks per call (only the first call would match), and Multinomial restarts each thread's shard
  of rows at ``row * ceil(num_samples / 4)`` blocks (large batches differ even on the first call).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .registry import register

_PHILOX = 1  # tf.random.Algorithm.PHILOX
_UINT64 = (1 << 64) - 1
_NOTE = "LiteRT's Philox stream, invocation by invocation (a counter variable per op); seeds 0, 0: unseeded"


def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _seeds(op) -> tuple[int, int]:
    """The seeds as the kernel sees them: the options are int64 in the file, but TfLiteRandomParams
    holds ints, so only their low 32 bits count, sign-extended (seed 2**32 + 5 acts as 5, and
    seed 2**32 with seed2 0 as no seed at all)."""
    return _int32(int(op.options.get("seed", 0))), _int32(int(op.options.get("seed2", 0)))


def _counter_key(ctx) -> str:
    return f"random/{ctx.subgraph.index}/{ctx.op.index}"


def _block_counter(ctx):
    """The op's Philox block counter: how far the interpreter's generator has advanced."""
    key = _counter_key(ctx)
    return key, lambda: tf.Variable(tf.constant(0, tf.int64), trainable=False, name=key.replace("/", "_"))


def _philox_key_counter(op, offset: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Key and counter of ``PhiloxRandom(seed, seed2)`` skipped by ``offset`` blocks."""
    seed, seed2 = _seeds(op)
    key = tf.constant([np.uint64(seed & _UINT64)], tf.uint64)
    counter = tf.stack([tf.cast(offset, tf.uint64), tf.constant(np.uint64(seed2 & _UINT64), tf.uint64)])
    return key, counter


def _advance(counter: tf.Variable, blocks: tf.Tensor, value: tf.Tensor) -> tf.Tensor:
    with tf.control_dependencies([value]):
        update = counter.assign_add(blocks)
    with tf.control_dependencies([update]):
        return tf.identity(value)


def _sample(ctx, op, shape, stateless, stateful):
    shape = tf.cast(shape, tf.int32)
    dtype = ctx.output_dtype(0)
    seed, seed2 = _seeds(op)
    if seed == 0 and seed2 == 0:
        return stateful(shape=shape, dtype=dtype, seed=0, seed2=0)
    counter = ctx.resource(_counter_key(ctx))
    key, philox_counter = _philox_key_counter(op, counter.read_value())
    value = stateless(shape=shape, key=key, counter=philox_counter, alg=_PHILOX, dtype=dtype)
    blocks = (tf.reduce_prod(tf.cast(shape, tf.int64)) + 3) // 4
    return _advance(counter, blocks, value)


@register("RANDOM_UNIFORM", max_version=1, resource_factory=_block_counter, note=_NOTE)
def build_random_uniform(ctx, op, inputs):
    """float32 samples in [0, 1) of the shape given by the int32 input."""
    return [_sample(ctx, op, inputs[0], tf.raw_ops.StatelessRandomUniformV2, tf.raw_ops.RandomUniform)]


@register("RANDOM_STANDARD_NORMAL", max_version=1, resource_factory=_block_counter, note=_NOTE)
def build_random_standard_normal(ctx, op, inputs):
    return [_sample(ctx, op, inputs[0], tf.raw_ops.StatelessRandomNormalV2, tf.raw_ops.RandomStandardNormal)]


@register("MULTINOMIAL", max_version=1, resource_factory=_block_counter, note=_NOTE)
def build_multinomial(ctx, op, inputs):
    """[batch, num_samples] class indices (int64 or int32) drawn from unnormalized log-probabilities
    [batch, classes] (float32); non-finite logits are never drawn."""
    logits, num_samples = inputs
    num_samples = tf.reshape(tf.cast(num_samples, tf.int32), [])
    dtype = ctx.output_dtype(0)
    seed, seed2 = _seeds(op)
    if seed == 0 and seed2 == 0:
        return [tf.raw_ops.Multinomial(logits=logits, num_samples=num_samples, seed=0, seed2=0, output_dtype=dtype)]
    batch = tf.shape(logits, out_type=tf.int32)[0]
    counter = ctx.resource(_counter_key(ctx))
    key, philox_counter = _philox_key_counter(op, counter.read_value())
    words = tf.raw_ops.StatelessRandomUniformFullIntV2(
        shape=tf.reshape(batch * num_samples * 2, [1]), key=key, counter=philox_counter, alg=_PHILOX, dtype=tf.uint32)
    words = tf.reshape(words, tf.stack([batch, num_samples, 2]))
    # Uint64ToDouble(x0, x1): the low 20 bits of x0 and the 32 bits of x1 as a 52-bit mantissa.
    high = tf.cast(tf.bitwise.bitwise_and(words[..., 0], tf.constant(0xFFFFF, tf.uint32)), tf.float64)
    uniform = (high * 2.0**32 + tf.cast(words[..., 1], tf.float64)) * 2.0**-52
    finite = tf.math.is_finite(logits)
    largest = tf.reduce_max(tf.where(finite, logits, tf.float32.min), axis=1, keepdims=True)
    weights = tf.where(finite, tf.math.exp(tf.cast(logits, tf.float64) - tf.cast(largest, tf.float64)), 0.0)
    cdf = tf.math.cumsum(weights, axis=1)
    targets = uniform * cdf[:, -1:]
    value = tf.searchsorted(cdf, targets, side="right", out_type=dtype)
    skipped = tf.cast(batch, tf.int64) * ((tf.cast(num_samples, tf.int64) + 3) // 4 * 4) * 2 * 256
    return [_advance(counter, skipped, value)]
