"""TFLite Micro's signal library, stateful custom ops: ``SignalFramer``, ``SignalOverlapAdd``,
``SignalDelay``, ``SignalStacker``, ``SignalFilterBankSpectralSubtraction``.

TFLM keeps these kernels' state in persistent buffers between invocations (circular buffers of
int16 samples, the overlap-add accumulator, the spectral-subtraction noise estimate) and clears
it in ``Prepare`` and in the kernel's ``Reset``. Here each operator's state is module state: one
set of ``tf.Variable``s per operator, made by the spec's ``resource_factory`` with the value
``Reset`` gives, read at the start of a call and written back at its end, so a sequence of calls
to the inverted model gives what a sequence of ``Invoke`` calls gives.

The circular buffers are FIFOs; here a FIFO is a fixed-size int16 array whose first ``count``
entries are the queued samples (oldest first) plus that count. Where a kernel leaves an output
unwritten (the frame of a Framer or the stack of a Stacker that is not ready, flagged by
``output_valid = false``) the builder writes zeros.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .registry import register_custom
from .signal_library import INT16_MAX, INT16_MIN, flexbuffer_options, int_option

_NOTE = ("TFLite Micro signal library; state kept between calls as module variables (reset values as the "
         "kernel's Reset); tested against a numpy transcription over a sequence of calls (LiteRT has no kernel)")


def _key(ctx) -> str:
    return f"signal/{ctx.subgraph.index}/{ctx.op.index}"


def _file_shape(ctx, tensor) -> list[int]:
    if tensor is None or not tensor.has_rank or any(d < 0 for d in tensor.shape_signature):
        raise ctx.fail("needs a static input shape for its state")
    return [int(d) for d in tensor.shape]


def _state_factory(initial):
    """A resource factory from ``initial(ctx) -> {name: numpy array}``: one variable per entry."""

    def factory(ctx):
        values = initial(ctx)

        def make():
            return {name: tf.Variable(value, trainable=False, name=f"{_key(ctx).replace('/', '_')}_{name}")
                    for name, value in values.items()}

        return _key(ctx), make

    return factory


# -- FIFO helpers -------------------------------------------------------------------------------------
def _fifo_write(queue, count, values):
    """Append ``values`` [rows, n] after the first ``count`` entries of ``queue`` [rows, capacity]."""
    capacity, n = int(queue.shape[1]), int(values.shape[1])
    source = tf.range(capacity) - count
    take = (source >= 0) & (source < n)
    written = tf.gather(values, tf.clip_by_value(source, 0, max(n - 1, 0)), axis=1)
    return tf.where(take[None, :], written, queue), count + n


def _fifo_discard(queue, count, n: int):
    capacity = int(queue.shape[1])
    shifted = tf.concat([queue[:, n:], tf.zeros_like(queue[:, :n])], axis=1) if n < capacity else tf.zeros_like(queue)
    return shifted, count - n


# -- SignalFramer ----------------------------------------------------------------------------------------
def _framer_options(ctx):
    options = flexbuffer_options(ctx, ctx.op)
    size, step = int_option(ctx, options, "frame_size", 1), int_option(ctx, options, "frame_step", 1)
    return size, step, bool(options.get("prefill", False))


def _framer_initial(ctx):
    size, step, prefill = _framer_options(ctx)
    shape = _file_shape(ctx, ctx.input_tensor(0))
    outer = int(np.prod(shape[:-1]))
    capacity = (size + step - 1) // step * step
    count = size - step if prefill else 0
    return {"queue": np.zeros([outer, capacity], np.int16), "count": np.int32(count)}


@register_custom("SignalFramer", max_version=1, note=_NOTE, resource_factory=_state_factory(_framer_initial))
def build_signal_framer(ctx, op, inputs):
    """Per row of the input, frame_step samples at a time into a FIFO; each time it holds
    frame_size samples a frame is output and frame_step samples are dropped."""
    size, step, _ = _framer_options(ctx)
    x = inputs[0]
    shape = _file_shape(ctx, ctx.input_tensor(0))
    inner = shape[-1]
    if inner < step or inner % step:
        raise ctx.fail(f"innermost dimension {inner} is not a positive multiple of frame_step {step}")
    state = ctx.resource(_key(ctx))
    queue, count = state["queue"].read_value(), state["count"].read_value()
    rows = tf.reshape(x, [-1, inner])
    valid = tf.constant(True)
    frames = []
    for frame in range(inner // step):
        queue, count = _fifo_write(queue, count, rows[:, frame * step:(frame + 1) * step])
        ready = count >= size
        frames.append(tf.where(ready, queue[:, :size], tf.zeros_like(queue[:, :size])))
        dropped, dropped_count = _fifo_discard(queue, count, step)
        queue, count = tf.where(ready, dropped, queue), tf.where(ready, dropped_count, count)
        valid = valid & ready
    state["queue"].assign(queue)
    state["count"].assign(count)
    out = tf.reshape(tf.stack(frames, axis=1), shape[:-1] + [inner // step, size])
    return [out, valid]


# -- SignalOverlapAdd ----------------------------------------------------------------------------------
_SAMPLE_TYPES = {0: np.float32, 7: np.int16}


def _overlap_add_initial(ctx):
    options = flexbuffer_options(ctx, ctx.op)
    dtype = _SAMPLE_TYPES.get(options.get("T"))
    if dtype is None:
        raise ctx.fail(f"option T = {options.get('T')!r} is not float32 (0) or int16 (7)")
    shape = _file_shape(ctx, ctx.input_tensor(0))
    if len(shape) < 2:
        raise ctx.fail("input must have at least 2 dimensions (frames, frame size)")
    return {"buffer": np.zeros([int(np.prod(shape[:-2])), shape[-1]], dtype)}


@register_custom("SignalOverlapAdd", max_version=1, note=_NOTE, resource_factory=_state_factory(_overlap_add_initial))
def build_signal_overlap_add(ctx, op, inputs):
    """OverlapAdd per frame: buffer += frame (int16 saturating), output buffer[:frame_step], then
    shift the buffer left by frame_step with zeros."""
    step = int_option(ctx, flexbuffer_options(ctx, op), "frame_step", 1)
    shape = _file_shape(ctx, ctx.input_tensor(0))
    n_frames, size = shape[-2], shape[-1]
    if step > size:
        raise ctx.fail(f"frame_step {step} exceeds the frame size {size}")
    buffer_var = ctx.resource(_key(ctx))["buffer"]
    if buffer_var.dtype != inputs[0].dtype:
        raise ctx.fail(f"option T says {buffer_var.dtype.name}, the input is {inputs[0].dtype.name}")
    buffer = buffer_var.read_value()
    frames = tf.reshape(inputs[0], [-1, n_frames, size])
    outputs = []
    for frame in range(n_frames):
        if buffer.dtype == tf.int16:
            total = tf.cast(buffer, tf.int32) + tf.cast(frames[:, frame], tf.int32)
            buffer = tf.cast(tf.clip_by_value(total, INT16_MIN, INT16_MAX), tf.int16)
        else:
            buffer = buffer + frames[:, frame]
        outputs.append(buffer[:, :step])
        buffer = tf.concat([buffer[:, step:], tf.zeros_like(buffer[:, :step])], axis=1)
    buffer_var.assign(buffer)
    return [tf.reshape(tf.concat(outputs, axis=1), shape[:-2] + [n_frames * step])]


# -- SignalDelay ----------------------------------------------------------------------------------------
def _delay_initial(ctx):
    delay = int_option(ctx, flexbuffer_options(ctx, ctx.op), "delay_length", 0)
    shape = _file_shape(ctx, ctx.input_tensor(0))
    return {"samples": np.zeros([int(np.prod(shape[:-1])), delay], np.int16)}


@register_custom("SignalDelay", max_version=1, note=_NOTE, resource_factory=_state_factory(_delay_initial))
def build_signal_delay(ctx, op, inputs):
    """Each row is delayed by delay_length samples: the FIFO starts with delay_length zeros, takes a
    row and gives back as many samples."""
    shape = _file_shape(ctx, ctx.input_tensor(0))
    samples = ctx.resource(_key(ctx))["samples"]
    frame = shape[-1]
    joined = tf.concat([samples.read_value(), tf.reshape(inputs[0], [-1, frame])], axis=1)
    samples.assign(joined[:, frame:])
    return [tf.reshape(joined[:, :frame], shape)]


# -- SignalStacker -----------------------------------------------------------------------------------
def _stacker_options(ctx):
    options = flexbuffer_options(ctx, ctx.op)
    channels = int_option(ctx, options, "num_channels", 1)
    left = int_option(ctx, options, "stacker_left_context", 0)
    right = int_option(ctx, options, "stacker_right_context", 0)
    step = int_option(ctx, options, "stacker_step", 1)
    return channels, left, right, step


def _stacker_initial(ctx):
    channels, left, right, _ = _stacker_options(ctx)
    return {"queue": np.zeros([1, channels * (left + right + 1)], np.int16), "count": np.int32(0),
            "has_first_frame": np.bool_(False)}


@register_custom("SignalStacker", max_version=1, note=_NOTE, resource_factory=_state_factory(_stacker_initial))
def build_signal_stacker(ctx, op, inputs):
    """A FIFO of num_channels * (left + 1 + right) samples: each call appends a frame (the first
    one left + 1 times); when full it is output and stacker_step frames are dropped."""
    channels, left, right, step = _stacker_options(ctx)
    size = channels * (left + right + 1)
    if _file_shape(ctx, ctx.input_tensor(0)) != [channels]:
        raise ctx.fail(f"input must have shape [num_channels] = [{channels}]")
    state = ctx.resource(_key(ctx))
    queue, count, first = (state[k].read_value() for k in ("queue", "count", "has_first_frame"))
    frame = tf.reshape(inputs[0], [1, channels])
    queue, count = _fifo_write(queue, count, frame)
    extended, extended_count = _fifo_write(queue, count, tf.tile(frame, [1, left])) if left else (queue, count)
    queue, count = tf.where(first, queue, extended), tf.where(first, count, extended_count)
    ready = count >= size
    out = tf.where(ready, queue[0, :size], tf.zeros([size], tf.int16))
    dropped, dropped_count = _fifo_discard(queue, count, channels * step)
    state["queue"].assign(tf.where(ready, dropped, queue))
    state["count"].assign(tf.where(ready, dropped_count, count))
    state["has_first_frame"].assign(tf.constant(True))
    return [out, ready]


# -- SignalFilterBankSpectralSubtraction --------------------------------------------------------------
def _subtraction_initial(ctx):
    channels = int_option(ctx, flexbuffer_options(ctx, ctx.op), "num_channels", 1)
    return {"noise_estimate": np.zeros([channels], np.uint32)}


@register_custom("SignalFilterBankSpectralSubtraction", max_version=1, note=_NOTE,
                 resource_factory=_state_factory(_subtraction_initial))
def build_signal_filter_bank_spectral_subtraction(ctx, op, inputs):
    """FilterbankSpectralSubtraction: a low-pass noise estimate per channel (even channels use
    smoothing, odd ones alternate_smoothing), subtracted with a floor; outputs the signal and the
    updated estimate."""
    options = flexbuffer_options(ctx, op)
    names = ("smoothing", "one_minus_smoothing", "alternate_smoothing", "alternate_one_minus_smoothing",
             "min_signal_remaining", "smoothing_bits", "spectral_subtraction_bits")
    o = {name: int_option(ctx, options, name) & 0xFFFFFFFF for name in names}  # ElementAsInt32 into uint32
    channels = int_option(ctx, options, "num_channels", 1)
    clamping = bool(options.get("clamping", False))
    x = inputs[0]
    if ctx.output_shape(0) != [channels] or x.shape.as_list() != [channels]:
        raise ctx.fail(f"input and output must have shape [num_channels] = [{channels}]")
    odd = np.arange(channels) % 2 == 1
    smoothing = tf.constant(np.where(odd, o["alternate_smoothing"], o["smoothing"]), tf.uint64)
    one_minus = tf.constant(np.where(odd, o["alternate_one_minus_smoothing"], o["one_minus_smoothing"]), tf.uint64)
    state = ctx.resource(_key(ctx))["noise_estimate"]
    u32, u64 = tf.uint32, tf.uint64
    bits, sub_bits = tf.constant(o["smoothing_bits"], u32), tf.constant(o["spectral_subtraction_bits"], u64)
    scaled_up = tf.bitwise.left_shift(x, bits)
    noise = tf.cast(tf.bitwise.right_shift(tf.cast(scaled_up, u64) * smoothing + tf.cast(state.read_value(), u64) * one_minus,
                                           sub_bits), u32)
    estimate = tf.minimum(noise, scaled_up)
    if clamping:
        noise = estimate
    floor = tf.cast(tf.bitwise.right_shift(tf.cast(x, u64) * tf.constant(o["min_signal_remaining"], u64), sub_bits), u32)
    subtracted = tf.bitwise.right_shift(scaled_up - estimate, bits)
    state.assign(noise)
    return [tf.maximum(subtracted, floor), noise]
