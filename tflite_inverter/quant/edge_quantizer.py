"""Weight-only and dynamic int4 modes through Google's ``ai-edge-quantizer`` (an optional back end).

ai-edge-quantizer quantizes a float ``.tflite`` directly, without TensorFlow, and implements the
weight-only (int8 / int4 weights, float activations) and dynamic int4 recipes well; this project
does not re-implement them. It needs a normalised copy of the file, which :func:`normalized` writes
with the schema's object API:

* both opcode fields set (it reads only the 32-bit ``builtin_code``; files written before that
  field existed keep the code in ``deprecated_builtin_code``, so they look like all ADD);
* a SignatureDef (it keys inputs and outputs by signature);
* float32 constants: float16 weights behind a DEQUANTIZE become float32 constants and the
  DEQUANTIZE goes (the graph is a DAG in topological order; removing an operator keeps it valid).
* dense constants (sparse weights densified, DENSIFY removed) and MediaPipe's
  Convolution2DTransposeBias as the builtin TRANSPOSE_CONV (:mod:`.aeq_normalize`).

The result gets the original's interface back (:mod:`tflite_inverter.quant.interface`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from ..errors import TfliteInverterError
from .object_api import builtin_code, drop_orphan_tensors, drop_unused_buffers, inline_buffers, opcode_index, packed, unpacked

# mode -> the ai_edge_quantizer.recipe function
RECIPES = {
    "weight_only_int8": "weight_only_wi8_afp32",
    "weight_only_int4": "weight_only_wi4_afp32",
    "dynamic_int4": "dynamic_wi4_afp32",
    "dynamic_int4_block32": "dynamic_wi4b32_afp32",
}
_SIGNATURE_KEY = "serving_default"


@contextmanager
def _without_progress_bars() -> Iterator[None]:
    """ai-edge-quantizer's tqdm bars off: 0.10 shows them by default on models of a few hundred
    tensors, and its ``quantize(enable_progress_bar=False)`` does not reach the bar of its model
    modifier ("Applying Transformations to tensors"), so every bar it makes is made disabled."""
    from ai_edge_quantizer.utils import progress_utils

    original = progress_utils.ProgressBar.__init__

    def disabled(self, total_steps, description="", disappear_on_finish=False, enable=None):
        original(self, total_steps, description, disappear_on_finish, enable=False)

    progress_utils.ProgressBar.__init__ = disabled
    try:
        yield
    finally:
        progress_utils.ProgressBar.__init__ = original


def available() -> bool:
    try:
        import ai_edge_quantizer  # noqa: F401
    except ImportError:
        return False
    return True


def normalized(data: bytes) -> bytes:
    """``data`` (a float ``.tflite``) as ai-edge-quantizer reads it (see the module docstring)."""
    from tensorflow.lite.python import schema_py_generated as schema

    from . import aeq_normalize

    model = unpacked(data)
    for code in model.operatorCodes or []:
        builtin = builtin_code(code)
        code.builtinCode = builtin
        code.deprecatedBuiltinCode = min(builtin, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    aeq_normalize.rewrite(model, data, schema)  # sparse constants densified, Convolution2DTransposeBias as TRANSPOSE_CONV
    codes = [code.builtinCode for code in model.operatorCodes or []]
    for sg in model.subgraphs:
        kept = []
        for op in sg.operators or []:
            if codes[op.opcodeIndex] == schema.BuiltinOperator.DEQUANTIZE and _fold_float16(model, sg, op, schema):
                continue
            kept.append(op)
        sg.operators = kept
        drop_orphan_tensors(model, sg)
    drop_unused_buffers(model)
    if not model.signatureDefs:
        sg = model.subgraphs[0]
        signature = schema.SignatureDefT()
        signature.signatureKey, signature.subgraphIndex = _SIGNATURE_KEY, 0

        def maps(indices):
            result = []
            for index in indices:
                entry = schema.TensorMapT()
                entry.name, entry.tensorIndex = sg.tensors[index].name, int(index)
                result.append(entry)
            return result

        signature.inputs, signature.outputs = maps(sg.inputs), maps(sg.outputs)
        model.signatureDefs = [signature]
    return packed(model, 2 * len(data))


def _fold_float16(model, sg, op, schema) -> bool:
    """Make DEQUANTIZE(float16 constant)'s output a float32 constant; False if ``op`` is another kind."""
    source, target = sg.tensors[op.inputs[0]], sg.tensors[op.outputs[0]]
    buffer = model.buffers[source.buffer] if source.buffer else None
    if source.type != schema.TensorType.FLOAT16 or buffer is None or buffer.data is None or not len(buffer.data):
        return False
    if buffer.offset:  # data stored outside the flatbuffer (large models)
        return False
    values = np.frombuffer(np.asarray(buffer.data, np.uint8).tobytes(), np.float16).astype(np.float32)
    folded = schema.BufferT()
    folded.data = np.frombuffer(values.tobytes(), np.uint8)
    model.buffers.append(folded)
    target.buffer = len(model.buffers) - 1
    target.type = schema.TensorType.FLOAT32
    return True


def quantize(data: bytes, mode: str) -> bytes:
    """``data`` (a float ``.tflite``) quantized with the ai-edge-quantizer recipe of ``mode``."""
    if mode not in RECIPES:
        raise TfliteInverterError(f"mode {mode!r} has no ai-edge-quantizer recipe; the recipes are {sorted(RECIPES)}")
    if not available():
        raise TfliteInverterError(f"mode {mode!r} needs ai-edge-quantizer (pip install ai-edge-quantizer)")
    from ai_edge_quantizer import quantizer, recipe

    try:
        runner = quantizer.Quantizer(normalized(data), getattr(recipe, RECIPES[mode])())
        with _without_progress_bars():
            result = runner.quantize(enable_progress_report=False, enable_progress_bar=False)
    except TfliteInverterError:
        raise
    except Exception as error:  # the quantizer raises several kinds
        raise TfliteInverterError(f"ai-edge-quantizer failed ({mode}): {type(error).__name__}: {error}") from None
    return bytes(result.quantized_model)


# -- integer modes (dynamic range, static int8 / int16x8) on the project's own calibration ---------------
# mode -> the ai_edge_quantizer.recipe function, for the modes the TFLite converter also serves
INTEGER_RECIPES = {"dynamic_range": "dynamic_legacy_wi8_afp32", "int8": "static_wi8_ai8", "int16x8": "static_wi8_ai16"}
CLIP_PERCENTILE = 99.999  # the clipped candidate: activation ranges between the 0.001 % and 99.999 % points


_POLICY = {"dynamic_range": "dynamic_wi8_afp32", "int8": "static_wi8_ai8", "int16x8": "static_wi8_ai16"}


def left_in_float(model, mode: str) -> list[str]:
    """The operators of ``model`` (a float ``.tflite`` as read) that ai-edge-quantizer's ``mode`` recipe
    does not quantize (its default policy), so that they would compute in float; none for dynamic
    range. The operators are those of the normalised copy (:func:`normalized`): DEQUANTIZE of float16
    weights is folded and DENSIFY of sparse weights densified (neither counted), and
    Convolution2DTransposeBias is a TRANSPOSE_CONV (:mod:`.aeq_normalize`); nor are the operators
    :mod:`.aeq_float_islands` handles (PRELU and DEPTH_TO_SPACE made int8 after aeq in int8; PRELU float
    in int16x8, as the converter keeps it)."""
    import json

    from ai_edge_quantizer import default_policy

    from . import aeq_normalize
    from .aeq_float_islands import HANDLED

    opcodes = aeq_normalize.opcodes(model) - {"DEQUANTIZE"}
    if mode == "dynamic_range":
        return []
    supported = aeq_normalize.tflite_names(json.loads(default_policy.DEFAULT_JSON_POLICY)["ops_per_config"][_POLICY[mode]])
    return sorted(opcodes - supported - HANDLED.get(mode, set()))


def _interpreter(data: bytes, preserve: bool = False):
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_content=data, experimental_preserve_all_tensors=preserve)
        interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as error:
        raise TfliteInverterError(f"LiteRT cannot run the float model to calibrate it: {str(error).strip().splitlines()[0]}") from None
    return interpreter


def _feed(interpreter, sample) -> None:
    details = interpreter.get_input_details()
    if len(details) != len(sample):
        raise TfliteInverterError(f"a calibration sample has {len(sample)} arrays for {len(details)} inputs")
    for detail, value in zip(details, sample):
        value = np.asarray(value, np.float32).reshape(detail["shape"])
        scale, zero_point = detail["quantization"]
        if detail["dtype"] != np.float32:
            info = np.iinfo(detail["dtype"])
            value = np.clip(np.round(value / scale) + zero_point, info.min, info.max).astype(detail["dtype"])
        interpreter.set_tensor(detail["index"], value)


def _outputs(interpreter) -> dict[str, np.ndarray]:
    result = {}
    for detail in interpreter.get_output_details():
        value = interpreter.get_tensor(detail["index"])
        scale, zero_point = detail["quantization"]
        if value.dtype != np.float32:
            value = (value.astype(np.float32) - zero_point) * scale
        result[detail["name"]] = value
    return result


MIN_MAX, AVERAGED, CLIPPED = "min/max", "moving average", f"{100 - CLIP_PERCENTILE:g} % / {CLIP_PERCENTILE:g} % points"
SMOOTHING = 0.95  # ai-edge-quantizer's moving average of the per-sample min/max (qsv_utils.moving_average_update)


def activation_statistics(data: bytes, samples, percentile: float | None = CLIP_PERCENTILE):
    """Run the float ``data`` in LiteRT (every tensor kept) on ``samples`` (lists of float input
    arrays); per kind of range, per activation tensor name, its (low, high): ``MIN_MAX`` over all
    samples, ``AVERAGED`` (the moving average of each sample's min and max that ai-edge-quantizer's
    own calibration computes, ``SMOOTHING`` on the old value), and ``CLIPPED``, the
    (``100 - percentile``, ``percentile``) points over all samples (not computed for ``None``); and
    the float outputs per sample. The percentiles are exact: the ``k`` most extreme values of each
    tensor are kept, not the tensor."""
    from ..reader import load

    model = load(data)
    constant = {t.name for t in model.main.tensors if t.data is not None}
    interpreter = _interpreter(data, preserve=True)
    details = [d for d in interpreter.get_tensor_details() if d["dtype"] == np.float32 and d["name"] not in constant]
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    averaged: dict[str, tuple[float, float]] = {}
    tails: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
    outputs = []
    for sample in samples:
        _feed(interpreter, sample)
        interpreter.invoke()
        outputs.append(_outputs(interpreter))
        for detail in details:
            try:
                value = interpreter.get_tensor(detail["index"]).ravel()
            except ValueError:  # no data (an unused or freed tensor)
                continue
            if not value.size:
                continue
            name = detail["name"]
            lo, hi = float(value.min()), float(value.max())
            low[name] = min(low.get(name, np.inf), lo)
            high[name] = max(high.get(name, -np.inf), hi)
            old = averaged.get(name)  # float32 arrays, as aeq computes it (the same ranges to the bit)
            new = (np.full(1, value.min(), np.float32), np.full(1, value.max(), np.float32))
            averaged[name] = new if old is None else (SMOOTHING * old[0] + (1.0 - SMOOTHING) * new[0],
                                                      SMOOTHING * old[1] + (1.0 - SMOOTHING) * new[1])
            bottom, top, k = tails.get(name, (np.empty(0, np.float32), np.empty(0, np.float32),
                                              int(value.size * len(samples) * (100.0 - percentile) / 100.0) if percentile else 0))
            if k:  # only values beyond the current k-th most extreme one can enter the tails
                top = _largest(np.concatenate([top, value if top.size < k else value[value > top.min()]]), k)
                bottom = -_largest(-np.concatenate([bottom, value if bottom.size < k else
                                                    value[value < bottom.max()]]), k)
            tails[name] = (bottom, top, k)
    ranges = {name: (low[name], high[name]) for name in low}
    kinds = {MIN_MAX: ranges, AVERAGED: {name: (float(lo[0]), float(hi[0])) for name, (lo, hi) in averaged.items()}}
    if percentile:
        clipped = {}
        for name, (lo, hi) in ranges.items():
            bottom, top, k = tails[name]
            clipped[name] = (float(bottom.max()), float(top.min())) if k and top.size == k else (lo, hi)
        kinds[CLIPPED] = clipped
    return kinds, outputs


def _largest(values: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` largest of ``values`` (in no order), exactly. A partition of the whole tensor costs
    more than the rest of the statistics pass, so it is first cut to the values at or above the k-th
    largest of a strided subset (never above the k-th largest of all: every one of the ``k`` stays)."""
    if values.size <= k:
        return values
    subset = values[::max(1, values.size // (64 * k))]
    if subset.size > k:
        values = values[values >= np.partition(subset, subset.size - k)[subset.size - k]]
    return np.partition(values, values.size - k)[values.size - k:]


def _qsvs(ranges, ranks: dict[str, int] | None = None) -> dict:
    """``ranges`` (name -> (low, high)) as ai-edge-quantizer's calibration results: float32 arrays of
    shape ``(1,) * rank`` of the tensor (its calibration's keepdims shape, ``ranks`` by name; the
    shape matters: aeq 0.10 derives the grid of a RESHAPE's requantized output from it, and (1,)
    for a rank-3 tensor gave face_detection_short_range another scale)."""
    ranks = ranks or {}

    def array(value: float, name: str) -> np.ndarray:
        return np.full((1,) * ranks.get(name, 1), value, np.float32)

    return {name: {"min": array(lo, name), "max": array(hi, name)} for name, (lo, hi) in ranges.items()}


def tensor_ranks(data: bytes) -> dict[str, int]:
    """Rank of each tensor of the main subgraph of ``data``, by name."""
    from ..reader import load

    return {t.name: len(t.shape) for t in load(data).main.tensors}


def output_errors(data: bytes, samples, references) -> dict[str, tuple[float, float]]:
    """Per output of ``data`` (named as in ``references``: float outputs per sample, in the model's
    output order), its max and mean absolute error against the references, each as a share of that
    output's magnitude (its largest float value over the samples), in LiteRT (one interpreter,
    allocated once). Outputs pair by name, or by position where aeq renamed them (an integer output
    of an op it quantized is ``<name>_quantized``)."""
    interpreter = _interpreter(data)
    largest: dict[str, float] = {}
    worst: dict[str, float] = {}
    means: dict[str, list[float]] = {}
    names = [detail["name"] for detail in interpreter.get_output_details()]
    wanted = list(references[0]) if references else []
    if set(names) != set(wanted):
        if len(names) != len(wanted):
            raise TfliteInverterError(f"the quantized model has outputs {names}; the float model's are {wanted}")
        names = wanted  # aeq keeps the outputs' order
    for sample, reference in zip(samples, references):
        _feed(interpreter, sample)
        interpreter.invoke()
        for name, value in zip(names, _outputs(interpreter).values()):
            if name in reference:
                difference = np.abs(value - reference[name])
                largest[name] = max(largest.get(name, 0.0), float(np.abs(reference[name]).max()))
                worst[name] = max(worst.get(name, 0.0), float(difference.max()))
                means.setdefault(name, []).append(float(difference.mean()))
    return {name: (worst[name] / max(largest[name], 1e-12), float(np.mean(means[name])) / max(largest[name], 1e-12))
            for name in worst}


MARGIN = 0.05  # a candidate replaces aeq's own ranges only when better by this share on every output's max and mean


def better_everywhere(candidate: dict[str, tuple[float, float]], baseline: dict[str, tuple[float, float]],
                      margin: float = MARGIN) -> bool:
    """Whether ``candidate``'s error (per output: max, mean; :func:`output_errors`) is below
    ``baseline``'s by at least ``margin`` of it on every output, in both max and mean, but for outputs
    whose max and mean are both exactly the baseline's (outputs the candidate leaves as they were),
    with at least one output better: the goal is each output no worse than the baseline, and a tie of
    one of the two (two near-binary outputs both wrong by 100 %) or a gain on one output paid on
    another is no evidence on eight samples."""
    if not candidate or candidate.keys() != baseline.keys():
        return False
    same = {name for name in baseline if candidate[name] == baseline[name]}
    return len(same) < len(baseline) and all(
        name in same or all(candidate[name][k] <= (1.0 - margin) * baseline[name][k] for k in (0, 1))
        for name in baseline)


DECISIVE = 2.0  # ... or when some output's max error is smaller by this factor
DECISIVE_LOSS = 0.10  # and no output's max or mean is larger by more than this share


def decisively_better(candidate: dict[str, tuple[float, float]], baseline: dict[str, tuple[float, float]],
                      factor: float = DECISIVE, margin: float = DECISIVE_LOSS) -> bool:
    """Whether some output of ``candidate`` has a max error smaller than ``baseline``'s by ``factor``
    or more, and no output's max or mean is larger by more than ``margin`` of it: the outliers that a
    moving average of per-sample ranges clips, a gain that large is evidence even on few samples where
    :func:`better_everywhere` asks every output to gain. Gains in the mean alone do not count: on
    hand_landmark_lite they came with a max error 20 % above aeq's on other crops (measured:
    on a sparse model the clipped ranges gave 0.8 % max error on the calibration samples against
    aeq's 17.5 %, the means 0.07 % against 0.08 %; on a Convolution2DTransposeBias model 0.8 % against
    13.9 %, the means 0.21 % against 0.20 %; on a DEPTH_TO_SPACE model 1.2 % against 19.4 %, the means
    0.19 % against 0.18 %)."""
    if not candidate or candidate.keys() != baseline.keys():
        return False
    return (all(candidate[name][k] <= (1.0 + margin) * baseline[name][k] for name in baseline for k in (0, 1))
            and any(baseline[name][0] > 0 and candidate[name][0] * factor <= baseline[name][0] for name in baseline))


def _accepted(candidate: dict[str, tuple[float, float]], baseline: dict[str, tuple[float, float]]) -> bool:
    return better_everywhere(candidate, baseline) or decisively_better(candidate, baseline)


def output_branches(data: bytes) -> dict[str, set[str]]:
    """Per tensor name of the main subgraph of ``data``, the names of the outputs it reaches."""
    from ..reader import load

    sg = load(data).main
    names = {t.index: t.name for t in sg.tensors}
    reaches: dict[str, set[str]] = {names[i]: {names[i]} for i in sg.outputs}
    for op in reversed(sg.operators):  # topological order: every consumer is seen before its producer
        reached = set().union(*(reaches.get(names[o], set()) for o in op.outputs))
        for index in list(op.inputs) + list(op.outputs):
            if index >= 0:
                reaches.setdefault(names[index], set()).update(reached)
    return reaches


def quantize_calibrated(data: bytes, mode: str, samples=None, float_io: bool = True) -> tuple[bytes, list[str]]:
    """``data`` (a float ``.tflite``) in ``mode`` (``dynamic_range``, ``int8``, ``int16x8``) by
    ai-edge-quantizer, and notes. The static modes take the activation ranges measured here (LiteRT
    on ``samples``). int8: ai-edge-quantizer's own moving average (:data:`AVERAGED`, the same ranges
    to the bit as its calibration) unless the clipped ranges of :data:`CLIP_PERCENTILE`, or a mix of
    the two by output branch, give a smaller error on every output, max and mean, on the calibration
    samples (:func:`better_everywhere`, :func:`decisively_better`, :func:`_chosen_int8`); int16x8 takes
    min/max. ``float_io``:
    float inputs and outputs (a QUANTIZE / DEQUANTIZE at the edges), else the integer ones aeq writes."""
    if mode not in INTEGER_RECIPES:
        raise TfliteInverterError(f"mode {mode!r} has no ai-edge-quantizer recipe here; they are {sorted(INTEGER_RECIPES)}")
    if not available():
        raise TfliteInverterError("backend 'aeq' needs ai-edge-quantizer (pip install ai-edge-quantizer)")
    from ai_edge_quantizer import quantizer, recipe

    from ..reader import load
    from . import aeq_float_islands, aeq_zero_channels

    prepared = normalized(data)
    runner, float_model, zero_channels = None, None, 0

    def run(calibration=None) -> bytes:
        nonlocal runner, float_model, zero_channels
        try:
            if runner is None:  # one Quantizer for every candidate (its model parse and recipe; tested byte-identical)
                runner = quantizer.Quantizer(prepared, getattr(recipe, INTEGER_RECIPES[mode])())
            with _without_progress_bars(), warnings.catch_warnings():
                # numpy's warning for the zero channels' overflowing biases, which are repaired below
                warnings.filterwarnings("ignore", "invalid value encountered in cast", RuntimeWarning)
                result = bytes(runner.quantize(calibration, enable_progress_report=False,
                                               enable_progress_bar=False).quantized_model)
        except TfliteInverterError:
            raise
        except Exception as error:  # the quantizer raises several kinds
            raise TfliteInverterError(f"ai-edge-quantizer failed ({mode}): {type(error).__name__}: {error}") from None
        if mode == "dynamic_range":  # float biases: nothing to repair, no island to fuse
            return result
        if float_model is None:
            float_model = load(prepared)
        # all-zero weight channels (their count depends on the weights only: the same for every candidate)
        result, zero_channels = aeq_zero_channels.repaired(result, float_model)
        return aeq_float_islands.fuse_islands(result)[0] if mode == "int8" else result  # int8 PRELU, DEPTH_TO_SPACE

    def repair_note() -> list[str]:
        return [f"{zero_channels} weight channels that are all zero given their operator's median scale and their bias "
                f"quantized again (ai-edge-quantizer gives them the scale 1e-9 / 127, on which the bias overflows)"
                ] if zero_channels else []

    if mode == "dynamic_range":
        return run(), [f"ai-edge-quantizer recipe {INTEGER_RECIPES[mode]}"]
    if not samples:
        raise TfliteInverterError(f"mode {mode!r} with backend 'aeq' needs representative data")
    if mode == "int16x8":  # 16-bit activations: the widest ranges (LiteRT's int16 kernels are too slow to try
        # candidates: measured 2.5-11x aeq's time with two, and no better on the evaluation crops)
        kinds, _ = activation_statistics(prepared, samples, percentile=None)
        quantized = run(_qsvs(kinds[MIN_MAX], tensor_ranks(prepared)))
        notes = [f"ai-edge-quantizer recipe {INTEGER_RECIPES[mode]} on activation ranges (min/max) measured in "
                 f"LiteRT over {len(samples)} samples"] + repair_note()
        return with_float_edges(quantized) if float_io else quantized, notes
    quantized, label, errors, other = _chosen_int8(prepared, samples, run)
    worst = output_error_of(errors)
    against = (f"; the {other[0]} gave {output_error_of(other[1])[0]:.1%} / {output_error_of(other[1])[1]:.2%}"
               if other else "")
    notes = [f"ai-edge-quantizer recipe {INTEGER_RECIPES[mode]} on activation ranges measured in LiteRT over "
             f"{len(samples)} samples: {label} kept (max / mean error {worst[0]:.1%} / {worst[1]:.2%} of the outputs' "
             f"magnitude on the calibration samples{against})"] + repair_note()
    return with_float_edges(quantized) if float_io else quantized, notes


def output_error_of(errors: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """The largest max and the largest mean over the outputs of :func:`output_errors`."""
    return max((e[0] for e in errors.values()), default=0.0), max((e[1] for e in errors.values()), default=0.0)


def _chosen_int8(prepared: bytes, samples, run):
    """(model, label, per-output errors, (other label, its errors) or None) of the int8 candidate kept,
    errors on the calibration samples. :data:`AVERAGED` (aeq's own ranges) unless :data:`CLIPPED` is
    :func:`better_everywhere` or :func:`decisively_better`; where the clipped ranges are better on some
    outputs only, a mix (the clipped ranges on the tensors that reach only those outputs, aeq's
    elsewhere) if it is accepted so. The clipped candidate is not built when its ranges are aeq's."""
    kinds, references = activation_statistics(prepared, samples)
    ranks = tensor_ranks(prepared)
    baseline = run(_qsvs(kinds[AVERAGED], ranks))
    base_errors = output_errors(baseline, samples, references)
    if kinds[CLIPPED] == kinds[AVERAGED]:
        return baseline, AVERAGED, base_errors, None
    clipped = run(_qsvs(kinds[CLIPPED], ranks))
    clipped_errors = output_errors(clipped, samples, references)
    if _accepted(clipped_errors, base_errors):
        return clipped, CLIPPED, clipped_errors, (AVERAGED, base_errors)
    winners = {name for name in base_errors
               if better_everywhere({name: clipped_errors[name]}, {name: base_errors[name]})}
    if winners:
        reaches = output_branches(prepared)
        ranges = {name: kinds[CLIPPED][name] if len(reaches.get(name, ())) == 1 and reaches[name] <= winners else value
                  for name, value in kinds[AVERAGED].items()}
        if ranges != kinds[AVERAGED]:
            mixed = run(_qsvs(ranges, ranks))
            mixed_errors = output_errors(mixed, samples, references)
            if _accepted(mixed_errors, base_errors):
                label = f"{AVERAGED} with the {CLIPPED} on the tensors reaching only {', '.join(sorted(winners))}"
                return mixed, label, mixed_errors, (AVERAGED, base_errors)
    return baseline, AVERAGED, base_errors, (CLIPPED, clipped_errors)


def with_float_edges(data: bytes) -> bytes:
    """``data`` whose integer (quantized) inputs and outputs of the main subgraph take and give float
    values: a QUANTIZE from a new float input, a DEQUANTIZE to a new float output, the SignatureDef
    pointing at the new tensors (which take the old ones' names; the integer tensors get ``_int``)."""
    from tensorflow.lite.python import schema_py_generated as schema

    model = unpacked(data)

    inline_buffers(model, data)
    sg = model.subgraphs[0]
    integer = (schema.TensorType.INT8, schema.TensorType.UINT8, schema.TensorType.INT16)

    def opcode(builtin) -> int:
        return opcode_index(model, builtin, schema)

    def float_twin(index: int) -> int:
        old = sg.tensors[index]
        twin = schema.TensorT()
        twin.name, twin.shape, twin.type, twin.buffer = old.name, old.shape, schema.TensorType.FLOAT32, 0
        twin.shapeSignature = old.shapeSignature
        old.name = (old.name.decode() if isinstance(old.name, bytes) else old.name) + "_int"
        sg.tensors.append(twin)
        return len(sg.tensors) - 1

    def op(code: int, source: int, target: int):
        operator = schema.OperatorT()
        operator.opcodeIndex, operator.inputs, operator.outputs = code, [source], [target]
        return operator

    sg.inputs, sg.outputs = [int(i) for i in sg.inputs], [int(i) for i in sg.outputs]
    renamed: dict[int, int] = {}
    head, tail = [], []
    for position, index in enumerate(list(sg.inputs)):
        if sg.tensors[index].type in integer and sg.tensors[index].quantization is not None:
            renamed[index] = float_twin(index)
            head.append(op(opcode(schema.BuiltinOperator.QUANTIZE), renamed[index], index))
            sg.inputs[position] = renamed[index]
    for position, index in enumerate(list(sg.outputs)):
        if sg.tensors[index].type in integer and sg.tensors[index].quantization is not None:
            renamed[index] = float_twin(index)
            tail.append(op(opcode(schema.BuiltinOperator.DEQUANTIZE), index, renamed[index]))
            sg.outputs[position] = renamed[index]
    if not renamed:
        return data
    sg.operators = head + list(sg.operators) + tail
    for signature in model.signatureDefs or []:
        if signature.subgraphIndex == 0:
            for entry in (signature.inputs or []) + (signature.outputs or []):
                entry.tensorIndex = renamed.get(int(entry.tensorIndex), int(entry.tensorIndex))
    return packed(model, 2 * len(data))
