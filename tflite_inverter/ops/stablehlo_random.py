"""STABLEHLO_RNG_BIT_GENERATOR: random bits from a uint64 state, as LiteRT's kernel makes them.

The op is functional (state in, new state and bits out), so no module state is needed. LiteRT's
kernel (``tensorflow/lite/kernels/rng_bit_generator.cc``) reads the state as uint32 words
``s[0..]`` (little-endian halves of the uint64s) and fills the output, as uint32 words, block by
block:

* PHILOX and DEFAULT: Philox-4x32-10 with key ``(s0, s1)`` (state[0]) and counter words
  ``(s2, s3, s4, s5)`` for a u64[3] state or ``(s2, s3, s0, s1)`` for a u64[2] one: the same
  Philox as TensorFlow's stateless ops with key ``state[0]`` and counter ``(state[1], state[2] or
  state[0])``. 4 words a block.
* THREEFRY: Threefry-2x32 (20 rounds) with key ``(s0, s1)`` and counter ``(s2, s3)``, 2 words a
  block, written here with uint32 TensorFlow ops.

The block counter is state[1] (its low word increments, carrying into the high word only), so the
new state is ``state`` with ``state[1] + blocks``. 64-bit outputs take two words each, low first.
TensorFlow's Philox carries a counter overflow into the next word, LiteRT's does not: the two differ
only when state[1] + blocks passes 2**64.
"""

from __future__ import annotations

import tensorflow as tf

from .registry import register
from .stablehlo import LITERT

_WORDS_PER_ELEMENT = {tf.int32: 1, tf.uint32: 1, tf.int64: 2, tf.uint64: 2}


def _rotate_left(x, bits: int):
    return tf.bitwise.bitwise_or(tf.bitwise.left_shift(x, tf.constant(bits, tf.uint32)),
                                 tf.bitwise.right_shift(x, tf.constant(32 - bits, tf.uint32)))


def threefry2x32(key_0, key_1, counter_0, counter_1):
    """Threefry-2x32 with 20 rounds on uint32 tensors; the two output words."""
    key_2 = tf.bitwise.bitwise_xor(tf.bitwise.bitwise_xor(key_0, key_1), tf.constant(0x1BD11BDA, tf.uint32))
    x0, x1 = counter_0 + key_0, counter_1 + key_1
    rotations = ((13, 15, 26, 6), (17, 29, 16, 24))
    injections = ((key_1, key_2), (key_2, key_0), (key_0, key_1), (key_1, key_2), (key_2, key_0))
    for group, (ks0, ks1) in enumerate(injections):
        for rotation in rotations[group % 2]:
            x0 = x0 + x1
            x1 = tf.bitwise.bitwise_xor(_rotate_left(x1, rotation), x0)
        x0 = x0 + ks0
        x1 = x1 + ks1 + tf.constant(group + 1, tf.uint32)
    return x0, x1


@register("STABLEHLO_RNG_BIT_GENERATOR", note=LITERT + "; PHILOX/DEFAULT and THREEFRY streams word for word")
def build_stablehlo_rng_bit_generator(ctx, op, inputs):
    (state,) = inputs
    dtype = ctx.output_dtype(1)
    if state.dtype != tf.uint64 or state.shape.rank != 1 or state.shape[0] not in (2, 3):
        raise ctx.fail(f"the state must be uint64 of 2 or 3 elements, not {state.dtype.name} {state.shape}")
    if dtype not in _WORDS_PER_ELEMENT:
        raise ctx.fail(f"output type {dtype.name} is not int32, uint32, int64 or uint64")
    shape = ctx.output_shape(1)
    if any(d is None for d in shape):
        raise ctx.fail(f"the output shape {shape} is dynamic")
    elements = 1
    for d in shape:
        elements *= d
    words = elements * _WORDS_PER_ELEMENT[dtype]
    algorithm = str(op.options.get("algorithm", "DEFAULT"))
    if algorithm == "THREEFRY":
        if state.shape[0] != 2:
            raise ctx.fail("THREEFRY takes a u64[2] state")
        blocks = (words + 1) // 2
        key = tf.bitcast(state[0], tf.uint32)
        counters = tf.bitcast(state[1] + tf.cast(tf.range(blocks, dtype=tf.int64), tf.uint64), tf.uint32)
        x0, x1 = threefry2x32(key[0], key[1], counters[:, 0], counters[:, 1])
        stream = tf.reshape(tf.stack([x0, x1], axis=1), [-1])[:words]
    elif algorithm in ("PHILOX", "DEFAULT"):
        blocks = (words + 3) // 4
        high = state[2] if state.shape[0] == 3 else state[0]
        stream = tf.raw_ops.StatelessRandomUniformFullIntV2(
            shape=[blocks * 4], key=state[:1], counter=tf.stack([state[1], high]), alg=1, dtype=tf.uint32)[:words]
    else:
        raise ctx.fail(f"unknown algorithm {algorithm!r}")
    if _WORDS_PER_ELEMENT[dtype] == 2:
        values = tf.bitcast(tf.reshape(stream, [elements, 2]), tf.uint64)
    else:
        values = stream
    values = tf.reshape(tf.bitcast(values, dtype) if values.dtype != dtype else values, shape)
    new_state = tf.concat([state[:1], state[1:2] + tf.constant(blocks, tf.uint64), state[2:]], axis=0)
    return [new_state, values]
