"""TFLite Micro's signal-library FFTs: custom ops ``SignalRfft`` and ``SignalIrfft``.

The TFLM kernels (``signal/micro/kernels/rfft.cc``, ``irfft.cc``) call KissFFT 1.30
(``kiss_fftr`` / ``kiss_fftri``) built three times: float, ``FIXED_POINT 16`` and
``FIXED_POINT 32``. The fixed-point builds divide by the radix at every butterfly
(``C_FIXDIV``) and round every product (``sround``), so their result is not an FFT scaled by
a constant but a particular integer sequence. The builders therefore run KissFFT's own
algorithm: the same factorisation (4s, then 2s, then odd primes), the same input permutation,
one butterfly stage per factor (vectorised over the butterflies of the stage; radix 2, 3, 4, 5:
KissFFT's generic butterfly crashes in TFLM's build, so those lengths are refused), the same
twiddles (``floor(.5 + SAMP_MAX * cos)`` in fixed point), the same real-FFT pre/post
processing, and a store to the 16- or 32-bit sample type (wrapping) wherever C stores one.
Products are formed in int64 (KissFFT's ``SAMPPROD`` is int32 for 16 bits, int64 for 32).
The float build uses float32 arithmetic in KissFFT's order of operations.

Options (a flexbuffer map): ``T`` (TensorType of the samples: 0 float32, 2 int32, 7 int16),
``fft_length``. The input's last axis (``input_length`` samples) is zero-padded to
``fft_length``; each row gives ``fft_length / 2 + 1`` complex bins, stored interleaved
(real, imaginary). SignalIrfft reads those bins and writes ``fft_length`` samples; the float
kernel divides by ``fft_length``, the integer kernels do not (KissFFT already scaled by 1/N).
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from .registry import register_custom
from .signal_library import flexbuffer_options

_TENSOR_TYPES = {0: "float32", 2: "int32", 7: "int16"}


# -- arithmetic of one KissFFT build ----------------------------------------------------------------
class _FixedPoint:
    """KissFFT's FIXED_POINT macros on int64 tensors holding values of the sample type."""

    def __init__(self, bits: int):
        self.bits = bits
        self.frac = bits - 1  # FRACBITS
        self.samp_max = (1 << (bits - 1)) - 1
        self.sample = tf.int16 if bits == 16 else tf.int32
        self.dtype = tf.int64

    def store(self, x):
        """Assignment to a kiss_fft_scalar (wraps to the sample type)."""
        return tf.cast(tf.cast(x, self.sample), tf.int64)

    def sround(self, x):
        return tf.bitwise.right_shift(x + (1 << (self.frac - 1)), tf.constant(self.frac, tf.int64))

    def fixdiv(self, c, k):
        factor = tf.constant(self.samp_max // k, tf.int64)
        return self.store(self.sround(c[0] * factor)), self.store(self.sround(c[1] * factor))

    def s_mul(self, a, b):
        return self.store(self.sround(a * b))

    def c_mul(self, a, b):
        return (self.store(self.sround(a[0] * b[0] - a[1] * b[1])),
                self.store(self.sround(a[0] * b[1] + a[1] * b[0])))

    def half(self, x):
        return tf.bitwise.right_shift(x, tf.constant(1, tf.int64))

    def twiddle(self, phase: float) -> tuple[int, int]:
        return (int(math.floor(0.5 + self.samp_max * math.cos(phase))),
                int(math.floor(0.5 + self.samp_max * math.sin(phase))))


class _Float:
    """KissFFT's float macros (FIXDIV a no-op, HALF_OF a multiplication by 0.5f)."""

    dtype = tf.float32

    def store(self, x):
        return x

    def fixdiv(self, c, k):
        return c

    def s_mul(self, a, b):
        return a * b

    def c_mul(self, a, b):
        return a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]

    def half(self, x):
        return x * tf.constant(0.5, tf.float32)

    def twiddle(self, phase: float) -> tuple[float, float]:
        return float(np.float32(math.cos(phase))), float(np.float32(math.sin(phase)))


def _add(arith, a, b):
    return arith.store(a[0] + b[0]), arith.store(a[1] + b[1])


def _sub(arith, a, b):
    return arith.store(a[0] - b[0]), arith.store(a[1] - b[1])


# -- the complex FFT ---------------------------------------------------------------------------------
def kiss_factors(n: int) -> list[tuple[int, int]]:
    """kf_factor: (radix, remaining length) pairs, powers of 4 first, then 2, then odd primes."""
    factors, p, floor_sqrt = [], 4, math.floor(math.sqrt(n))
    while True:
        while n % p:
            p = {4: 2, 2: 3}.get(p, p + 2)
            if p > floor_sqrt:
                p = n
        n //= p
        factors.append((p, n))
        if n <= 1:
            return factors


def _leaf_order(n: int, factors: list[tuple[int, int]]) -> np.ndarray:
    """The input index that kf_work copies into each output slot before the first butterfly."""
    order = np.zeros(n, np.int64)

    def work(out: int, first: int, fstride: int, depth: int) -> None:
        p, m = factors[depth]
        for j in range(p):
            if m == 1:
                order[out + j] = first + j * fstride
            else:
                work(out + j * m, first + j * fstride, fstride * p, depth + 1)

    work(0, 0, 1, 0)
    return order


class _KissFft:
    """One complex KissFFT of length ``n`` (forward or inverse), on (real, imag) tensors [rows, n]."""

    def __init__(self, arith, n: int, inverse: bool):
        self.arith, self.n, self.inverse = arith, n, inverse
        self.factors = kiss_factors(n)
        sign = 1.0 if inverse else -1.0
        self.twiddles = np.array([arith.twiddle(sign * 2 * math.pi * i / n) for i in range(n)])
        self.order = _leaf_order(n, self.factors)

    def _tw(self, indices) -> tuple:
        values = self.twiddles[np.asarray(indices)]
        return (tf.constant(values[..., 0], self.arith.dtype), tf.constant(values[..., 1], self.arith.dtype))

    def __call__(self, re, im):
        re, im = tf.gather(re, self.order, axis=1), tf.gather(im, self.order, axis=1)
        # kf_work recurses depth first; every block of a level depends only on the level below, and a
        # level with radix p and sub-length m has n / (p m) blocks, which is also its twiddle stride.
        for p, m in reversed(self.factors):
            fstride = self.n // (p * m)
            shape = [-1, fstride, p, m]
            blocks = (tf.reshape(re, shape), tf.reshape(im, shape))
            inputs = [(blocks[0][:, :, q, :], blocks[1][:, :, q, :]) for q in range(p)]
            outputs = self._butterfly(inputs, p, m, fstride)
            re = tf.reshape(tf.stack([o[0] for o in outputs], axis=2), [-1, self.n])
            im = tf.reshape(tf.stack([o[1] for o in outputs], axis=2), [-1, self.n])
        return re, im

    def _butterfly(self, f, p, m, fstride):
        a, u = self.arith, np.arange(m)
        if p == 2:
            f = [a.fixdiv(c, 2) for c in f]
            t = a.c_mul(f[1], self._tw(u * fstride))
            return [_add(a, f[0], t), _sub(a, f[0], t)]
        if p == 4:
            f = [a.fixdiv(c, 4) for c in f]
            s0 = a.c_mul(f[1], self._tw(u * fstride))
            s1 = a.c_mul(f[2], self._tw(2 * u * fstride))
            s2 = a.c_mul(f[3], self._tw(3 * u * fstride))
            s5 = _sub(a, f[0], s1)
            f0 = _add(a, f[0], s1)
            s3, s4 = _add(a, s0, s2), _sub(a, s0, s2)
            f2 = _sub(a, f0, s3)
            f0 = _add(a, f0, s3)
            if self.inverse:
                f1 = (a.store(s5[0] - s4[1]), a.store(s5[1] + s4[0]))
                f3 = (a.store(s5[0] + s4[1]), a.store(s5[1] - s4[0]))
            else:
                f1 = (a.store(s5[0] + s4[1]), a.store(s5[1] - s4[0]))
                f3 = (a.store(s5[0] - s4[1]), a.store(s5[1] + s4[0]))
            return [f0, f1, f2, f3]
        if p == 3:
            epi3_i = tf.constant(self.twiddles[fstride * m][1], a.dtype)
            f = [a.fixdiv(c, 3) for c in f]
            s1 = a.c_mul(f[1], self._tw(u * fstride))
            s2 = a.c_mul(f[2], self._tw(2 * u * fstride))
            s3, s0 = _add(a, s1, s2), _sub(a, s1, s2)
            f1 = (a.store(f[0][0] - a.half(s3[0])), a.store(f[0][1] - a.half(s3[1])))
            s0 = (a.s_mul(s0[0], epi3_i), a.s_mul(s0[1], epi3_i))
            f0 = _add(a, f[0], s3)
            f2 = (a.store(f1[0] + s0[1]), a.store(f1[1] - s0[0]))
            f1 = (a.store(f1[0] - s0[1]), a.store(f1[1] + s0[0]))
            return [f0, f1, f2]
        if p == 5:
            ya = [tf.constant(v, a.dtype) for v in self.twiddles[fstride * m]]
            yb = [tf.constant(v, a.dtype) for v in self.twiddles[fstride * 2 * m]]
            f = [a.fixdiv(c, 5) for c in f]
            s0 = f[0]
            s1, s2, s3, s4 = (a.c_mul(f[q], self._tw(q * u * fstride)) for q in range(1, 5))
            s7, s10, s8, s9 = _add(a, s1, s4), _sub(a, s1, s4), _add(a, s2, s3), _sub(a, s2, s3)
            f0 = (a.store(f[0][0] + (s7[0] + s8[0])), a.store(f[0][1] + (s7[1] + s8[1])))
            s5 = tuple(a.store(s0[c] + a.s_mul(s7[c], ya[0]) + a.s_mul(s8[c], yb[0])) for c in (0, 1))
            s6 = (a.store(a.s_mul(s10[1], ya[1]) + a.s_mul(s9[1], yb[1])),
                  a.store(-a.s_mul(s10[0], ya[1]) - a.s_mul(s9[0], yb[1])))
            s11 = tuple(a.store(s0[c] + a.s_mul(s7[c], yb[0]) + a.s_mul(s8[c], ya[0])) for c in (0, 1))
            s12 = (a.store(-a.s_mul(s10[1], yb[1]) + a.s_mul(s9[1], ya[1])),
                   a.store(a.s_mul(s10[0], yb[1]) - a.s_mul(s9[0], ya[1])))
            return [f0, _sub(a, s5, s6), _add(a, s11, s12), _sub(a, s11, s12), _add(a, s5, s6)]
        raise AssertionError(f"radix {p} is refused in _fft_length")


# -- real FFTs ---------------------------------------------------------------------------------------
def _arith(ctx, options, dtype_name: str):
    sample = _TENSOR_TYPES.get(options.get("T"))
    if sample is None:
        raise ctx.fail(f"option T = {options.get('T')!r} is not float32 (0), int32 (2) or int16 (7)")
    if sample != dtype_name:
        raise ctx.fail(f"option T says {sample}, the input is {dtype_name}")
    return _Float() if sample == "float32" else _FixedPoint(16 if sample == "int16" else 32)


def _fft_length(ctx, options) -> int:
    length = options.get("fft_length")
    if not isinstance(length, int) or length < 2 or length % 2:
        raise ctx.fail(f"fft_length {length!r} must be an even integer >= 2 (kiss_fftr_alloc needs an even length)")
    odd = [p for p, _ in kiss_factors(length // 2) if p > 5]
    if odd:
        # TFLM patches KISS_FFT_TMP_ALLOC to return NULL, and kf_bfly_generic writes its scratch there.
        raise ctx.fail(f"fft_length {length}: fft_length / 2 has the factor {odd[0]} > 5, for which TFLM's KissFFT "
                       "build writes through a null scratch buffer (the kernel crashes); such a model cannot run")
    return length


def _super_twiddles(arith, ncfft: int, inverse: bool):
    sign = 1.0 if inverse else -1.0
    values = np.array([arith.twiddle(sign * math.pi * ((i + 1) / ncfft + 0.5)) for i in range(ncfft // 2)])
    return tf.constant(values[:, 0], arith.dtype), tf.constant(values[:, 1], arith.dtype)


def _mirror_order(ncfft: int) -> np.ndarray:
    """Where bins 1..ncfft-1 come from in concat([A, B]): A[k-1] is written at k, B[k-1] at ncfft - k
    (for k = 1..ncfft/2, B second, so B wins where k = ncfft - k)."""
    half = ncfft // 2
    source = {}
    for k in range(1, half + 1):
        source[k] = k - 1
        source[ncfft - k] = half + k - 1
    return np.array([source[j] for j in range(1, ncfft)], np.int64)


def _rows(ctx, x):
    static = x.shape[-1]
    if static is None:
        raise ctx.fail("needs a static innermost dimension")
    return tf.reshape(x, [-1, int(static)]), int(static)


def _fft_setup(ctx, op, x):
    """What both real FFTs read first: the arithmetic, fft_length, the complex length fft_length / 2,
    and ``x`` as rows of its static innermost length (returned too)."""
    options = flexbuffer_options(ctx, op)
    fft_length = _fft_length(ctx, options)
    rows, last = _rows(ctx, x)
    return _arith(ctx, options, x.dtype.name), fft_length, fft_length // 2, rows, last


@register_custom("SignalRfft", max_version=1, note=(
    "TFLite Micro signal library; KissFFT's float / 16-bit / 32-bit fixed-point algorithm step for step; "
    "tested against a numpy transcription of KissFFT (LiteRT has no kernel)"))
def build_signal_rfft(ctx, op, inputs):
    x = inputs[0]
    arith, fft_length, ncfft, rows, input_length = _fft_setup(ctx, op, x)
    if input_length > fft_length:
        raise ctx.fail(f"input length {input_length} exceeds fft_length {fft_length}")
    out_last = ctx.output_shape(0)[-1]
    if out_last != 2 * (ncfft + 1):
        raise ctx.fail(f"output's last dimension is {out_last}; the kernel writes 2 * (fft_length / 2 + 1) = {2 * (ncfft + 1)}")
    rows = tf.pad(tf.cast(rows, arith.dtype), [[0, 0], [0, fft_length - input_length]])
    tmp = _KissFft(arith, ncfft, inverse=False)(rows[:, 0::2], rows[:, 1::2])
    a = arith
    tdc = a.fixdiv((tmp[0][:, :1], tmp[1][:, :1]), 2)
    dc, nyquist = a.store(tdc[0] + tdc[1]), a.store(tdc[0] - tdc[1])
    half = ncfft // 2
    if half:
        k = np.arange(1, half + 1)
        fpk = a.fixdiv((tf.gather(tmp[0], k, axis=1), tf.gather(tmp[1], k, axis=1)), 2)
        fpnk = a.fixdiv((tf.gather(tmp[0], ncfft - k, axis=1), a.store(-tf.gather(tmp[1], ncfft - k, axis=1))), 2)
        f1k, f2k = _add(a, fpk, fpnk), _sub(a, fpk, fpnk)
        tw = a.c_mul(f2k, _super_twiddles(a, ncfft, inverse=False))
        first = (a.store(a.half(f1k[0] + tw[0])), a.store(a.half(f1k[1] + tw[1])))
        second = (a.store(a.half(f1k[0] - tw[0])), a.store(a.half(tw[1] - f1k[1])))
        order = _mirror_order(ncfft)
        middle_re = tf.gather(tf.concat([first[0], second[0]], 1), order, axis=1)
        middle_im = tf.gather(tf.concat([first[1], second[1]], 1), order, axis=1)
    else:
        middle_re = middle_im = tf.zeros_like(rows[:, :0])
    zero = tf.zeros_like(dc)
    re = tf.concat([dc, middle_re, nyquist], axis=1)
    im = tf.concat([zero, middle_im, zero], axis=1)
    spectrum = tf.reshape(tf.stack([re, im], axis=2), [-1, 2 * (ncfft + 1)])
    shape = tf.concat([tf.shape(x)[:-1], [2 * (ncfft + 1)]], axis=0)
    return [tf.reshape(tf.cast(spectrum, x.dtype), shape)]


@register_custom("SignalIrfft", max_version=1, note=(
    "TFLite Micro signal library; KissFFT's inverse real FFT step for step (float divides by fft_length); "
    "tested against a numpy transcription of KissFFT (LiteRT has no kernel)"))
def build_signal_irfft(ctx, op, inputs):
    x = inputs[0]
    arith, fft_length, ncfft, rows, last = _fft_setup(ctx, op, x)
    if last % 2 or last // 2 < ncfft + 1:
        raise ctx.fail(f"input's last dimension {last} must hold fft_length / 2 + 1 = {ncfft + 1} complex bins")
    if ctx.output_shape(0)[-1] != fft_length:
        raise ctx.fail(f"output's last dimension is {ctx.output_shape(0)[-1]}; the kernel writes fft_length = {fft_length}")
    rows = tf.cast(rows, arith.dtype)
    fre, fim = rows[:, 0::2], rows[:, 1::2]
    a = arith
    t0 = a.fixdiv((a.store(fre[:, :1] + fre[:, ncfft:ncfft + 1]), a.store(fre[:, :1] - fre[:, ncfft:ncfft + 1])), 2)
    half = ncfft // 2
    if half:
        k = np.arange(1, half + 1)
        fk = a.fixdiv((tf.gather(fre, k, axis=1), tf.gather(fim, k, axis=1)), 2)
        fnkc = a.fixdiv((tf.gather(fre, ncfft - k, axis=1), a.store(-tf.gather(fim, ncfft - k, axis=1))), 2)
        fek, diff = _add(a, fk, fnkc), _sub(a, fk, fnkc)
        fok = a.c_mul(diff, _super_twiddles(a, ncfft, inverse=True))
        first = _add(a, fek, fok)
        second = _sub(a, fek, fok)
        second = (second[0], a.store(-second[1]))
        order = _mirror_order(ncfft)
        middle_re = tf.gather(tf.concat([first[0], second[0]], 1), order, axis=1)
        middle_im = tf.gather(tf.concat([first[1], second[1]], 1), order, axis=1)
        tre, tim = tf.concat([t0[0], middle_re], 1), tf.concat([t0[1], middle_im], 1)
    else:
        tre, tim = t0
    out_re, out_im = _KissFft(arith, ncfft, inverse=True)(tre, tim)
    samples = tf.reshape(tf.stack([out_re, out_im], axis=2), [-1, fft_length])
    if isinstance(arith, _Float):
        # Grappler turns a division by a constant into a multiplication by its reciprocal (one ulp
        # off where fft_length is not a power of two); DivNoNan it leaves alone, and is x / y here.
        samples = tf.math.divide_no_nan(samples, tf.constant(float(fft_length), tf.float32))
    shape = tf.concat([tf.shape(x)[:-1], [fft_length]], axis=0)
    return [tf.reshape(tf.cast(samples, x.dtype), shape)]
