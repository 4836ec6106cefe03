"""Tests for tflite_inverter/ops/signal_fft.py (TFLite Micro's SignalRfft / SignalIrfft).

LiteRT has no kernel for these ops: the oracle is ``signal_reference.py``, a Python transcription
of KissFFT 1.30 (float and FIXED_POINT 16/32) and of TFLM's kernels. TFLM itself runs them in
``test_signal_library.py::test_signal_ops_match_tflite_micro``.
"""

from __future__ import annotations

import numpy as np
import pytest

import signal_reference as ref
import tflite_inverter as ti
from signal_models import RNG, T_FLOAT32, T_INT16, T_INT32, assert_float_close, assert_same, int16s, one_op, run


# -- FFTs ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,type_code,bits,fft_length,input_length", [
    (np.int16, T_INT16, 16, 64, 50),  # radix 4, 4, 2 (float: test_float_resynthesis_chain; int32: against TFLM)
    (np.int16, T_INT16, 16, 24, 24), (np.float32, T_FLOAT32, None, 24, 24),  # radix 4, 3
    (np.int32, T_INT32, 32, 40, 36), (np.float32, T_FLOAT32, None, 40, 36)])  # radix 4, 5
def test_rfft_and_irfft(dtype, type_code, bits, fft_length, input_length):
    bins = fft_length // 2 + 1
    options = {"T": type_code, "fft_length": fft_length}
    forward = ti.invert(one_op("SignalRfft", {"x": (dtype, [2, input_length])}, {"y": (dtype, [2, 2 * bins])}, options))
    inverse = ti.invert(one_op("SignalIrfft", {"x": (dtype, [2, 2 * bins])}, {"y": (dtype, [2, fft_length])}, options))
    if bits == 16:
        x = int16s(2, input_length)
    elif bits == 32:
        x = RNG.integers(-2**31, 2**31, (2, input_length)).astype(np.int32)
    else:
        x = RNG.normal(0, 1000, (2, input_length)).astype(np.float32)
    spectrum = run(forward, x)[0]
    compare = assert_same if bits or fft_length % 5 else assert_float_close
    compare(spectrum, np.stack([ref.rfft(row, fft_length, bits) for row in x]))
    samples = run(inverse, spectrum)[0]
    compare(samples, np.stack([ref.irfft(row, fft_length, bits) for row in spectrum]))
    if bits is None:  # and KissFFT computes a Fourier transform at all
        np.testing.assert_allclose(spectrum[:, 0::2] + 1j * spectrum[:, 1::2], np.fft.rfft(x, fft_length), rtol=1e-4, atol=0.05)


def test_rfft_refuses_a_length_with_a_factor_above_5():
    """ncfft 7 needs KissFFT's generic butterfly, which crashes in TFLM (its scratch allocator is
    patched to return NULL; measured: the TFLM Python runtime dies with SIGSEGV)."""
    model = one_op("SignalRfft", {"x": (np.int16, [14])}, {"y": (np.int16, [16])}, {"T": T_INT16, "fft_length": 14})
    with pytest.raises(ti.TfliteInverterError, match="factor 7 > 5"):
        ti.invert(model)


def test_rfft_refuses_a_type_option_that_is_not_the_input_type():
    model = one_op("SignalRfft", {"x": (np.int16, [8])}, {"y": (np.int16, [10])}, {"T": T_FLOAT32, "fft_length": 8})
    with pytest.raises(ti.TfliteInverterError, match="option T says float32, the input is int16"):
        ti.invert(model)
