"""The inputs and outputs of a signature as the inverted model takes and returns them
(:class:`IOSpec`), and the check of what ``run()`` / ``tensor_values()`` are given against them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..logs import import_tensorflow

tf = import_tensorflow()  # TensorFlow's start-up lines hidden unless ti.set_verbosity(...)

from .. import ir  # noqa: E402
from ..display import did_you_mean, shape_text
from ..errors import TfliteInverterError
from ..quant.grids import is_quantized_activation
from .context import TF_DTYPES
from .signatures import SignatureInfo


@dataclass(frozen=True)
class IOSpec:
    """One input or output of a signature, with the tensor it comes from.

    ``dtype`` is what the inverted model takes or returns: the TFLite type with ``io="native"``,
    ``float32`` for a quantized input/output with ``io="float"``.
    """

    name: str  # the key in the SavedModel signature
    tensor: ir.Tensor
    dtype: str

    @property
    def shape(self) -> list[int | None]:
        return [None if d < 0 else d for d in self.tensor.shape_signature]

    @property
    def quantized(self) -> bool:
        return is_quantized_activation(self.tensor)


class InputChecks:
    """The input checks of :class:`~tflite_inverter.build.inverted.InvertedModel`, which provides
    what they read: ``input_shapes`` and ``inputs()``."""

    def _feeds(self, info: SignatureInfo, inputs: Any) -> dict[str, tf.Tensor]:
        """The inputs of one call as tensors by parameter name, checked against the signature."""
        specs = self.inputs(info.key)
        names = [s.name for s in specs]
        takes = f"signature {info.key!r} takes {len(specs)} input(s): " + ", ".join(
            f"{s.name} {s.dtype}{shape_text(self._expected_shape(info, s))}" for s in specs)
        if isinstance(inputs, Mapping):
            aliases = {}
            for spec, raw in zip(specs, info.input_names):
                for alias in (spec.name, raw, spec.tensor.name):
                    aliases.setdefault(alias, spec.name)
            unknown = [k for k in inputs if k not in aliases]
            given = {aliases[k]: v for k, v in inputs.items() if k in aliases}
            missing = [n for n in names if n not in given]
            if unknown or missing:
                hints = "".join(f"; {k!r}{did_you_mean(str(k), names) or ' is not an input'}" for k in unknown)
                raise TfliteInverterError(f"run(): given input(s) {sorted(map(str, inputs))}, missing {missing}{hints}; "
                                          f"{takes}")
        else:
            if isinstance(inputs, np.ndarray) or hasattr(inputs, "numpy"):
                inputs = [inputs]  # one array for a one-input signature, not a list of its rows
            inputs = list(inputs)
            if len(inputs) != len(specs):
                raise TfliteInverterError(f"run(): {len(inputs)} input array(s) given; {takes}")
            given = dict(zip(names, inputs))
        return {spec.name: tf.convert_to_tensor(self._checked_input(info, spec, given[spec.name]), TF_DTYPES[spec.dtype])
                for spec in specs}

    def _expected_shape(self, info: SignatureInfo, spec: IOSpec) -> list[int | None] | None:
        if not spec.tensor.has_rank:
            return None
        return self.input_shapes.get((info.key, spec.tensor.index), spec.shape)

    def _checked_input(self, info: SignatureInfo, spec: IOSpec, value: Any) -> np.ndarray:
        """``value`` as an array the signature accepts, or an error naming the input, what was given
        and what is expected (dtype, rank, batch dimension, static sizes)."""
        array = value.numpy() if hasattr(value, "numpy") else np.asarray(value)
        expected_dtype = spec.dtype
        label = f"run(): input {spec.name!r}"
        if expected_dtype in ir.NUMPY_DTYPES:
            want = ir.NUMPY_DTYPES[expected_dtype]
            kind, want_kind = array.dtype.kind, want.kind
            if want_kind == "f" and kind not in "f":
                raise TfliteInverterError(
                    f"{label}: a {array.dtype} array was given; the model takes {expected_dtype} (real values): "
                    f"convert it with the model's normalisation, e.g. x.astype(np.float32) / 255 or "
                    f"(x - 127.5) / 127.5" + (" (or invert with io='native' to feed the quantized values)"
                                              if spec.quantized else ""))
            if want_kind in "iu" and kind not in "iu":
                raise TfliteInverterError(
                    f"{label}: a {array.dtype} array was given; the model takes {expected_dtype}"
                    + (f" (quantized: q = round(x / scale) + zero_point, {spec.tensor.quantization.describe()}; or "
                       "invert with io='float' to feed real values)" if spec.quantized else ""))
            if want_kind in "iu" and array.size and (array.min() < np.iinfo(want).min or array.max() > np.iinfo(want).max):
                raise TfliteInverterError(f"{label}: values in [{array.min()}, {array.max()}] do not fit {expected_dtype}")
            if want_kind == "b" and kind != "b":
                raise TfliteInverterError(f"{label}: a {array.dtype} array was given; the model takes bool")
        shape = self._expected_shape(info, spec)
        if shape is None:
            return array
        if array.ndim != len(shape):
            if array.ndim == len(shape) - 1 and all(e is None or e == g for e, g in zip(shape[1:], array.shape)):
                raise TfliteInverterError(f"{label}: shape {tuple(array.shape)} lacks the batch dimension; expected "
                                          f"{shape_text(shape)}: add it with x[np.newaxis]")
            raise TfliteInverterError(f"{label}: shape {tuple(array.shape)} has rank {array.ndim}; expected "
                                      f"{shape_text(shape)} (rank {len(shape)})")
        wrong = [i for i, (e, g) in enumerate(zip(shape, array.shape)) if e is not None and e != g]
        if wrong:
            which = "the batch dimension" if wrong == [0] else f"dimension(s) {wrong}"
            hint = " (invert with input_shapes={...: [None, ...]} for another batch)" if wrong == [0] else ""
            raise TfliteInverterError(f"{label}: shape {tuple(array.shape)} differs from {shape_text(shape)} in "
                                      f"{which}{hint}")
        return array
