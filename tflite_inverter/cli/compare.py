"""``tflite-inverter compare``: two .tflite models on the same inputs."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import (EXIT_OK, _add_input_options, _add_report_option, _data_source, _image_normalization, _input_model,
                     _output_file, _Progress, _prepare, _report_location, _write_report)


def add_parser(command) -> None:
    """The ``compare`` subcommand's options."""
    compare = command("compare", "compare two .tflite models on the same inputs",
                      "Run A and B on the same real-valued inputs; per output, the error in real units and "
                      "quantization steps, and top-1 agreement (meaningful with --data only).",
                      ("tflite-inverter compare float.tflite int8.tflite --data images/ --mean 127.5 --std 127.5",
                       "tflite-inverter compare float.tflite int8.tflite --per-tensor --json report.json"))
    compare.add_argument("a", help="the reference .tflite")
    compare.add_argument("b", help="the .tflite to compare with it")
    _add_input_options(compare)
    compare.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    _add_report_option(compare)
    compare.add_argument("--per-tensor", action="store_true",
                         help="also compare the intermediate tensors both models share by name, largest error first")


def check_compare(args: argparse.Namespace) -> None:
    _input_model(args.a, "A")
    _input_model(args.b, "B")
    _output_file(args.json, "--json", None)
    _data_source(args)
    _report_location(args)


def cmd_compare(args: argparse.Namespace) -> int:
    _prepare(args, check_compare, tensorflow=True)
    from .. import compare, load
    from ..quant.representative import make_samples

    inputs = None
    if args.data:
        model_a = load(args.a)
        sg = model_a.main
        specs = [(sg.tensors[i].name, [None if d < 0 else d for d in sg.tensors[i].shape_signature]) for i in sg.inputs]
        mean, std = _image_normalization(args, model_a if model_a.tflite_metadata is not None else load(args.b))
        inputs = make_samples(args.data, specs, mean=mean, std=std, limit=args.limit)
    with _Progress().step(f"comparing {args.b} with {args.a}"):
        report = compare(args.a, args.b, inputs=inputs, draws=args.draws, seed=args.seed, per_tensor=args.per_tensor)
    print(report.table())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    _write_report(args, f"tflite-inverter compare {args.a} {args.b}", [report])
    return EXIT_OK
