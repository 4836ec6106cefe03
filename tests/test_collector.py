"""The cyclic garbage collector is paused while a model is built, saved or re-quantized, and left as
it was found afterwards (tflite_inverter/collector.py)."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import tflite_inverter as ti
from tflite_inverter.collector import paused, pausing
from tflite_inverter.sample import make_sample_model


def test_pause_nests_and_restores_the_collector_as_found():
    assert gc.isenabled()
    with paused():
        assert not gc.isenabled()
        with paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause does not end the outer one
    assert gc.isenabled()
    gc.disable()
    try:
        with paused():
            pass
        assert not gc.isenabled()  # a caller that disabled it keeps it disabled
    finally:
        gc.enable()

    @pausing
    def fails():
        assert not gc.isenabled()
        raise ValueError("inside")

    with pytest.raises(ValueError, match="inside"):
        fails()
    assert gc.isenabled()


def test_building_saving_and_requantizing_run_with_the_collector_paused(tmp_path, monkeypatch):
    """The heavy work inside invert, save_saved_model, save_frozen_pb and requantize sees the
    collector disabled (spies on the functions each one calls), and it is enabled again after each."""
    from tflite_inverter.build import inverted as inverted_module
    from tflite_inverter.quant import requantize as requantize_module

    path = tmp_path / "sample.tflite"
    path.write_bytes(make_sample_model())
    enabled: dict[str, bool] = {}

    def spy(module, name):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            enabled[name] = gc.isenabled()
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    for name in ("InvertedModule", "save_saved_model", "save_frozen_pb"):
        spy(inverted_module, name)
    spy(requantize_module, "choose_backend")
    inverted = ti.invert(path)
    assert gc.isenabled()
    inverted.save_saved_model(tmp_path / "sm")
    inverted.save_frozen_pb(tmp_path / "model.pb")
    assert gc.isenabled()
    data = np.random.default_rng(0).uniform(0, 1, [4, *inverted.inputs()[0].shape[1:]]).astype(np.float32)
    ti.requantize(path, tmp_path / "q.tflite", mode="int8", representative=data, progress=False, compare=False)
    assert gc.isenabled()
    assert enabled == {"InvertedModule": False, "save_saved_model": False, "save_frozen_pb": False,
                       "choose_backend": False}
