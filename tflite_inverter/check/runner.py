"""Running the reference interpreter (LiteRT, in a subprocess: it can crash) and making its inputs:
what ``verify``, ``compare`` and the segment checks share."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence

import numpy as np

from .. import ir
from ..errors import ReferenceCrashedError, VerificationError
from ..quant.grids import is_quantized_activation, quantize_array

_NUMPY_DTYPES = ir.NUMPY_DTYPES


def make_inputs(tensors: Sequence[ir.Tensor], draws: int, seed: int, float_range: tuple[float, float] = (-1.0, 1.0),
                shapes: Mapping[int, Sequence[int]] | None = None) -> list[list[np.ndarray]]:
    """Seeded inputs, ``draws`` sets of them: floats uniform in ``float_range``, integers over their type's range."""
    rng = np.random.default_rng(seed)
    result = []
    for _ in range(draws):
        values = []
        for position, tensor in enumerate(tensors):
            shape = tuple(shapes[position]) if shapes and position in shapes else tuple(
                1 if d < 0 else d for d in tensor.shape_signature
            )
            dtype = _NUMPY_DTYPES.get(tensor.dtype)
            if dtype is None:
                raise VerificationError(f"cannot make random inputs of type {tensor.dtype} for {tensor.name!r}; pass inputs=")
            if np.issubdtype(dtype, np.floating):
                values.append(rng.uniform(*float_range, size=shape).astype(dtype))
            elif dtype == np.bool_:
                values.append(rng.integers(0, 2, size=shape).astype(np.bool_))
            elif tensor.quantization is not None or dtype in (np.int8, np.uint8):
                info = np.iinfo(dtype)
                values.append(rng.integers(info.min, int(info.max) + 1, size=shape).astype(dtype))
            else:
                values.append(rng.integers(0, 10, size=shape).astype(dtype))
        result.append(values)
    return result


def run_reference(model_path: str, draws: list[list[np.ndarray]], *, input_names: Sequence[str], input_tensors: Sequence[int],
                  output_names: Sequence[str], output_tensors: Sequence[int], signature: str | None,
                  resolvers: Sequence[str] = ("default",), all_tensors: bool = False, timeout: float = 900,
                  sequence: bool = False) -> dict[str, np.ndarray]:
    """Run the reference interpreter in a subprocess; results keyed ``resolver/draw/out/position``.
    Each draw starts from reset variable tensors; with ``sequence`` the draws also run as successive
    invocations of one interpreter (its state carried from one to the next), keyed ``sequence/...``."""
    with tempfile.TemporaryDirectory(prefix="tflite_inverter_ref_") as work:
        inputs_path = os.path.join(work, "inputs.npz")
        outputs_path = os.path.join(work, "outputs.npz")
        np.savez(inputs_path, **{f"{d}/{i}": value for d, values in enumerate(draws) for i, value in enumerate(values)})
        request = {
            "model": str(model_path), "inputs": inputs_path, "outputs": outputs_path, "draws": len(draws),
            "input_names": list(input_names), "input_tensors": list(input_tensors),
            "output_names": list(output_names), "output_tensors": list(output_tensors),
            "signature": signature, "resolvers": list(resolvers), "all_tensors": all_tensors, "sequence": sequence,
        }
        request_path = os.path.join(work, "request.json")
        with open(request_path, "w") as handle:
            json.dump(request, handle)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "tflite_inverter.check.reference", request_path],
                capture_output=True, text=True, timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise VerificationError(f"{model_path}: the reference interpreter did not finish in {timeout:.0f} s") from None
        if done.returncode != 0:
            if done.returncode < 0:
                what = f"crashed (signal {-done.returncode})"
            else:
                what = f"failed (exit {done.returncode})"
            message = f"{model_path}: the reference interpreter {what}: {_failure(done.stderr)}"
            if done.returncode < 0:
                raise ReferenceCrashedError(message, -done.returncode)
            raise VerificationError(message)
        with np.load(outputs_path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}


def _failure(stderr: str) -> str:
    """What the reference child said before it failed: the exception line of its traceback (LiteRT's
    message, such as "RuntimeError: Encountered unresolved custom op: ..."), else its last lines;
    traceback source lines and their ``^^^`` markers are left out."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip().strip("^~ ")]
    starts = [i for i, line in enumerate(lines) if re.match(r"[A-Za-z_][\w.]*(Error|Exception)\b:", line)]
    # The exception line and what follows it (LiteRT's message goes on: "Node number 192 (...) failed to prepare.")
    return " | ".join(lines[starts[-1]:][:3]) if starts else " | ".join(lines[-3:])


def to_model_input(value: np.ndarray, tensor: ir.Tensor) -> np.ndarray:
    """A real-valued input in the model's own input type (quantized to its grid if integer)."""
    if is_quantized_activation(tensor):
        return quantize_array(value, tensor.quantization, tensor.dtype)
    return np.asarray(value).astype(_NUMPY_DTYPES.get(tensor.dtype, np.float32))
