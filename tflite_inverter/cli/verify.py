"""``tflite-inverter verify``: compare a .tflite with a SavedModel, frozen .pb or another .tflite."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import TfliteInverterError
from .common import (EXIT_OK, EXIT_VERIFY_FAILED, _add_report_option, _add_verify_options, _data_source, _input_model,
                     _output_file, _Progress, _prepare, _report_location, _verify_kwargs, _write_report)


def add_parser(command) -> None:
    """The ``verify`` subcommand's options."""
    verify = command("verify", "compare a .tflite with a SavedModel, frozen .pb or another .tflite",
                     "Run MODEL in LiteRT and CANDIDATE on the same inputs (seeded random ones, or --data); "
                     "exit 1 above tolerance.",
                     ("tflite-inverter verify model.tflite out/saved_model",
                      "tflite-inverter verify model.tflite out/model.pb --per-tensor",
                      "tflite-inverter verify model.tflite out/model.pb --per-tensor --model-explorer errors.json",
                      "tflite-inverter verify model.tflite out/saved_model --data images/ --mean 127.5 --std 127.5"))
    verify.add_argument("model", help="the original .tflite file")
    verify.add_argument("candidate", help="SavedModel directory, frozen .pb (with its .json sidecar) or .tflite")
    verify.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    _add_report_option(verify)
    verify.add_argument("--per-tensor", action="store_true",
                        help="also compare every intermediate tensor and name the first operator that diverges")
    verify.add_argument("--model-explorer", metavar="FILE",
                        help="with --per-tensor: write the per-operator error as node data for Google's Model "
                             "Explorer (JSON; load MODEL, then FILE as node data)")
    _add_verify_options(verify)


def check_verify(args: argparse.Namespace):
    from ..build.signatures import model_signatures
    from ..display import did_you_mean

    model = _input_model(args.model)
    candidate = Path(args.candidate)
    if not candidate.exists():
        raise TfliteInverterError(f"CANDIDATE {candidate}: no such file or directory")
    if candidate.is_dir():
        if not (candidate / "saved_model.pb").exists():
            raise TfliteInverterError(f"CANDIDATE {candidate}: a directory without saved_model.pb, so not a SavedModel")
    elif candidate.suffix == ".pb":
        if not candidate.with_suffix(".json").exists():
            raise TfliteInverterError(f"CANDIDATE {candidate}: its sidecar {candidate.with_suffix('.json').name} "
                                      "(input and output node names, written by convert --pb) is missing")
    elif candidate.suffix == ".tflite":
        _input_model(str(candidate), "CANDIDATE")
    else:
        raise TfliteInverterError(f"CANDIDATE {candidate}: not a SavedModel directory, a .pb or a .tflite file")
    if args.signature is not None:
        keys = [info.key for info in model_signatures(model)]
        if args.signature not in keys:
            raise TfliteInverterError(f"--signature {args.signature}: the model has no such signature"
                                      f"{did_you_mean(args.signature, keys)}; it has {keys}")
    _output_file(args.json, "--json", None)
    if args.model_explorer is not None:
        if not args.per_tensor:
            raise TfliteInverterError("--model-explorer shows the per-tensor comparison: add --per-tensor")
        if Path(args.model_explorer).suffix.lower() != ".json":
            raise TfliteInverterError(f"--model-explorer {args.model_explorer}: the node data is JSON; name it NAME.json")
        _output_file(args.model_explorer, "--model-explorer", None)
    _data_source(args)
    _report_location(args)
    return model


def cmd_verify(args: argparse.Namespace) -> int:
    model = _prepare(args, check_verify, tensorflow=True)
    from .. import verify

    with _Progress().step(f"verifying {args.candidate} against {args.model}"):
        report = verify(args.model, args.candidate, per_tensor=args.per_tensor, **_verify_kwargs(args, model))
    print(report.table())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if args.model_explorer:
        print(f"wrote {report.to_model_explorer(args.model_explorer, model)} (Model Explorer node data)", file=sys.stderr)
    _write_report(args, f"tflite-inverter verify {args.model} {args.candidate}", [report])
    return EXIT_OK if report.passed else EXIT_VERIFY_FAILED
