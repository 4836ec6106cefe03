"""``tflite-inverter convert``: invert a .tflite into a SavedModel and/or a frozen .pb."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from ..errors import TfliteInverterError
from .common import (EXIT_OK, EXIT_VERIFY_FAILED, _add_report_option, _add_verify_options, _data_source, _input_model,
                     _input_shapes_for, _Progress, _prepare, _report_location, _verify_kwargs, _writable_location,
                     _write_report)


def add_parser(command) -> None:
    """The ``convert`` subcommand's options."""
    convert = command("convert", "invert a .tflite into a SavedModel and/or a frozen .pb",
                      "Invert MODEL into OUTDIR/saved_model (and OUTDIR/model.pb with --pb).",
                      ("tflite-inverter convert model.tflite -o out",
                       "tflite-inverter convert model.tflite -o out --pb --verify --overwrite",
                       "tflite-inverter convert palm.tflite -o out --input-shape input_1:?,192,192,3",
                       "tflite-inverter convert model.tflite -o out --outputs raw_boxes raw_scores"))
    convert.add_argument("model", help="the .tflite file")
    convert.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output directory (made if missing)")
    convert.add_argument("--saved-model", action=argparse.BooleanOptionalAction, default=True,
                         help="write OUTDIR/saved_model (default: yes)")
    convert.add_argument("--pb", action="store_true", help="also write OUTDIR/model.pb and its sidecar model.json")
    convert.add_argument("--verify", action="store_true", help="verify what was written against the reference interpreter")
    convert.add_argument("--overwrite", action="store_true", help="replace existing outputs in OUTDIR")
    _add_report_option(convert)
    convert.add_argument("--strict", action="store_true",
                         help="fail on op versions above those the tests cover, and on shape changes the graph cannot follow")
    convert.add_argument("--quantized", choices=["fake_quant", "dequantize"], default="fake_quant",
                         help="integer models: keep every activation's grid as FakeQuant ops (default) or plain float")
    convert.add_argument("--input-shape", action="append", default=[], metavar="NAME:D0,D1,...",
                         help="fix or change an input's shape, e.g. image:1,256,256,3 (? or -1 for a dynamic dimension)")
    convert.add_argument("--outputs", nargs="+", metavar="TENSOR",
                         help="cut the model: these tensors become the outputs (drop post-processing); "
                              "`inspect --tensors` lists the names")
    convert.add_argument("--inputs", nargs="+", metavar="TENSOR", help="cut the model: start at these tensors")
    convert.add_argument("--passthrough", nargs="*", metavar="CUSTOM_CODE",
                         help="keep custom ops with no builder (all, or those named) as opaque nodes for re-conversion "
                              "with allow_custom_ops; the SavedModel cannot run them")
    convert.add_argument("--io", choices=["native", "float"], default="native",
                         help="quantized inputs/outputs: as the original (uint8 in, uint8 out; default) or real-valued float")
    convert.add_argument("--stateless", action="store_true",
                         help="variable tensors (LSTM/RNN/SVDF states) start from their initial value on every call "
                              "(default: they persist across calls, as in LiteRT); --verify then compares independent calls only")
    _add_verify_options(convert)


def check_convert(args: argparse.Namespace):
    """The model read, the cut and the input shapes matched to it, the outputs free: returns the model."""
    model = _input_model(args.model)
    if not args.saved_model and not args.pb:
        raise TfliteInverterError("nothing to write: --no-saved-model without --pb")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise TfliteInverterError(f"-o/--output {out}: is a file; give a directory (it is made if missing)")
    _writable_location(out / "x", "-o/--output")
    saved_model_path, pb_path = out / "saved_model", out / "model.pb"
    targets = ([saved_model_path] if args.saved_model else []) + ([pb_path, pb_path.with_suffix(".json")] if args.pb else [])
    existing = [str(p) for p in targets if p.exists()]
    if existing and not args.overwrite:
        raise TfliteInverterError(f"{', '.join(existing)} exist(s); pass --overwrite to replace")
    args.input_shapes = _input_shapes_for(model, args.input_shape)
    if args.inputs or args.outputs:
        from ..passes.cut import plan_cut

        plan_cut(model, args.inputs, args.outputs)
    _data_source(args)
    _report_location(args)
    return model


def cmd_convert(args: argparse.Namespace) -> int:
    model = _prepare(args, check_convert, tensorflow=True)
    from .. import verify
    from ..build.inverted import InvertedModel

    out = Path(args.output)
    created = [] if out.exists() else [out]  # removed again if the command fails
    saved_model_path, pb_path = out / "saved_model", out / "model.pb"
    progress = _Progress()
    with progress.step(f"building TensorFlow graph ({sum(len(s.operators) for s in model.subgraphs)} operators)"):
        inverted = InvertedModel(model, strict=args.strict, quantized=args.quantized, io=args.io,
                                 input_shapes=args.input_shapes, inputs=args.inputs,
                                 outputs=args.outputs, passthrough=args.passthrough or args.passthrough == [],
                                 stateless=args.stateless)
    for note in inverted.notes:
        print(note, file=sys.stderr)
    if inverted.passthrough is not None:
        from collections import Counter

        from ..build.passthrough import passthrough_ops

        opaque = Counter(op.custom_code for op in passthrough_ops(model, inverted.passthrough))
        if opaque:
            print("opaque (passthrough): " + ", ".join(f"{code} x{n}" for code, n in sorted(opaque.items())), file=sys.stderr)
        if opaque and args.verify:
            raise TfliteInverterError("--verify cannot run passed-through custom ops: re-convert the pb with "
                                      "allow_custom_ops, then `tflite-inverter verify MODEL AGAIN.tflite` compares the "
                                      "builtin parts (see docs/custom-ops.md)")
    written: list[Path] = []
    try:
        if args.saved_model:
            with progress.step(f"writing {saved_model_path}"):
                written.append(inverted.save_saved_model(saved_model_path, overwrite=args.overwrite))
        if args.pb:
            with progress.step(f"writing {pb_path}"):
                written.append(inverted.save_frozen_pb(pb_path, overwrite=args.overwrite))
                written.append(pb_path.with_suffix(".json"))
    except BaseException:
        for path in written:  # leave nothing half-done behind
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        for path in created:
            shutil.rmtree(path, ignore_errors=True)
        raise
    for path in written:
        print(path)
    status = EXIT_OK
    reports = []
    if args.verify:
        for candidate in [p for p in written if p.suffix != ".json"]:
            with progress.step(f"verifying {candidate}"):
                # A cut model is verified in memory against the same cut of the .tflite.
                # Where LiteRT cannot run the model, the file is compared with this in-memory inversion.
                report = verify(args.model, inverted if inverted.cut else candidate, inversion=inverted,
                                sequence=False if args.stateless else None, **_verify_kwargs(args, model))
            print(report.table())
            reports.append(report)
            if not report.passed:
                status = EXIT_VERIFY_FAILED
    _write_report(args, f"tflite-inverter convert {args.model}", reports)
    return status
