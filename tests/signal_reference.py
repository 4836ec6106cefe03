"""Numpy/Python transcriptions of TFLite Micro's signal library (``signal/src/*.cc``,
``signal/micro/kernels/*.cc``) and of KissFFT 1.30 (``kiss_fft.c``, ``tools/kiss_fftr.c``), the
oracle for ``tests/ops/test_signal_library.py`` (LiteRT has none of these kernels).

Written loop for loop from the C sources with Python integers, independent of the builders'
vectorised TensorFlow code: every store into a C integer type goes through ``wrap``; right
shifts of signed values are Python's ``>>`` (arithmetic, as GCC's). ``MostSignificantBit32(0)``
is 32 as in the GCC build.
"""

from __future__ import annotations

import math

import numpy as np


def wrap(value: int, bits: int, signed: bool = True) -> int:
    value &= (1 << bits) - 1
    if signed and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def u32(value: int) -> int:
    return value & 0xFFFFFFFF


def u64(value: int) -> int:
    return value & 0xFFFFFFFFFFFFFFFF


def msb32(x: int) -> int:
    return 32 - (32 - x.bit_length()) if x else 32


def msb64(x: int) -> int:
    return x.bit_length() if x else 64


# -- window, auto scale, energy -------------------------------------------------------------------------
def window(x, w, shift):
    flat, w = [int(v) for v in np.asarray(x).reshape(-1)], [int(v) for v in w]
    out = []
    for start in range(0, len(flat), len(w)):
        for i in range(len(w)):
            raw = (flat[start + i] * w[i]) >> shift
            out.append(min(max(raw, -32768), 32767))
    return np.array(out, np.int16).reshape(np.shape(x))


def max_abs_16(values) -> int:
    largest = 0
    for value in (int(v) for v in values):
        if value > largest:
            largest = value
        elif -value > largest:
            largest = wrap(-value, 16)
    return largest


def fft_auto_scale(x):
    largest = max_abs_16(x)
    scale_bits = 16 - msb32(u32(largest)) - 1
    if scale_bits <= 0:
        scale_bits = 0
    return np.array([wrap(int(v) * (1 << scale_bits), 16) for v in x], np.int16), scale_bits


def energy(spectrum, start, end, out_length):
    out = [0] * out_length
    for i in range(start, end):
        re, im = int(spectrum[2 * i]), int(spectrum[2 * i + 1])
        out[i] = u32(wrap(re * re + im * im, 32))
    return np.array(out, np.uint32)


# -- filter bank ---------------------------------------------------------------------------------------
def filter_bank(x, weights, unweights, starts, weight_starts, widths, num_channels):
    out = [0] * (num_channels + 1)
    weight_acc = unweight_acc = 0
    for i in range(num_channels + 1):
        for j in range(int(widths[i])):
            energy_value = int(x[int(starts[i]) + j])
            weight_acc = u64(weight_acc + u64(int(weights[int(weight_starts[i]) + j])) * energy_value)
            unweight_acc = u64(unweight_acc + u64(int(unweights[int(weight_starts[i]) + j])) * energy_value)
        out[i] = weight_acc
        weight_acc, unweight_acc = unweight_acc, 0
    return np.array(out[1:], np.uint64)


def sqrt32(num: int) -> int:
    if num == 0:
        return 0
    res = 0
    max_bit_number = (32 - msb32(num)) | 1
    bit = 1 << (31 - max_bit_number)
    iterations = (31 - max_bit_number) // 2 + 1
    for _ in range(iterations):
        if num >= res + bit:
            num -= res + bit
            res = (res >> 1) + bit
        else:
            res >>= 1
        bit >>= 2
    if num > res and res != 0xFFFF:
        res += 1
    return res & 0xFFFF


def sqrt64(num: int) -> int:
    if num >> 32 == 0:
        return sqrt32(num)
    res = 0
    max_bit_number = (64 - msb64(num)) | 1
    bit = 1 << (63 - max_bit_number)
    iterations = (63 - max_bit_number) // 2 + 1
    for _ in range(iterations):
        if num >= res + bit:
            num -= res + bit
            res = (res >> 1) + bit
        else:
            res >>= 1
        bit >>= 2
    if num > res and res != 0xFFFFFFFF:
        res += 1
    return res & 0xFFFFFFFF


def filter_bank_square_root(x, scale_down_bits):
    return np.array([sqrt64(int(v)) >> scale_down_bits for v in x], np.uint32)


LOG_LUT = [
    0, 224, 442, 654, 861, 1063, 1259, 1450, 1636, 1817, 1992, 2163, 2329, 2490, 2646, 2797, 2944, 3087,
    3224, 3358, 3487, 3611, 3732, 3848, 3960, 4068, 4172, 4272, 4368, 4460, 4549, 4633, 4714, 4791, 4864,
    4934, 5001, 5063, 5123, 5178, 5231, 5280, 5326, 5368, 5408, 5444, 5477, 5507, 5533, 5557, 5578, 5595,
    5610, 5622, 5631, 5637, 5640, 5641, 5638, 5633, 5626, 5615, 5602, 5586, 5568, 5547, 5524, 5498, 5470,
    5439, 5406, 5370, 5332, 5291, 5249, 5203, 5156, 5106, 5054, 5000, 4944, 4885, 4825, 4762, 4697, 4630,
    4561, 4490, 4416, 4341, 4264, 4184, 4103, 4020, 3935, 3848, 3759, 3668, 3575, 3481, 3384, 3286, 3186,
    3084, 2981, 2875, 2768, 2659, 2549, 2437, 2323, 2207, 2090, 1971, 1851, 1729, 1605, 1480, 1353, 1224,
    1094, 963, 830, 695, 559, 421, 282, 142, 0, 0]


def log32(x: int, out_scale: int) -> int:
    integer = msb32(x) - 1
    frac = wrap(x - (1 << integer), 32)
    if integer < 16:
        frac = wrap(frac << (16 - integer), 32)
    else:
        frac >>= integer - 16
    base_seg = u32(frac >> 9)
    c0, c1 = LOG_LUT[base_seg], LOG_LUT[base_seg + 1]
    seg_base = 512 * base_seg
    rel_pos = wrap((c1 - c0) * (frac - seg_base), 32) >> 16
    fraction = u32(frac + c0 + rel_pos)
    log2 = u32((integer << 16) + fraction)
    loge = u32((45426 * log2 + 32768) >> 16)
    return u32(u32(out_scale * loge) + 32768) >> 16


def filter_bank_log(x, output_scale, correction_bits):
    out = []
    for v in x:
        scaled = u32(int(v) << correction_bits)
        out.append(min(log32(scaled, output_scale), 32767) if scaled > 1 else 0)
    return np.array(out, np.int16)


# -- PCAN ---------------------------------------------------------------------------------------------
def wide_dynamic_function(x: int, lut) -> int:
    if x <= 2:
        return int(lut[x])
    interval = msb32(x)
    base = 4 * interval - 6
    frac = wrap(u32(x << (11 - interval)) if interval < 11 else x >> (interval - 11), 32) & 0x3FF
    result = (int(lut[base + 2]) * frac) >> 5
    result = wrap(result + wrap(u32(int(lut[base + 1]) << 5), 32), 32)
    result = wrap(result * frac, 32)
    result = (result + (1 << 14)) >> 15
    result += int(lut[base])
    return wrap(result, 16)


def pcan_shrink(x: int) -> int:
    if x < (2 << 12):
        return u32(x * x) >> 20
    return u32((x >> 6) - 64)


def pcan(x, noise, lut, snr_shift):
    out = []
    for value, estimate in zip(x, noise):
        gain = u32(wide_dynamic_function(int(estimate), lut))
        snr = u32((int(value) * gain) >> snr_shift)
        out.append(pcan_shrink(snr))
    return np.array(out, np.uint32)


# -- spectral subtraction (stateful) -------------------------------------------------------------------
class SpectralSubtraction:
    def __init__(self, **config):
        self.c = config
        self.noise = [0] * config["num_channels"]

    def __call__(self, x):
        c, out = self.c, []
        for i in range(c["num_channels"]):
            if i & 1 == 0:
                smoothing, one_minus = c["smoothing"], c["one_minus_smoothing"]
            else:
                smoothing, one_minus = c["alternate_smoothing"], c["alternate_one_minus_smoothing"]
            scaled_up = u32(int(x[i]) << c["smoothing_bits"])
            self.noise[i] = u32((scaled_up * smoothing + self.noise[i] * one_minus) >> c["spectral_subtraction_bits"])
            estimate = self.noise[i]
            if estimate > scaled_up:
                estimate = scaled_up
                if c["clamping"]:
                    self.noise[i] = estimate
            floor = u32((int(x[i]) * c["min_signal_remaining"]) >> c["spectral_subtraction_bits"])
            subtracted = u32(scaled_up - estimate) >> c["smoothing_bits"]
            out.append(max(subtracted, floor))
        return np.array(out, np.uint32), np.array(self.noise, np.uint32)


# -- circular buffer and the ops on it ---------------------------------------------------------------
class CircularBuffer:
    """circular_buffer.cc: read/write indices over a doubled array."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.reset()

    def reset(self):
        self.read = self.write = 0
        self.empty = True
        self.buffer = [0] * (2 * self.capacity)

    def available(self) -> int:
        diff = self.write - self.read
        if diff > 0:
            return diff
        if diff < 0:
            return self.capacity + diff
        return 0 if self.empty else self.capacity

    def write_values(self, values):
        values = [int(v) for v in values]
        n = len(values)
        if n == 0:
            return
        assert self.capacity - self.available() >= n
        end = self.write + n
        self.buffer[self.write:self.write + n] = values
        if end < self.capacity:
            self.buffer[self.capacity + self.write:self.capacity + self.write + n] = values
            self.write += n
        else:
            n1 = self.capacity - self.write
            self.buffer[self.capacity + self.write:self.capacity + self.write + n1] = values[:n1]
            self.buffer[0:end - self.capacity] = values[n1:]
            self.write = end - self.capacity
        self.empty = False

    def extend(self, count: int, n: int):
        if n > 0 and count > 0:
            start = self.write + self.capacity - count if count > self.write else self.write - count
            if start + count <= self.capacity:
                for _ in range(n):
                    self.write_values(list(self.buffer[start:start + count]))
            else:
                for _ in range(n):
                    n1 = self.capacity - start
                    self.write_values(list(self.buffer[start:start + n1]))
                    self.write_values(list(self.buffer[0:count - n1]))

    def get(self, n: int) -> list[int]:
        assert self.available() >= n
        end = self.read + n
        if end <= self.capacity:
            return list(self.buffer[self.read:end])
        n1 = self.capacity - self.read
        return list(self.buffer[self.read:self.capacity]) + list(self.buffer[0:n - n1])

    def discard(self, n: int):
        assert self.available() >= n
        self.read += n
        if self.read >= self.capacity:
            self.read -= self.capacity
        if self.read == self.write:
            self.empty = True


class Framer:
    def __init__(self, frame_size, frame_step, prefill, outer):
        self.size, self.step = frame_size, frame_step
        capacity = (frame_size + frame_step - 1) // frame_step * frame_step
        self.buffers = [CircularBuffer(capacity) for _ in range(outer)]
        for b in self.buffers:
            if prefill:
                b.write_values([0] * (frame_size - frame_step))

    def __call__(self, x):
        rows = np.asarray(x).reshape(len(self.buffers), -1)
        n_frames = rows.shape[1] // self.step
        out = np.zeros([len(self.buffers), n_frames, self.size], np.int16)
        valid = True
        for i, b in enumerate(self.buffers):
            for frame in range(n_frames):
                b.write_values(rows[i, frame * self.step:(frame + 1) * self.step])
                if b.available() >= self.size:
                    out[i, frame] = b.get(self.size)
                    b.discard(self.step)
                else:
                    valid = False
        return out.reshape(np.shape(x)[:-1] + (n_frames, self.size)), valid


class Stacker:
    def __init__(self, num_channels, left, right, step):
        self.channels, self.left = num_channels, left
        self.size, self.step_size = num_channels * (left + right + 1), num_channels * step
        self.buffer = CircularBuffer(self.size)
        self.first = False

    def __call__(self, x):
        self.buffer.write_values(x)
        if not self.first:
            self.buffer.extend(self.channels, self.left)
            self.first = True
        if self.buffer.available() >= self.size:
            out = np.array(self.buffer.get(self.size), np.int16)
            self.buffer.discard(self.step_size)
            return out, True
        return np.zeros(self.size, np.int16), False


class Delay:
    def __init__(self, delay_length, frame_size, outer):
        self.frame = frame_size
        self.buffers = [CircularBuffer(frame_size + delay_length) for _ in range(outer)]
        for b in self.buffers:
            b.write_values([0] * delay_length)

    def __call__(self, x):
        rows = np.asarray(x).reshape(len(self.buffers), self.frame)
        out = []
        for i, b in enumerate(self.buffers):
            b.write_values(rows[i])
            out.append(b.get(self.frame))
            b.discard(self.frame)
        return np.array(out, np.int16).reshape(np.shape(x))


class OverlapAdd:
    def __init__(self, frame_step, frame_size, outer, dtype):
        self.step, self.dtype = frame_step, dtype
        self.buffers = [np.zeros(frame_size, dtype) for _ in range(outer)]

    def __call__(self, x):
        x = np.asarray(x)
        frames = x.reshape(len(self.buffers), x.shape[-2], x.shape[-1])
        out = []
        for i, buffer in enumerate(self.buffers):
            row = []
            for frame in frames[i]:
                for k in range(len(buffer)):
                    if self.dtype == np.int16:
                        buffer[k] = min(max(int(frame[k]) + int(buffer[k]), -32768), 32767)
                    else:
                        buffer[k] = np.float32(buffer[k] + frame[k])
                row.extend(buffer[:self.step].tolist())
                buffer[:-self.step] = buffer[self.step:].copy()
                buffer[-self.step:] = 0
            out.append(row)
        return np.array(out, self.dtype).reshape(x.shape[:-2] + (x.shape[-2] * self.step,))


# -- KissFFT ------------------------------------------------------------------------------------------
class Kiss:
    """kiss_fft.c and kiss_fftr.c for one build: ``bits`` 16 or 32 (FIXED_POINT) or None (float)."""

    def __init__(self, nfft: int, inverse: bool, bits: int | None):
        self.nfft, self.inverse, self.bits = nfft, inverse, bits
        if bits:
            self.frac, self.samp_max = bits - 1, (1 << (bits - 1)) - 1
        self.twiddles = [self.cexp((1 if inverse else -1) * 2 * 3.141592653589793238462643383279502884197169399375105820974944 * i / nfft)
                         for i in range(nfft)]
        self.factors = []
        n, p = nfft, 4
        floor_sqrt = math.floor(math.sqrt(n))
        while True:
            while n % p:
                if p == 4:
                    p = 2
                elif p == 2:
                    p = 3
                else:
                    p += 2
                if p > floor_sqrt:
                    p = n
            n //= p
            self.factors += [p, n]
            if n <= 1:
                break

    # macros
    def cexp(self, phase):
        if self.bits:
            return [int(math.floor(0.5 + self.samp_max * math.cos(phase))), int(math.floor(0.5 + self.samp_max * math.sin(phase)))]
        return [np.float32(math.cos(phase)), np.float32(math.sin(phase))]

    def s(self, v):
        return wrap(v, self.bits) if self.bits else v

    def sround(self, x):
        return wrap((x + (1 << (self.frac - 1))) >> self.frac, self.bits)

    def s_mul(self, a, b):
        return self.sround(a * b) if self.bits else a * b

    def c_mul(self, a, b):
        if self.bits:
            return [self.sround(a[0] * b[0] - a[1] * b[1]), self.sround(a[0] * b[1] + a[1] * b[0])]
        return [a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0]]

    def fixdiv(self, c, div):
        if self.bits:
            c[0] = self.sround(c[0] * (self.samp_max // div))
            c[1] = self.sround(c[1] * (self.samp_max // div))

    def half(self, x):
        return x >> 1 if self.bits else x * np.float32(0.5)

    def add(self, a, b):
        return [self.s(a[0] + b[0]), self.s(a[1] + b[1])]

    def sub(self, a, b):
        return [self.s(a[0] - b[0]), self.s(a[1] - b[1])]

    # butterflies
    def bfly2(self, F, o, fstride, m):
        for k in range(m):
            self.fixdiv(F[o + k], 2)
            self.fixdiv(F[o + k + m], 2)
            t = self.c_mul(F[o + k + m], self.twiddles[k * fstride])
            F[o + k + m] = self.sub(F[o + k], t)
            F[o + k] = self.add(F[o + k], t)

    def bfly4(self, F, o, fstride, m):
        for k in range(m):
            a, b, c, d = o + k, o + k + m, o + k + 2 * m, o + k + 3 * m
            for i in (a, b, c, d):
                self.fixdiv(F[i], 4)
            s0 = self.c_mul(F[b], self.twiddles[k * fstride])
            s1 = self.c_mul(F[c], self.twiddles[2 * k * fstride])
            s2 = self.c_mul(F[d], self.twiddles[3 * k * fstride])
            s5 = self.sub(F[a], s1)
            F[a] = self.add(F[a], s1)
            s3 = self.add(s0, s2)
            s4 = self.sub(s0, s2)
            F[c] = self.sub(F[a], s3)
            F[a] = self.add(F[a], s3)
            if self.inverse:
                F[b] = [self.s(s5[0] - s4[1]), self.s(s5[1] + s4[0])]
                F[d] = [self.s(s5[0] + s4[1]), self.s(s5[1] - s4[0])]
            else:
                F[b] = [self.s(s5[0] + s4[1]), self.s(s5[1] - s4[0])]
                F[d] = [self.s(s5[0] - s4[1]), self.s(s5[1] + s4[0])]

    def bfly3(self, F, o, fstride, m):
        epi3 = self.twiddles[fstride * m]
        for k in range(m):
            a, b, c = o + k, o + k + m, o + k + 2 * m
            for i in (a, b, c):
                self.fixdiv(F[i], 3)
            s1 = self.c_mul(F[b], self.twiddles[k * fstride])
            s2 = self.c_mul(F[c], self.twiddles[2 * k * fstride])
            s3 = self.add(s1, s2)
            s0 = self.sub(s1, s2)
            F[b] = [self.s(F[a][0] - self.half(s3[0])), self.s(F[a][1] - self.half(s3[1]))]
            s0 = [self.s_mul(s0[0], epi3[1]), self.s_mul(s0[1], epi3[1])]
            F[a] = self.add(F[a], s3)
            F[c] = [self.s(F[b][0] + s0[1]), self.s(F[b][1] - s0[0])]
            F[b] = [self.s(F[b][0] - s0[1]), self.s(F[b][1] + s0[0])]

    def bfly5(self, F, o, fstride, m):
        ya, yb = self.twiddles[fstride * m], self.twiddles[fstride * 2 * m]
        for u in range(m):
            idx = [o + u + q * m for q in range(5)]
            for i in idx:
                self.fixdiv(F[i], 5)
            s = [None] * 13
            s[0] = list(F[idx[0]])
            for q in range(1, 5):
                s[q] = self.c_mul(F[idx[q]], self.twiddles[q * u * fstride])
            s[7], s[10] = self.add(s[1], s[4]), self.sub(s[1], s[4])
            s[8], s[9] = self.add(s[2], s[3]), self.sub(s[2], s[3])
            F[idx[0]] = [self.s(F[idx[0]][0] + (s[7][0] + s[8][0])), self.s(F[idx[0]][1] + (s[7][1] + s[8][1]))]
            s[5] = [self.s(s[0][0] + self.s_mul(s[7][0], ya[0]) + self.s_mul(s[8][0], yb[0])),
                    self.s(s[0][1] + self.s_mul(s[7][1], ya[0]) + self.s_mul(s[8][1], yb[0]))]
            s[6] = [self.s(self.s_mul(s[10][1], ya[1]) + self.s_mul(s[9][1], yb[1])),
                    self.s(-self.s_mul(s[10][0], ya[1]) - self.s_mul(s[9][0], yb[1]))]
            F[idx[1]] = self.sub(s[5], s[6])
            F[idx[4]] = self.add(s[5], s[6])
            s[11] = [self.s(s[0][0] + self.s_mul(s[7][0], yb[0]) + self.s_mul(s[8][0], ya[0])),
                     self.s(s[0][1] + self.s_mul(s[7][1], yb[0]) + self.s_mul(s[8][1], ya[0]))]
            s[12] = [self.s(-self.s_mul(s[10][1], yb[1]) + self.s_mul(s[9][1], ya[1])),
                     self.s(self.s_mul(s[10][0], yb[1]) - self.s_mul(s[9][0], ya[1]))]
            F[idx[2]] = self.add(s[11], s[12])
            F[idx[3]] = self.sub(s[11], s[12])

    def work(self, F, o, f, fi, fstride, factor):
        p, m = self.factors[factor], self.factors[factor + 1]
        if m == 1:
            for j in range(p):
                F[o + j] = list(f[fi + j * fstride])
        else:
            for j in range(p):
                self.work(F, o + j * m, f, fi + j * fstride, fstride * p, factor + 2)
        {2: self.bfly2, 3: self.bfly3, 4: self.bfly4, 5: self.bfly5}[p](F, o, fstride, m)

    def fft(self, cpx):
        F = [None] * self.nfft
        self.work(F, 0, cpx, 0, 1, 0)
        return F


def rfft(x, fft_length: int, bits: int | None):
    """kiss_fftr on one row (zero-padded to fft_length): interleaved re, im of fft_length/2 + 1 bins."""
    dtype = np.float32 if bits is None else {16: np.int16, 32: np.int32}[bits]
    zero = np.float32(0) if bits is None else 0
    samples = [np.float32(v) if bits is None else int(v) for v in x] + [zero] * (fft_length - len(x))
    ncfft = fft_length // 2
    kiss = Kiss(ncfft, False, bits)
    tmp = kiss.fft([[samples[2 * k], samples[2 * k + 1]] for k in range(ncfft)])
    freq = [[0, 0] for _ in range(ncfft + 1)]
    tdc = list(tmp[0])
    kiss.fixdiv(tdc, 2)
    freq[0][0] = kiss.s(tdc[0] + tdc[1])
    freq[ncfft][0] = kiss.s(tdc[0] - tdc[1])
    freq[0][1] = freq[ncfft][1] = 0
    super_twiddles = [kiss.cexp(-3.14159265358979323846264338327 * ((i + 1) / ncfft + 0.5)) for i in range(ncfft // 2)]
    for k in range(1, ncfft // 2 + 1):
        fpk = list(tmp[k])
        fpnk = [tmp[ncfft - k][0], kiss.s(-tmp[ncfft - k][1])]
        kiss.fixdiv(fpk, 2)
        kiss.fixdiv(fpnk, 2)
        f1k, f2k = kiss.add(fpk, fpnk), kiss.sub(fpk, fpnk)
        tw = kiss.c_mul(f2k, super_twiddles[k - 1])
        freq[k] = [kiss.s(kiss.half(f1k[0] + tw[0])), kiss.s(kiss.half(f1k[1] + tw[1]))]
        freq[ncfft - k] = [kiss.s(kiss.half(f1k[0] - tw[0])), kiss.s(kiss.half(tw[1] - f1k[1]))]
    return np.array([v for c in freq for v in c], dtype)


def irfft(spectrum, fft_length: int, bits: int | None):
    """kiss_fftri on one row of interleaved bins (the float kernel then divides by fft_length)."""
    dtype = np.float32 if bits is None else {16: np.int16, 32: np.int32}[bits]
    values = [np.float32(v) if bits is None else int(v) for v in spectrum]
    freq = [[values[2 * k], values[2 * k + 1]] for k in range(len(values) // 2)]
    ncfft = fft_length // 2
    kiss = Kiss(ncfft, True, bits)
    tmp = [[0, 0] for _ in range(ncfft)]
    tmp[0] = [kiss.s(freq[0][0] + freq[ncfft][0]), kiss.s(freq[0][0] - freq[ncfft][0])]
    kiss.fixdiv(tmp[0], 2)
    super_twiddles = [kiss.cexp(3.14159265358979323846264338327 * ((i + 1) / ncfft + 0.5)) for i in range(ncfft // 2)]
    for k in range(1, ncfft // 2 + 1):
        fk = list(freq[k])
        fnkc = [freq[ncfft - k][0], kiss.s(-freq[ncfft - k][1])]
        kiss.fixdiv(fk, 2)
        kiss.fixdiv(fnkc, 2)
        fek, diff = kiss.add(fk, fnkc), kiss.sub(fk, fnkc)
        fok = kiss.c_mul(diff, super_twiddles[k - 1])
        tmp[k] = kiss.add(fek, fok)
        tmp[ncfft - k] = kiss.sub(fek, fok)
        tmp[ncfft - k][1] = kiss.s(tmp[ncfft - k][1] * -1)
    out = kiss.fft(tmp)
    samples = [v for c in out for v in c]
    if bits is None:
        samples = [np.float32(v / np.float32(fft_length)) for v in samples]
    return np.array(samples, dtype)
