"""Tests for tflite_inverter/ops/signal_library.py (TFLite Micro's stateless signal ops), chains of
the whole library, and the library against TFLite Micro's own interpreter.

LiteRT has none of these kernels, so the oracle is ``signal_reference.py``: a loop-for-loop
Python transcription of the C sources (TFLM ``signal/src``, ``signal/micro/kernels``, KissFFT
1.30). Each test writes a one-op (or chained) model with the schema object API and flexbuffer
options as TFLM's Python tools write them, inverts it and compares every call's outputs exactly.
``test_signal_ops_match_tflite_micro`` then runs the ops in TFLM itself.
"""

from __future__ import annotations

import numpy as np
import pytest

import signal_reference as ref
import tflite_inverter as ti
from signal_models import RNG, T_FLOAT32, T_INT16, T_INT32, assert_same, filter_bank_config, int16s, one_op, run, signal_model


# -- stateless ops ----------------------------------------------------------------------------------
def test_window():
    w = RNG.integers(0, 4097, 16).astype(np.int16)
    model = ti.invert(one_op("SignalWindow", {"x": (np.int16, [3, 16])}, {"y": (np.int16, [3, 16])}, {"shift": 12}, {"w": w}))
    x = int16s(3, 16)
    x[0, :4] = [-32768, 32767, -1, 1]
    assert_same(run(model, x)[0], ref.window(x, w, 12))


def test_fft_auto_scale_including_the_int16_min_wrap():
    model = ti.invert(one_op("SignalFftAutoScale", {"x": (np.int16, [12])},
                             {"y": (np.int16, [12]), "bits": (np.int32, [])}, {}))
    cases = [int16s(12, low=-300, high=300), np.zeros(12, np.int16), int16s(12),
             np.array([5, -32768, -7, 3, 100, -2, 0, 1, 2, -3, 4, 9], np.int16),  # max wraps to -32768, then follows
             np.array([-32768] * 12, np.int16)]
    for x in cases:
        y, bits = run(model, x)
        expected_y, expected_bits = ref.fft_auto_scale(x)
        assert_same(y, expected_y)
        assert int(bits) == expected_bits
    assert ref.fft_auto_scale(cases[3])[1] > 0  # the wrap case really takes the loop's odd path


def test_energy():
    model = ti.invert(one_op("SignalEnergy", {"x": (np.int16, [66])}, {"y": (np.uint32, [33])},
                             {"end_index": 30, "start_index": 3}))
    x = int16s(66)
    x[6:8] = -32768  # bin 3: 2^31, overflows int32 in C, wraps into uint32
    assert_same(run(model, x)[0], ref.energy(x, 3, 30, 33))


def test_filter_bank():
    channels, bins = 6, 40
    weights, unweights, starts, weight_starts, widths = filter_bank_config(channels, bins)
    model = ti.invert(one_op("SignalFilterBank", {"x": (np.uint32, [bins])}, {"y": (np.uint64, [channels])},
                             {"num_channels": channels},
                             {"w": weights, "u": unweights, "s": starts, "ws": weight_starts, "wd": widths}))
    for x in (RNG.integers(0, 2**31, bins).astype(np.uint32), np.full(bins, 2**32 - 1, np.uint32)):
        assert_same(run(model, x)[0], ref.filter_bank(x, weights, unweights, starts, weight_starts, widths, channels))


def test_filter_bank_square_root():
    model = ti.invert(one_op("SignalFilterBankSquareRoot", {"x": (np.uint64, [10]), "bits": (np.int32, [])},
                             {"y": (np.uint32, [10]), }, {}))
    x = np.array([0, 1, 2, 3, 2**32 - 1, 2**32, 2**40 + 12345, 2**63 + 7, 2**64 - 1, 99], np.uint64)
    for values, bits in ((x, 0), (RNG.integers(0, 2**62, 10, dtype=np.uint64), 3), (RNG.integers(0, 2**32, 10).astype(np.uint64), 1)):
        assert_same(run(model, values, np.int32(bits))[0], ref.filter_bank_square_root(values, bits))


def test_filter_bank_log():
    model = ti.invert(one_op("SignalFilterBankLog", {"x": (np.uint32, [14])}, {"y": (np.int16, [14])},
                             {"input_correction_bits": 3, "output_scale": 1600}))
    x = np.concatenate([[0, 1, 2, 3, 2**29 - 1, 2**31, 2**32 - 1], RNG.integers(0, 2**32, 7)]).astype(np.uint32)
    assert_same(run(model, x)[0], ref.filter_bank_log(x, 1600, 3))


def test_pcan():
    lut = RNG.integers(-3000, 9000, 125).astype(np.int16)
    model = ti.invert(one_op("SignalPCAN", {"x": (np.uint32, [12]), "noise": (np.uint32, [12])},
                             {"y": (np.uint32, [12])}, {"snr_shift": 6}, {"lut": lut}))
    x = RNG.integers(0, 2**20, 12).astype(np.uint32)
    noise = np.concatenate([[0, 1, 2, 3, 1023, 2**31], RNG.integers(0, 2**32, 6)]).astype(np.uint32)
    assert_same(run(model, x, noise)[0], ref.pcan(x, noise, lut, 6))


# -- chains: a mini audio front end (int) and a float resynthesis --------------------------------------
def test_int_audio_front_end_chain():
    frame, fft_length, channels, bins = 30, 32, 4, 17
    window_weights = RNG.integers(0, 4097, frame).astype(np.int16)
    weights, unweights, starts, weight_starts, widths = filter_bank_config(channels, bins, 1, 15)  # bins SignalEnergy writes
    lut = RNG.integers(-3000, 9000, 125).astype(np.int16)
    subtraction = {"alternate_one_minus_smoothing": 15401, "alternate_smoothing": 983, "clamping": False,
                   "min_signal_remaining": 819, "num_channels": channels, "one_minus_smoothing": 15975, "smoothing": 409,
                   "smoothing_bits": 10, "spectral_subtraction_bits": 14}
    tensors = {
        "audio": (np.int16, [frame], None), "window": (np.int16, [frame], window_weights),
        "windowed": (np.int16, [frame], None), "scaled": (np.int16, [frame], None), "bits": (np.int32, [], None),
        "spectrum": (np.int16, [2 * bins], None), "energy": (np.uint32, [bins], None),
        "w": (np.int16, [len(weights)], weights), "u": (np.int16, [len(weights)], unweights),
        "s": (np.int16, [channels + 1], starts), "ws": (np.int16, [channels + 1], weight_starts),
        "wd": (np.int16, [channels + 1], widths), "bank": (np.uint64, [channels], None),
        "root": (np.uint32, [channels], None), "clean": (np.uint32, [channels], None),
        "noise": (np.uint32, [channels], None), "lut": (np.int16, [125], lut), "gained": (np.uint32, [channels], None),
        "log": (np.int16, [channels], None),
    }
    ops = [("SignalWindow", ["audio", "window"], ["windowed"], {"shift": 12}),
           ("SignalFftAutoScale", ["windowed"], ["scaled", "bits"], {}),
           ("SignalRfft", ["scaled"], ["spectrum"], {"T": T_INT16, "fft_length": fft_length}),
           ("SignalEnergy", ["spectrum"], ["energy"], {"end_index": 15, "start_index": 1}),
           ("SignalFilterBank", ["energy", "w", "u", "s", "ws", "wd"], ["bank"], {"num_channels": channels}),
           ("SignalFilterBankSquareRoot", ["bank", "bits"], ["root"], {}),
           ("SignalFilterBankSpectralSubtraction", ["root"], ["clean", "noise"], subtraction),
           ("SignalPCAN", ["clean", "noise", "lut"], ["gained"], {"snr_shift": 6}),
           ("SignalFilterBankLog", ["gained"], ["log"], {"input_correction_bits": 3, "output_scale": 64})]
    inverted = ti.invert(signal_model(tensors, ["audio"], ["log", "noise"], ops))
    subtract = ref.SpectralSubtraction(**subtraction)
    for _ in range(3):
        audio = int16s(frame, low=-3000, high=3000)
        windowed = ref.window(audio, window_weights, 12)
        scaled, bits = ref.fft_auto_scale(windowed)
        spectrum = ref.rfft(scaled, fft_length, 16)
        bank = ref.filter_bank(ref.energy(spectrum, 1, 15, bins), weights, unweights, starts, weight_starts, widths, channels)
        clean, noise = subtract(ref.filter_bank_square_root(bank, bits))
        expected = ref.filter_bank_log(ref.pcan(clean, noise, lut, 6), 64, 3)
        log, noise_out = run(inverted, audio)
        assert_same(log, expected)
        assert_same(noise_out, noise)
        assert np.count_nonzero(expected) > 0


def test_float_resynthesis_chain():
    fft_length, frame, step = 16, 16, 8
    bins = fft_length // 2 + 1
    tensors = {"x": (np.float32, [1, frame], None), "spectrum": (np.float32, [1, 2 * bins], None),
               "frames": (np.float32, [1, fft_length], None), "y": (np.float32, [step], None)}
    options = {"T": T_FLOAT32, "fft_length": fft_length}
    ops = [("SignalRfft", ["x"], ["spectrum"], options), ("SignalIrfft", ["spectrum"], ["frames"], options),
           ("SignalOverlapAdd", ["frames"], ["y"], {"T": T_FLOAT32, "frame_step": step})]
    inverted = ti.invert(signal_model(tensors, ["x"], ["y"], ops))
    overlap = ref.OverlapAdd(step, fft_length, outer=1, dtype=np.float32)
    previous = None
    for _ in range(3):
        x = RNG.normal(0, 1, (1, frame)).astype(np.float32)
        samples = ref.irfft(ref.rfft(x[0], fft_length, None), fft_length, None)
        expected = overlap(samples.reshape(1, fft_length))
        y = run(inverted, x)[0]
        assert_same(y, expected)
        if previous is not None:  # overlap-add of an identity transform: second half of the last frame + first half of this
            np.testing.assert_allclose(y, previous[step:] + x[0, :step], atol=1e-5)
        previous = x[0]


def test_mixed_model_verifies_in_segments():
    """Builtin operators around signal ops (as in micro_speech's preprocessor): LiteRT cannot run
    the model, so verify checks its three builtin operators in LiteRT, fed at the cuts."""
    window = RNG.integers(0, 4097, 32).astype(np.int16)
    tensors = {"x": (np.float32, [32], None), "gain": (np.float32, [32], np.full(32, 3000.0, np.float32)),
               "scaled_x": (np.float32, [32], None), "samples": (np.int16, [32], None),
               "window": (np.int16, [32], window), "windowed": (np.int16, [32], None),
               "normalised": (np.int16, [32], None), "bits": (np.int32, [], None), "y": (np.float32, [32], None)}
    ops = [("MUL", ["x", "gain"], ["scaled_x"], None), ("CAST", ["scaled_x"], ["samples"], None),
           ("SignalWindow", ["samples", "window"], ["windowed"], {"shift": 12}),
           ("SignalFftAutoScale", ["windowed"], ["normalised", "bits"], {}), ("CAST", ["normalised"], ["y"], None)]
    model = signal_model(tensors, ["x"], ["y", "bits"], ops)
    report = ti.verify(model, ti.invert(model), draws=2)
    assert report.passed, report.table()
    assert "verified in segments" in report.table() and "3 builtin operators verified in LiteRT" in report.table()


# -- against TFLite Micro itself ----------------------------------------------------------------------
# The tflite-micro wheel ships TFLM's Python interpreter with the signal library registered. It is
# fetched like the MediaPipe models (``pip download --no-deps``, never installed) into the cache and
# run in a subprocess: a failed download fails these tests, it does not skip them.
TFLM_VERSION = "0.dev20261023182759"
_TFLM_RUNNER = r"""
import pickle, sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
jobs = pickle.load(open(sys.argv[1], "rb"))
results = []
for model, calls, n_outputs in jobs:
    interpreter = runtime.Interpreter.from_bytes(model)
    outputs = []
    for inputs in calls:
        for i, value in enumerate(inputs):
            interpreter.set_input(value, i)
        interpreter.invoke()
        outputs.append([np.array(interpreter.get_output(k)) for k in range(n_outputs)])
    results.append(outputs)
pickle.dump(results, open(sys.argv[2], "wb"))
"""


@pytest.fixture(scope="session")
def tflm_runtime():
    import os
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    root = Path(os.environ.get("TFLITE_INVERTER_CACHE", Path.home() / ".cache" / "tflite_inverter")) / f"tflite-micro-{TFLM_VERSION}"
    if not (root / "complete").exists():
        wheels = root / "wheel"
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", f"tflite-micro=={TFLM_VERSION}",
                        "--python-version", "3.11", "--platform", "manylinux_2_28_x86_64", "--only-binary=:all:",
                        "-d", str(wheels)], check=True)
        with zipfile.ZipFile(next(wheels.glob("tflite_micro-*.whl"))) as archive:
            archive.extractall(root / "site")
        (root / "complete").write_text("ok\n")

    def run(jobs):
        """``jobs``: (model bytes, list of calls' inputs, number of outputs); each job in a fresh interpreter."""
        import pickle
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            pickle.dump(jobs, open(f"{tmp}/jobs.pkl", "wb"))
            env = {**os.environ, "PYTHONPATH": str(root / "site")}
            done = subprocess.run([sys.executable, "-c", _TFLM_RUNNER, f"{tmp}/jobs.pkl", f"{tmp}/out.pkl"],
                                  env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stderr[-2000:]
            return pickle.load(open(f"{tmp}/out.pkl", "rb"))

    return run


def _micro_speech_chain():
    """The micro_speech audio preprocessor's signal ops with its options (480 samples, 512-point
    FFT, 40 channels; options as in TFLM's audio_preprocessor_int8.tflite), seeded constants, and
    4 frames of audio (the noise estimate carries over)."""
    frame, fft_length, channels, bins = 480, 512, 40, 257
    window_weights = RNG.integers(0, 4097, frame).astype(np.int16)
    weights, unweights, starts, weight_starts, widths = filter_bank_config(channels, bins, 5, 241)  # bins SignalEnergy writes
    lut = RNG.integers(-3000, 9000, 125).astype(np.int16)
    subtraction = {"alternate_one_minus_smoothing": 15401, "alternate_smoothing": 983, "clamping": False,
                   "min_signal_remaining": 819, "num_channels": channels, "one_minus_smoothing": 15975, "smoothing": 409,
                   "smoothing_bits": 10, "spectral_subtraction_bits": 14}
    tensors = {
        "audio": (np.int16, [frame], None), "window": (np.int16, [frame], window_weights),
        "windowed": (np.int16, [frame], None), "scaled": (np.int16, [frame], None), "bits": (np.int32, [], None),
        "spectrum": (np.int16, [2 * bins], None), "energy": (np.uint32, [bins], None),
        "w": (np.int16, [len(weights)], weights), "u": (np.int16, [len(weights)], unweights),
        "s": (np.int16, [channels + 1], starts), "ws": (np.int16, [channels + 1], weight_starts),
        "wd": (np.int16, [channels + 1], widths), "bank": (np.uint64, [channels], None),
        "root": (np.uint32, [channels], None), "clean": (np.uint32, [channels], None),
        "noise": (np.uint32, [channels], None), "lut": (np.int16, [125], lut), "gained": (np.uint32, [channels], None),
        "log": (np.int16, [channels], None),
    }
    ops = [("SignalWindow", ["audio", "window"], ["windowed"], {"shift": 12}),
           ("SignalFftAutoScale", ["windowed"], ["scaled", "bits"], {}),
           ("SignalRfft", ["scaled"], ["spectrum"], {"T": T_INT16, "fft_length": fft_length}),
           ("SignalEnergy", ["spectrum"], ["energy"], {"end_index": 241, "start_index": 5}),
           ("SignalFilterBank", ["energy", "w", "u", "s", "ws", "wd"], ["bank"], {"num_channels": channels}),
           ("SignalFilterBankSquareRoot", ["bank", "bits"], ["root"], {}),
           ("SignalFilterBankSpectralSubtraction", ["root"], ["clean", "noise"], subtraction),
           ("SignalPCAN", ["clean", "noise", "lut"], ["gained"], {"snr_shift": 6}),
           ("SignalFilterBankLog", ["gained"], ["log"], {"input_correction_bits": 3, "output_scale": 64})]
    model = signal_model(tensors, ["audio"], ["log", "noise", "spectrum"], ops)
    return model, [[int16s(frame, low=-8000, high=8000)] for _ in range(4)]


def test_signal_ops_match_tflite_micro(tflm_runtime):
    """Every op of the library in TFLM's own interpreter against the inverted model over sequences
    of calls, bit-exact: the micro_speech chain (Window, FftAutoScale, Rfft, Energy, FilterBank,
    FilterBankSquareRoot, SpectralSubtraction, PCAN, FilterBankLog), edge values one op at a
    time, the other FFT types and radices, and the stateful ops (outputs TFLM leaves unwritten,
    a Stacker's stack while not valid, are not compared)."""
    jobs, checks = [], []

    def add(model, calls, compare=None):
        inverted = ti.invert(model)
        mine = [run(inverted, *inputs) for inputs in calls]
        jobs.append((model, calls, len(mine[0])))
        checks.append((mine, compare))

    add(one_op("SignalFftAutoScale", {"x": (np.int16, [12])}, {"y": (np.int16, [12]), "bits": (np.int32, [])}, {}),
        [[int16s(12, low=-300, high=300)], [np.array([5, -32768, -7, 3, 100, -2, 0, 1, 2, -3, 4, 9], np.int16)], [np.zeros(12, np.int16)]])
    add(one_op("SignalFilterBankSquareRoot", {"x": (np.uint64, [8]), "bits": (np.int32, [])}, {"y": (np.uint32, [8])}, {}),
        [[np.array([0, 3, 2**32 - 1, 2**32, 2**63 + 7, 2**64 - 1, 99, 2**40], np.uint64), np.int32(2)]])
    add(one_op("SignalFilterBankLog", {"x": (np.uint32, [8])}, {"y": (np.int16, [8])}, {"input_correction_bits": 3, "output_scale": 1600}),
        [[np.array([0, 1, 2, 3, 2**29 - 1, 2**31, 2**32 - 1, 77777], np.uint32)]])
    for dtype, code, fft_length in ((np.int32, T_INT32, 24), (np.float32, T_FLOAT32, 24), (np.int16, T_INT16, 40)):
        bins = fft_length // 2 + 1
        x = (int16s(2, fft_length - 4) if dtype == np.int16 else RNG.integers(-2**31, 2**31, (2, fft_length - 4)).astype(np.int32)
             if dtype == np.int32 else RNG.normal(0, 1000, (2, fft_length - 4)).astype(np.float32))
        options = {"T": code, "fft_length": fft_length}
        add(one_op("SignalRfft", {"x": (dtype, [2, fft_length - 4])}, {"y": (dtype, [2, 2 * bins])}, options), [[x]])
        spectrum = (int16s(2, 2 * bins, low=-2000, high=2000) if dtype == np.int16 else
                    RNG.integers(-2**28, 2**28, (2, 2 * bins)).astype(np.int32) if dtype == np.int32 else RNG.normal(0, 100, (2, 2 * bins)).astype(np.float32))
        add(one_op("SignalIrfft", {"x": (dtype, [2, 2 * bins])}, {"y": (dtype, [2, fft_length])}, options), [[spectrum]])
    add(one_op("SignalFramer", {"x": (np.int16, [2, 4])}, {"y": (np.int16, [2, 2, 6]), "valid": (np.bool_, [])},
               {"frame_size": 6, "frame_step": 2, "prefill": True}), [[int16s(2, 4)] for _ in range(3)])
    add(one_op("SignalStacker", {"x": (np.int16, [3])}, {"y": (np.int16, [12]), "valid": (np.bool_, [])},
               {"num_channels": 3, "stacker_left_context": 2, "stacker_right_context": 1, "stacker_step": 2}),
        [[int16s(3)] for _ in range(6)], compare=lambda out: out if out[1] else [out[1]])
    add(one_op("SignalDelay", {"x": (np.int16, [2, 5])}, {"y": (np.int16, [2, 5])}, {"delay_length": 7}), [[int16s(2, 5)] for _ in range(3)])
    for dtype, code in ((np.int16, T_INT16), (np.float32, T_FLOAT32)):
        add(one_op("SignalOverlapAdd", {"x": (dtype, [2, 3, 6])}, {"y": (dtype, [2, 6])}, {"T": code, "frame_step": 2}),
            [[int16s(2, 3, 6) if dtype == np.int16 else RNG.normal(0, 1, (2, 3, 6)).astype(np.float32)] for _ in range(3)])
    add(*_micro_speech_chain())
    results = tflm_runtime(jobs)
    for (mine, compare), theirs in zip(checks, results):
        compare = compare or (lambda out: out)
        for call_mine, call_theirs in zip(mine, theirs):
            for a, b in zip(compare(call_mine), compare([np.asarray(t).reshape(np.shape(m)) for t, m in zip(call_theirs, call_mine)])):
                assert_same(np.asarray(a), np.asarray(b))
