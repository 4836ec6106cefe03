"""Measuring an inverted model against the reference interpreter on the same inputs.

The original ``.tflite`` runs in LiteRT in a subprocess (it can crash on some models), once
with its default kernels and once with its reference kernels (``BUILTIN_REF``): how far those
two disagree is the output's *noise floor*. The candidate (an :class:`InvertedModel`, a
SavedModel, a frozen ``.pb`` with its JSON sidecar, or another ``.tflite``) runs on the same
seeded inputs. A float output passes when::

    max_abs_error <= max(rtol * max(1, max|reference|), 2 * noise_floor)

An integer output with quantization parameters passes within one quantization step (or twice
its noise floor, in steps).

A stateful model (variable tensors that its LSTM, RNN or SVDF kernels write back) is run twice:
each draw from reset state (a fresh interpreter; the candidate reset before each draw), and the
draws as one sequence of calls to one interpreter against one candidate reset once before the
first. Its outputs are reported for both, and it passes only if both match.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import ir
from ..display import did_you_mean
from ..errors import TfliteInverterError, VerificationError
from ..logs import progress
from ..reader import load
from .candidates import _candidate_runner
from .per_tensor import _verify_tensors
from .reference_kernels import _run_reference_with_fallbacks
from .runner import make_inputs, run_reference
from .tolerance import DEFAULT_RTOL, compare_output, quantization_step
from .verify_report import OutputReport, TensorReport, VerifyReport  # noqa: F401  (importable from here, as before)
from .verify_segments import _verify_by_segments


def _has_state(model: ir.Model, info: Any) -> bool:
    """Whether the signature's subgraph (its operators, if cut) has variable tensors its kernels write."""
    if not any(t.is_variable for t in model.subgraphs[info.subgraph_index].tensors):
        return False  # (the registry, which knows what each kernel writes, imports TensorFlow)
    from ..build.state import state_tensors

    return any(state.subgraph == info.subgraph_index and (info.operators is None or state.operator in info.operators)
               for state in state_tensors(model).values())


def _ordered_draw(draw: Any, info: Any, raw_signature: ir.Signature | None) -> list[np.ndarray]:
    """One draw of inputs as a list in the signature's order; a mapping may use the signature's
    input names (``x``), their Python-identifier form, or the input tensors' names."""
    if not isinstance(draw, Mapping):
        return [np.asarray(v) for v in draw]
    from ..names import python_identifier

    raw_names = list(raw_signature.inputs) if raw_signature else [None] * len(info.input_names)
    ordered = []
    for raw, name in zip(raw_names, info.input_names):
        for candidate in (raw, name, python_identifier(name)):
            if candidate is not None and candidate in draw:
                ordered.append(np.asarray(draw[candidate]))
                break
        else:
            raise VerificationError(f"inputs lack {raw or name!r} (given {sorted(draw)})")
    return ordered


def _tflite_io(model: ir.Model, key: str, n_inputs: int, n_outputs: int) -> dict:
    """Inputs and outputs of another ``.tflite`` to compare: the same signature key if it has
    one, otherwise its main subgraph's inputs and outputs in order."""
    for sig in model.signatures:
        if sig.key == key:
            return dict(input_names=list(sig.inputs), input_tensors=list(sig.inputs.values()),
                        output_names=list(sig.outputs), output_tensors=list(sig.outputs.values()), signature=key)
    sg = model.main
    if len(sg.inputs) != n_inputs or len(sg.outputs) != n_outputs:
        raise VerificationError(f"{model.source}: has {len(sg.inputs)} inputs and {len(sg.outputs)} outputs, "
                                f"the original {n_inputs} and {n_outputs}")
    return dict(input_names=[sg.tensors[i].name for i in sg.inputs], input_tensors=list(sg.inputs),
                output_names=[sg.tensors[i].name for i in sg.outputs], output_tensors=list(sg.outputs), signature=None)


def verify(tflite_model: str | os.PathLike | bytes, candidate: Any, *, signature: str | None = None, draws: int = 3,
           seed: int = 0, inputs: Sequence[Sequence[np.ndarray]] | None = None, rtol: float = DEFAULT_RTOL,
           noise_floor: bool = True, float_range: tuple[float, float] = (-1.0, 1.0), timeout: float = 900,
           per_tensor: bool = False, segments: bool | None = None, inversion: Any = None, sequence: bool | None = None,
           _cut_applied: bool = False) -> VerifyReport:
    """Run ``tflite_model`` in LiteRT and ``candidate`` on the same inputs; report per-output errors.

    ``candidate`` is an :class:`InvertedModel`, a SavedModel directory, a frozen ``.pb`` (with its
    ``.json`` sidecar) or another ``.tflite`` file. ``inputs`` (a list of draws, each a mapping from
    input name to array, or a list of arrays in the signature's order, which for converter-made
    models is alphabetical) replaces the seeded random inputs.

    ``signature``: the key to verify. ``None``: every signature of a model that has several (each on
    its own seeded inputs; rows named ``"<signature>: <output>"``, each part in ``by_signature``), or
    with ``inputs``, ``serving_default`` or the first.

    ``segments``: when LiteRT cannot run the model (custom ops it does not know, Flex ops), the model
    is cut at its custom operators and the builtin part is verified in LiteRT, fed at the cuts with
    the inverted model's own values (``None``: only when needed; ``True``: always). Custom ops are
    then verified by their own tests against their documented semantics; the notes say so. A
    SavedModel or frozen ``.pb`` candidate is then also run on the same inputs and compared with the
    in-memory inversion (``inversion``, the :class:`InvertedModel` it was written from, or a fresh
    one), so what is on disk is always run.

    ``per_tensor=True`` also compares every intermediate tensor with LiteRT's (all tensors preserved,
    builtin kernels without delegates) and names the first operator whose output diverges
    (``report.first_divergence``); the candidate is then inverted in process if it is not already.

    ``sequence``: also run the draws as one sequence of calls (LiteRT's interpreter and the
    candidate keeping their state from call to call); ``None`` (default): when the model has
    state; ``False``: not, and the notes say so.
    """
    from ..build.signatures import model_signatures

    with tempfile.TemporaryDirectory(prefix="tflite_inverter_verify_") as work:
        if isinstance(tflite_model, (bytes, bytearray)):
            model_path = os.path.join(work, "model.tflite")
            Path(model_path).write_bytes(bytes(tflite_model))
        else:
            model_path = str(tflite_model)
        model = load(model_path)
        cut = getattr(candidate, "cut", None)
        if cut and not _cut_applied:
            # A cut inversion is verified against the same cut of the .tflite.
            from .segments import cut_model

            (info,) = candidate.signatures.values()
            data = cut_model(Path(model_path).read_bytes(), info.input_tensors, info.output_tensors, info.operators)
            report = verify(data, candidate, signature=signature, draws=draws, seed=seed, inputs=inputs, rtol=rtol,
                            noise_floor=noise_floor, float_range=float_range, timeout=timeout, per_tensor=per_tensor,
                            segments=segments, sequence=sequence, _cut_applied=True)
            report.model = f"{tflite_model if not isinstance(tflite_model, bytes) else '<bytes>'} (cut: {len(info.operators)} operators)"
            return report
        infos = {s.key: s for s in model_signatures(model)}
        if signature is None and inputs is None and len(infos) > 1:
            # Every signature on its own seeded inputs (an LLM's prefill and decode share weights but
            # not their inputs), one report.
            parts = {k: verify(model_path, candidate, signature=k, draws=draws, seed=seed, rtol=rtol,
                               noise_floor=noise_floor, float_range=float_range, timeout=timeout, per_tensor=per_tensor,
                               segments=segments, inversion=inversion, sequence=sequence, _cut_applied=_cut_applied)
                     for k in infos}
            return _merged_report(parts, str(tflite_model) if not isinstance(tflite_model, bytes) else "<bytes>")
        key = signature or ("serving_default" if "serving_default" in infos else next(iter(infos)))
        if key not in infos:
            raise TfliteInverterError(f"{model_path}: no signature {key!r}{did_you_mean(key, infos)}; it has {sorted(infos)}")
        info = infos[key]
        sg = model.subgraphs[info.subgraph_index]
        input_tensors = [sg.tensors[i] for i in info.input_tensors]
        raw_signature = model.signatures[[s.key for s in model.signatures].index(key)] if model.signatures else None
        output_tensors = [sg.tensors[i] for i in info.output_tensors]
        if inputs is not None:
            draw_inputs = [_ordered_draw(draw, info, raw_signature) for draw in inputs]
        else:
            draw_inputs = make_inputs(input_tensors, draws, seed, float_range)
        ref_kwargs = dict(
            input_names=list(raw_signature.inputs) if raw_signature else [t.name for t in input_tensors],
            input_tensors=info.input_tensors,
            output_names=list(raw_signature.outputs) if raw_signature else [t.name for t in output_tensors],
            output_tensors=info.output_tensors,
            signature=key if raw_signature else None,
            timeout=timeout,
        )
        notes: list[str] = []
        stateful = _has_state(model, info)
        check_sequence = stateful if sequence is None else sequence
        if check_sequence:
            ref_kwargs["sequence"] = True  # the same LiteRT run also gives the calls in sequence
        customs = [op for op in sg.operators if op.is_custom]
        if segments is None and customs and info.subgraph_index == 0:
            try:
                reference, primary, noise_floor = _run_reference_with_fallbacks(
                    model_path, draw_inputs, ref_kwargs, noise_floor, notes, model)
            except VerificationError as error:
                segments = True
                notes.append(f"note: LiteRT cannot run the whole model ({str(error).split(': ', 1)[-1][:300]}); "
                             "verified in segments")
        if segments:
            if stateful:
                notes.append("note: the model keeps state across calls; in segments only independent draws are compared")
            return _verify_by_segments(model_path, model, info, candidate, draw_inputs, rtol, noise_floor, notes, timeout,
                                       inversion,
                                       str(tflite_model) if not isinstance(tflite_model, bytes) else "<bytes>")
        if not (customs and info.subgraph_index == 0 and segments is not None):
            reference, primary, noise_floor = _run_reference_with_fallbacks(
                model_path, draw_inputs, ref_kwargs, noise_floor, notes, model)

        if stateful and not check_sequence:
            notes.append("note: the model keeps state across calls; calls in sequence were not compared (sequence=False)")
        if not isinstance(candidate, (str, os.PathLike)) or not str(candidate).endswith(".tflite"):
            label, runner, reset = _candidate_runner(candidate, model, info)

            def run_candidate(in_sequence: bool) -> list[list[np.ndarray]]:
                outputs = []
                for d, values in enumerate(progress(draw_inputs, description="verifying", unit="draw")):
                    if reset is not None and (d == 0 or not in_sequence):
                        reset()
                    outputs.append(runner(values))
                return outputs
        else:
            label = f"TFLite model {candidate}"
            other_io = _tflite_io(load(str(candidate)), key, len(input_tensors), len(output_tensors))

            def run_candidate(in_sequence: bool) -> list[list[np.ndarray]]:
                other = run_reference(str(candidate), draw_inputs, resolvers=("default",), timeout=timeout,
                                      sequence=in_sequence, **other_io)
                return [[other[f"default/{d}/out/{i}"] for i in range(len(output_tensors))] for d in range(len(draw_inputs))]
        candidate_outputs = run_candidate(False)

        report = VerifyReport(model=str(tflite_model) if not isinstance(tflite_model, bytes) else "<bytes>",
                              candidate=label, signature=key, draws=len(draw_inputs), notes=notes)
        for i, (name, tensor) in enumerate(zip(info.output_names, output_tensors)):
            ref = [reference[f"{primary}/{d}/out/{i}"] for d in range(len(draw_inputs))]
            floor = [reference[f"reference/{d}/out/{i}"] for d in range(len(draw_inputs))] if noise_floor else None
            got = [candidate_outputs[d][i] for d in range(len(draw_inputs))]
            step = quantization_step(sg, info.output_tensors[i])
            report.outputs.append(compare_output(name, tensor, ref, got, floor, rtol, step))
        if check_sequence:
            sequence_outputs = run_candidate(True)
            for i, (name, tensor) in enumerate(zip(info.output_names, output_tensors)):
                ref = [reference[f"sequence/{primary}/{d}/out/{i}"] for d in range(len(draw_inputs))]
                floor = [reference[f"sequence/reference/{d}/out/{i}"] for d in range(len(draw_inputs))] if noise_floor else None
                got = [sequence_outputs[d][i] for d in range(len(draw_inputs))]
                step = quantization_step(sg, info.output_tensors[i])
                report.outputs.append(compare_output(f"{name} (calls in sequence)", tensor, ref, got, floor, rtol, step))
            notes.append(f"state: {len(draw_inputs)} draws compared from reset state and as one sequence of "
                         f"{len(draw_inputs)} calls (state carried over)")
        if per_tensor:
            report.tensors = _verify_tensors(model_path, model, info, candidate, draw_inputs, ref_kwargs, rtol, notes)
    return report


def _merged_report(parts: Mapping[str, VerifyReport], label_model: str) -> VerifyReport:
    """One report of several signatures' reports: rows and notes prefixed with the signature key."""
    first = next(iter(parts.values()))
    merged = VerifyReport(model=label_model, candidate=first.candidate, signature=", ".join(parts), draws=first.draws,
                          by_signature=dict(parts))
    for key, part in parts.items():
        merged.outputs.extend(replace(o, name=f"{key}: {o.name}") for o in part.outputs)
        merged.notes.extend(f"{key}: {note}" for note in part.notes)
        merged.tensors.extend(replace(t, tensor=f"{key}: {t.tensor}") for t in part.tensors)
    return merged
