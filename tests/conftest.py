"""Shared fixtures: the MediaPipe 0.10.14 models, fetched once into a cache.

The wheel is fetched with ``pip download --no-deps mediapipe==0.10.14`` into
``$TFLITE_INVERTER_CACHE`` (default ``~/.cache/tflite_inverter``) and only its ``.tflite`` files are
kept; mediapipe itself is never installed. A failed download fails the tests that need it.
"""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(__file__))

MEDIAPIPE_VERSION = "0.10.14"


def _cache_dir() -> Path:
    root = Path(os.environ.get("TFLITE_INVERTER_CACHE", Path.home() / ".cache" / "tflite_inverter"))
    return root / f"mediapipe-{MEDIAPIPE_VERSION}"


@pytest.fixture(scope="session")
def mediapipe_models() -> dict[str, Path]:
    cache = _cache_dir()
    marker = cache / "complete"
    if not marker.exists():
        cache.mkdir(parents=True, exist_ok=True)
        wheels = cache / "wheel"
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", f"mediapipe=={MEDIAPIPE_VERSION}",
             "--python-version", "3.11", "--platform", "manylinux2014_x86_64", "--only-binary=:all:", "-d", str(wheels)],
            check=True,
        )
        wheel = next(wheels.glob("mediapipe-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if name.startswith("mediapipe/modules/") and name.endswith(".tflite"):
                    (cache / Path(name).name).write_bytes(archive.read(name))
        wheel.unlink()
        marker.write_text("ok\n")
    models = {p.stem: p for p in cache.glob("*.tflite")}
    assert len(models) == 14, f"expected 14 .tflite files in the mediapipe wheel, found {sorted(models)}"
    return models


@pytest.fixture(scope="session")
def generated_models(tmp_path_factory) -> dict[str, Path]:
    """Small converter-made models (tests/fuzzing.py: make_base_models), for the validation and fuzz tests."""
    from fuzzing import make_base_models

    return {name: Path(path) for name, path in make_base_models(str(tmp_path_factory.mktemp("generated"))).items()}
