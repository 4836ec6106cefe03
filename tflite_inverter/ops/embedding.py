"""Embedding and hashing ops, mostly legacy: EMBEDDING_LOOKUP, HASHTABLE_LOOKUP,
EMBEDDING_LOOKUP_SPARSE, LSH_PROJECTION, SKIP_GRAM.

Each follows its TFLite kernel, quirks included:

* EMBEDDING_LOOKUP's hybrid kernel reads a uint8 table as int8 (bytes >= 128 are negative).
* HASHTABLE_LOOKUP finds keys with glibc's ``bsearch``: the builder replays that binary search, so
  unsorted keys give TFLite's answer (some present keys are missed).
* EMBEDDING_LOOKUP_SPARSE combines *runs* of consecutive lookups into the same output row: a row
  met again later is added to and divided again (for MEAN and SQRTN), as in the kernel.
* LSH_PROJECTION hashes (seed, row bytes) with FarmHash Fingerprint64, as ``tf.fingerprint`` does.
* SKIP_GRAM splits on C ``isspace`` with the kernel's edge cases (a leading space makes the first
  word disappear when another space follows) and enumerates n-grams in the kernel's order.

CONCAT_EMBEDDINGS has no kernel in LiteRT (BuiltinOpResolver registers none), so nothing can say what
it computes; it is not registered.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .registry import register


@register("EMBEDDING_LOOKUP", max_version=4)
def build_embedding_lookup(ctx, op, inputs):
    """Rows of the table (input 1) for the ids (input 0). A quantized table is dequantized by the dequantize pass
    (scale * q, per row for per-channel scales), as TFLite's hybrid kernel does, except that the
    kernel reads a uint8 table as int8: a byte q >= 128 stands for scale * (q - 256)."""
    ids, table = inputs
    tensor, raw = ctx.input_tensor(1), ctx.constant(1)
    if (tensor.dtype == "uint8" and tensor.quantization is not None and raw is not None
            and ctx.output_tensor(0).dtype in ("float32", "float16")):
        raw = np.asarray(raw)
        scales = tensor.quantization.scales.astype(np.float32)
        scales = scales.reshape([-1] + [1] * (raw.ndim - 1)) if scales.size > 1 else scales.reshape(())
        signed = raw.view(np.int8).astype(np.float32) * scales
        table = tf.where(tf.constant(raw >= 128), tf.constant(signed.astype(np.float32)), tf.cast(table, tf.float32))
    return [tf.cast(tf.gather(table, ids), ctx.output_dtype(0))]


def _bsearch(keys, lookups, num_keys):
    """glibc's bsearch (``l = 0, u = n; idx = (l + u) / 2``) as TFLite calls it: the index found for
    each lookup, or -1. TFLite's comparator is ``lookup - key``, but LiteRT's build behaves as an
    exact comparison (keys 2^32 - 1296 apart are still found), so no int32 wrap is replayed."""
    count = tf.shape(lookups)[0]
    low = tf.zeros([count], tf.int32)
    high = tf.fill([count], num_keys)
    found = tf.fill([count], -1)
    steps = 32 if isinstance(num_keys, tf.Tensor) else max(1, int(num_keys).bit_length() + 1)
    for _ in range(steps):
        searching = (low < high) & (found < 0)
        middle = (low + high) // 2
        key = tf.gather(keys, tf.minimum(middle, tf.maximum(num_keys - 1, 0)))
        found = tf.where(searching & tf.equal(lookups, key), middle, found)
        high = tf.where(searching & (lookups < key), middle, high)
        low = tf.where(searching & (lookups > key), middle + 1, low)
    return found


@register("HASHTABLE_LOOKUP", max_version=1)
def build_hashtable_lookup(ctx, op, inputs):
    """Outputs: the value row of each found key (zeros, or "" for strings, when missing) and a uint8
    hit flag."""
    lookups, keys, values = inputs
    lookups, keys = tf.cast(lookups, tf.int32), tf.cast(keys, tf.int32)
    num_keys = keys.shape[0] if keys.shape[0] is not None else tf.shape(keys)[0]
    found = _bsearch(keys, lookups, num_keys)
    hit = found >= 0
    rows = tf.gather(values, tf.maximum(found, 0))
    mask = tf.reshape(hit, tf.concat([tf.shape(hit), tf.ones([tf.rank(rows) - 1], tf.int32)], 0))
    empty = tf.zeros_like(rows) if rows.dtype != tf.string else tf.fill(tf.shape(rows), "")
    return [tf.where(mask, rows, empty), tf.cast(hit, tf.uint8)]


@register("EMBEDDING_LOOKUP_SPARSE", max_version=1)
def build_embedding_lookup_sparse(ctx, op, inputs):
    """Lookup i adds ``weights[i] * table[ids[i]]`` to the output row named by ``indices[i, :-1]``
    (row-major over ``dense_shape[:-1]``; contributions outside the output are dropped). A run of
    consecutive lookups into one row ends by dividing that row by the run's total weight (MEAN) or
    the root of its sum of squared weights (SQRTN)."""
    ids, indices, dense_shape, weights, table = inputs
    combiner = op.options.get("combiner", "SUM")
    table = tf.cast(table, tf.float32)
    lookup_rank = indices.shape[1]
    if lookup_rank is None:
        raise ctx.fail("the sparse indices need a static second dimension")
    dense_shape = tf.cast(dense_shape, tf.int32)
    constant_shape = ctx.constant(2)
    if constant_shape is not None:
        dense_shape = tf.constant(np.asarray(constant_shape, np.int32))
    out_dims = dense_shape[:lookup_rank - 1]
    buckets = tf.reduce_prod(out_dims)
    embedding_shape = tf.shape(table)[1:]
    embedding_size = tf.reduce_prod(embedding_shape)

    # Output row of each lookup: sum_k indices[i, k] * stride_k, strides over dense_shape[:-1].
    strides = tf.math.cumprod(out_dims, reverse=True, exclusive=True)
    row = tf.reduce_sum(tf.cast(indices[:, :lookup_rank - 1], tf.int32) * strides[tf.newaxis, :], axis=1)
    count = tf.shape(ids)[0]
    vectors = tf.reshape(tf.gather(table, ids), [count, embedding_size]) * weights[:, tf.newaxis]
    # Runs of equal consecutive rows.
    starts = tf.concat([tf.ones([tf.minimum(count, 1)], tf.bool), tf.not_equal(row[1:], row[:-1])], 0)
    run = tf.cumsum(tf.cast(starts, tf.int32)) - 1
    runs = tf.reduce_sum(tf.cast(starts, tf.int32))
    sums = tf.math.unsorted_segment_sum(vectors, run, runs)
    total = tf.math.unsorted_segment_sum(weights, run, runs)
    squares = tf.math.unsorted_segment_sum(weights * weights, run, runs)
    run_row = tf.math.unsorted_segment_max(row, run, runs)
    if combiner == "MEAN":
        divisor = total
    elif combiner == "SQRTN":
        divisor = tf.sqrt(squares)
    else:
        divisor = None
    inside = (run_row >= 0) & (run_row < buckets)

    def step(i, output):
        target = tf.clip_by_value(run_row[i], 0, tf.maximum(buckets - 1, 0))
        value = output[target] + sums[i]
        if divisor is not None:
            value = value / divisor[i]
        updated = tf.tensor_scatter_nd_update(output, [[target]], [value])
        return i + 1, tf.where(inside[i], updated, output)

    output = tf.zeros(tf.stack([buckets, embedding_size]), tf.float32)
    _, output = tf.while_loop(lambda i, _: i < runs, step, (tf.constant(0), output))
    shape = tf.concat([out_dims, embedding_shape], 0)
    return [tf.reshape(output, shape)]


@register("LSH_PROJECTION", max_version=1)
def build_lsh_projection(ctx, op, inputs):
    """Bit (i, j) is the sign of sum_k weight[k] * double(Fingerprint64(seed_ij bytes ++ row k bytes));
    SPARSE packs each hash's bits into one int32 (plus i << num_bits), DENSE returns the bits."""
    hash_seeds, data = inputs[0], inputs[1]
    weights = inputs[2] if len(inputs) > 2 else None
    if data.dtype == tf.string:
        raise ctx.fail("LSH_PROJECTION of a string tensor hashes TFLite's string buffer layout; not supported")
    num_hash, num_bits = hash_seeds.shape
    if num_hash is None or num_bits is None:
        raise ctx.fail("the hash tensor needs a static shape")
    rows = tf.shape(data)[0]
    if data.dtype == tf.bool:
        data = tf.cast(data, tf.uint8)
    row_bytes = tf.reshape(tf.bitcast(data, tf.uint8), [rows, -1])
    seeds = tf.reshape(tf.bitcast(tf.cast(tf.reshape(hash_seeds, [-1]), tf.float32), tf.uint8), [-1, 4])  # [hash*bits, 4]
    seeds_count = num_hash * num_bits
    keys = tf.concat([tf.repeat(seeds[:, tf.newaxis, :], rows, axis=1),
                      tf.repeat(row_bytes[tf.newaxis], seeds_count, axis=0)], axis=2)  # [hash*bits, rows, 4 + bytes]
    fingerprints = tf.fingerprint(tf.reshape(keys, [seeds_count * rows, -1]))  # little-endian uint64 bytes
    signatures = tf.cast(tf.bitcast(fingerprints, tf.int64), tf.float64)
    signatures = tf.reshape(signatures, [seeds_count, rows])
    if weights is not None:
        signatures = tf.cast(tf.cast(weights, tf.float32), tf.float64)[tf.newaxis, :] * signatures
    score = tf.math.cumsum(signatures, axis=1)[:, -1]  # summed in order, in double
    bits = tf.reshape(tf.cast(score > 0, tf.int32), [num_hash, num_bits])
    if op.options.get("type") == "SPARSE":
        powers = tf.constant([1 << (num_bits - 1 - j) for j in range(num_bits)], tf.int64)
        packed = tf.reduce_sum(tf.cast(bits, tf.int64) * powers[tf.newaxis, :], axis=1)
        packed = packed + tf.range(num_hash, dtype=tf.int64) * (1 << num_bits)
        wrapped = tf.bitwise.bitwise_and(packed, 0xFFFFFFFF)
        return [tf.cast(tf.where(wrapped >= (1 << 31), wrapped - (1 << 32), wrapped), tf.int32)]
    return [tf.reshape(bits, [-1])]


_SPACES = [b" ", b"\t", b"\n", b"\v", b"\f", b"\r"]  # C isspace in the "C" locale


def _skip_gram_words(sentence):
    """The kernel's tokenizer: separators are whitespace bytes at positions >= 1; a piece before a
    separator is a word if non-empty and not starting with whitespace; the piece after the last
    separator is a word if non-empty (whatever it starts with)."""
    chars = tf.strings.bytes_split(sentence)
    length = tf.size(chars)
    space = tf.reduce_any(tf.equal(chars[:, tf.newaxis], tf.constant(_SPACES)[tf.newaxis, :]), axis=1)
    separator = space & (tf.range(length) >= 1)
    ends = tf.cast(tf.reshape(tf.where(separator), [-1]), tf.int32)
    starts = tf.concat([[0], ends[:-1] + 1], 0)[:tf.size(ends)]
    first_space = tf.gather(space, tf.minimum(starts, tf.maximum(length - 1, 0)))
    keep = (ends > starts) & ~first_space
    tail_start = tf.cond(tf.size(ends) > 0, lambda: ends[-1] + 1, lambda: tf.constant(0))
    starts = tf.concat([tf.boolean_mask(starts, keep), [tail_start]], 0)
    ends = tf.concat([tf.boolean_mask(ends, keep), [length]], 0)
    keep = tf.concat([tf.ones([tf.size(starts) - 1], tf.bool), [length > tail_start]], 0)
    starts, ends = tf.boolean_mask(starts, keep), tf.boolean_mask(ends, keep)
    return tf.strings.substr(tf.fill(tf.shape(starts), sentence), starts, ends - starts)


@register("SKIP_GRAM", max_version=1)
def build_skip_gram(ctx, op, inputs):
    """The n-grams of the first string, skipping at most max_skip_size words between neighbours,
    joined by a space, in the kernel's depth-first order (all sizes up to ngram_size with
    include_all_ngrams)."""
    o = op.options
    size, max_skip, include_all = int(o["ngram_size"]), int(o["max_skip_size"]), bool(o["include_all_ngrams"])
    if size < 1:
        raise ctx.fail(f"ngram_size {size} is not positive")
    sentence = tf.reshape(inputs[0], [-1])[0]
    words = _skip_gram_words(sentence)
    num_words = tf.size(words)

    def step_in(stack, depth):
        current = tf.gather(stack, tf.minimum(depth, size - 1))
        previous = tf.gather(stack, tf.maximum(depth - 1, 0))
        inside = (depth < size) & (current + 1 < num_words)
        return inside & ((depth == 0) | (current - previous <= max_skip))

    def emit(depth):
        return (depth > 0) & ((depth <= size) if include_all else tf.equal(depth, size))

    def body(step, stack, depth, grams, lengths, emitted):
        go = step_in(stack, depth)
        position = tf.minimum(depth, size - 1)
        # Step in: stack[depth] += 1; depth += 1; stack[depth] = stack[depth - 1] (when depth < size).
        advanced = tf.tensor_scatter_nd_add(stack, [[position]], [1])
        following = tf.minimum(depth + 1, size - 1)
        advanced = tf.where(depth + 1 < size, tf.tensor_scatter_nd_update(advanced, [[following]], [advanced[position]]),
                            advanced)
        # Or step back, emitting stack[:depth] first when it is an n-gram. Every step is recorded
        # (a TensorArray index is written once); the emitted ones are picked afterwards.
        grams = grams.write(step, stack)
        lengths = lengths.write(step, depth)
        emitted = emitted.write(step, ~go & emit(depth))
        stack = tf.where(go, advanced, stack)
        depth = tf.where(go, depth + 1, depth - 1)
        return step + 1, stack, depth, grams, lengths, emitted

    arrays = [tf.TensorArray(dtype, size=0, dynamic_size=True, element_shape=shape)
              for dtype, shape in ((tf.int32, [size]), (tf.int32, []), (tf.bool, []))]
    start = (tf.constant(0), tf.zeros([size], tf.int32), tf.constant(1), *arrays)
    enough = num_words >= size  # fewer words than ngram_size: no output
    _, _, _, grams, lengths, emitted = tf.while_loop(lambda t, s, d, *_: enough & (d >= 0), body, start)
    emitted = tf.reshape(emitted.stack(), [-1])
    stacks = tf.boolean_mask(tf.reshape(grams.stack(), [-1, size]), emitted)
    lengths = tf.boolean_mask(tf.reshape(lengths.stack(), [-1]), emitted)
    pieces = tf.gather(words, stacks)
    mask = tf.range(size)[tf.newaxis, :] < lengths[:, tf.newaxis]
    joined = tf.strings.reduce_join(tf.ragged.boolean_mask(pieces, mask), axis=1, separator=" ")
    return [tf.reshape(joined, [-1])]
