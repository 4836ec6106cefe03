"""Tests for tflite_inverter/ops/signal_state.py (TFLite Micro's stateful signal ops).

LiteRT has no kernel for these ops: the oracle is ``signal_reference.py``, a Python transcription
of TFLM's kernels and circular buffer, run as a sequence of calls against one inverted model.
TFLM itself runs them in ``test_signal_library.py::test_signal_ops_match_tflite_micro``.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import signal_reference as ref
import tflite_inverter as ti
from signal_models import RNG, T_FLOAT32, T_INT16, assert_same, int16s, one_op, run


# -- stateful ops over a sequence of calls ----------------------------------------------------------
def test_spectral_subtraction_keeps_its_noise_estimate():
    config = {"alternate_one_minus_smoothing": 15401, "alternate_smoothing": 983, "clamping": False,
              "min_signal_remaining": 819, "num_channels": 8, "one_minus_smoothing": 15975, "smoothing": 409,
              "smoothing_bits": 10, "spectral_subtraction_bits": 14}
    for clamping in (False, True):
        config["clamping"] = clamping
        model = ti.invert(one_op("SignalFilterBankSpectralSubtraction", {"x": (np.uint32, [8])},
                                 {"y": (np.uint32, [8]), "noise": (np.uint32, [8])}, config))
        reference = ref.SpectralSubtraction(**config)
        for call in range(4):
            x = RNG.integers(0, 2**20 if call % 2 else 2**12, 8).astype(np.uint32)
            y, noise = run(model, x)
            expected_y, expected_noise = reference(x)
            assert_same(y, expected_y)
            assert_same(noise, expected_noise)
        assert reference.noise != [0] * 8


@pytest.mark.parametrize("frame_size,frame_step,prefill", [(6, 2, True), (5, 2, False), (4, 4, False)])
def test_framer(frame_size, frame_step, prefill):
    shape = [2, 4]
    frames = shape[-1] // frame_step
    model = ti.invert(one_op("SignalFramer", {"x": (np.int16, shape)},
                             {"y": (np.int16, [2, frames, frame_size]), "valid": (np.bool_, [])},
                             {"frame_size": frame_size, "frame_step": frame_step, "prefill": prefill}))
    reference = ref.Framer(frame_size, frame_step, prefill, outer=2)
    validity = []
    for _ in range(4):
        x = int16s(*shape)
        y, valid = run(model, x)
        expected_y, expected_valid = reference(x)
        assert_same(y, expected_y)
        assert bool(valid) == expected_valid
        validity.append(expected_valid)
    if not prefill and frame_size > frame_step:
        assert validity[0] is False and validity[-1] is True


def test_stacker():
    options = {"num_channels": 3, "stacker_left_context": 2, "stacker_right_context": 1, "stacker_step": 2}
    size = 3 * 4
    model = ti.invert(one_op("SignalStacker", {"x": (np.int16, [3])}, {"y": (np.int16, [size]), "valid": (np.bool_, [])}, options))
    reference = ref.Stacker(3, 2, 1, 2)
    validity = []
    for _ in range(6):
        x = int16s(3)
        y, valid = run(model, x)
        expected_y, expected_valid = reference(x)
        assert bool(valid) == expected_valid
        assert_same(y, expected_y)
        validity.append(expected_valid)
    assert True in validity and False in validity


def test_delay():
    model = ti.invert(one_op("SignalDelay", {"x": (np.int16, [2, 5])}, {"y": (np.int16, [2, 5])}, {"delay_length": 7}))
    reference = ref.Delay(7, 5, outer=2)
    for _ in range(4):
        x = int16s(2, 5)
        assert_same(run(model, x)[0], reference(x))


@pytest.mark.parametrize("dtype,type_code", [(np.int16, T_INT16), (np.float32, T_FLOAT32)])
def test_overlap_add(dtype, type_code):
    model = ti.invert(one_op("SignalOverlapAdd", {"x": (dtype, [2, 3, 6])}, {"y": (dtype, [2, 6])},
                             {"T": type_code, "frame_step": 2}))
    reference = ref.OverlapAdd(2, 6, outer=2, dtype=dtype)
    for _ in range(3):
        x = int16s(2, 3, 6) if dtype == np.int16 else RNG.normal(0, 1, (2, 3, 6)).astype(np.float32)
        assert_same(run(model, x)[0], reference(x))


def test_state_is_saved_with_the_saved_model(tmp_path):
    model = one_op("SignalDelay", {"x": (np.int16, [4])}, {"y": (np.int16, [4])}, {"delay_length": 3})
    inverted = ti.invert(model)
    first = np.arange(1, 5, dtype=np.int16)
    run(inverted, first)
    inverted.save_saved_model(tmp_path / "saved")
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    out = list(loaded.signatures["serving_default"](**{"x": tf.constant(np.zeros(4, np.int16))}).values())[0]
    np.testing.assert_array_equal(out.numpy(), [2, 3, 4, 0])  # the last 3 samples of the first call, then zeros
