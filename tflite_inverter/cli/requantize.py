"""``tflite-inverter requantize``: re-quantize a .tflite or a SavedModel."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import TfliteInverterError
from ..quant.request import AEQ_INTEGER_IO, BACKENDS, EDGE_QUANTIZER_MODES, MODES
from .common import (EXIT_OK, _add_report_option, _data_source, _input_model, _output_file, _Progress, _prepare,
                     _report_location, _scalar_or_list, _write_report)


def add_parser(command) -> None:
    """The ``requantize`` subcommand's options."""
    requantize = command(
        "requantize", "re-quantize a .tflite or SavedModel (float16, dynamic_range, int8, uint8, int16x8, uint8_throughout)",
        "Write a re-quantized .tflite from SOURCE (a .tflite, inverted first, or a SavedModel) and report "
        "its size, ops, ops left in float and its error against the original.",
        ("tflite-inverter requantize model_int8.tflite -o again.tflite --mode uint8",
         "tflite-inverter requantize model.tflite -o int8.tflite --mode int8 --data images/ --mean 127.5 --std 127.5",
         "tflite-inverter requantize model_int8.tflite -o u8.tflite --mode uint8_throughout --data images/"))
    requantize.add_argument("source", help=".tflite file or SavedModel directory")
    requantize.add_argument("-o", "--output", required=True, metavar="FILE", help="the .tflite to write")
    requantize.add_argument("--mode", choices=list(MODES),
                            default="int8", help="the quantization (default int8); uint8_throughout: uint8 activations "
                                                 "everywhere, for NPUs that take only uint8 (through the TF1 converter: "
                                                 "from a quantized .tflite, or from a float one with --data; --mean/--std "
                                                 "are then the input's quantized_input_stats)")
    requantize.add_argument("--data", metavar="PATH",
                            help="calibration data: a folder of images, a .npy ([N, ...]) or a .npz (arrays by input name)")
    requantize.add_argument("--mean", type=float, nargs="+",
                            help="image normalisation: (pixel - mean) / std, one value or one per channel "
                                 "(default: the model's TFLite metadata, else 0)")
    requantize.add_argument("--std", type=float, nargs="+",
                            help="the std of the image normalisation (default: the model's TFLite metadata, else 1)")
    requantize.add_argument("--limit", type=int, metavar="N", help="use at most N calibration samples")
    requantize.add_argument("--default-ranges", type=float, nargs=2, metavar=("MIN", "MAX"),
                            help="uint8_throughout: the range of tensors that get none (default_ranges_stats)")
    requantize.add_argument("--io-dtype", choices=["float", "int8", "uint8", "int16"], help="input/output type (default by mode)")
    requantize.add_argument("--per-tensor", action="store_true",
                            help="one scale per weight tensor (no per-channel); a .tflite source is then equalized "
                                 "across layers and bias-corrected first, which needs --data")
    requantize.add_argument("--no-equalize", action="store_true",
                            help="skip cross-layer equalization and bias correction (done by default with --per-tensor, "
                                 "and for uint8_throughout of a per-channel model given --data)")
    requantize.add_argument("--keep-float-op", action="append", default=[], metavar="OPCODE",
                            help="leave every op of this type in float (repeatable)")
    requantize.add_argument("--keep-float-node", action="append", default=[], metavar="TENSOR",
                            help="leave the op producing this tensor in float (repeatable)")
    requantize.add_argument("--quantized", choices=["fake_quant", "dequantize"], default="fake_quant",
                            help="how a quantized .tflite source is inverted first (fake_quant: its own grids, no data needed)")
    requantize.add_argument("--backend", choices=list(BACKENDS), default="auto",
                            help="aeq: ai-edge-quantizer on this project's calibration; tflite: the TFLite converter; "
                                 "auto (default): aeq where it has the mode's recipe and quantizes every op of a float "
                                 "model, else tflite (docs/quantization.md)")
    requantize.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
    _add_report_option(requantize)


def check_requantize(args: argparse.Namespace) -> None:
    source = Path(args.source)
    if not source.exists():
        raise TfliteInverterError(f"SOURCE {source}: no such file or directory")
    model = None
    if source.is_dir():
        if not (source / "saved_model.pb").exists():
            raise TfliteInverterError(f"SOURCE {source}: a directory without saved_model.pb, so not a SavedModel")
    else:
        model = _input_model(str(source), "SOURCE")
    _output_file(args.output, "-o/--output", args.overwrite)
    if Path(args.output).suffix != ".tflite":
        raise TfliteInverterError(f"-o/--output {args.output}: the output is a .tflite file; name it NAME.tflite")
    _data_source(args)
    _report_location(args)
    if (args.keep_float_op or args.keep_float_node) and args.data is None:
        raise TfliteInverterError("--keep-float-op / --keep-float-node need calibration data: give --data")
    if args.backend == "aeq" and args.mode not in (*AEQ_INTEGER_IO, *EDGE_QUANTIZER_MODES):
        raise TfliteInverterError(f"--backend aeq: ai-edge-quantizer has no {args.mode} recipe; use --backend tflite or auto")
    if args.backend == "tflite" and args.mode in EDGE_QUANTIZER_MODES:
        raise TfliteInverterError(f"--backend tflite: the TFLite converter has no {args.mode} recipe; use --backend aeq or auto")
    if model is not None and args.keep_float_node:
        from ..display import did_you_mean

        names = [t.name for t in model.main.tensors]
        for name in args.keep_float_node:
            if name not in names:
                raise TfliteInverterError(f"--keep-float-node {name}: no such tensor{did_you_mean(name, names)}; "
                                          "`tflite-inverter inspect SOURCE --tensors` lists them")
    if model is not None and args.keep_float_op:
        opcodes = sorted(model.op_histogram())
        for opcode in args.keep_float_op:
            if opcode not in opcodes:
                from ..display import did_you_mean

                raise TfliteInverterError(f"--keep-float-op {opcode}: the model has no {opcode} operator"
                                          f"{did_you_mean(opcode, opcodes)}; it has {opcodes}")


def cmd_requantize(args: argparse.Namespace) -> int:
    _prepare(args, check_requantize, tensorflow=True)
    from .. import requantize

    if Path(args.output).is_dir():
        raise TfliteInverterError(f"-o {args.output}: is a directory; give the .tflite file to write")
    equalize = False if args.no_equalize else None
    with _Progress().step(f"converting ({args.mode})"):
        report = requantize(
            args.source, args.output, mode=args.mode, representative=args.data, io_dtype=args.io_dtype,
            per_tensor=args.per_tensor, keep_float_ops=args.keep_float_op, keep_float_nodes=args.keep_float_node,
            mean=_scalar_or_list(args.mean), std=_scalar_or_list(args.std), limit=args.limit,
            reference=args.source if str(args.source).endswith(".tflite") else None, overwrite=args.overwrite,
            equalize=equalize, default_ranges=tuple(args.default_ranges) if args.default_ranges else None,
            backend=args.backend, quantized=args.quantized,
        )
    print(report.table())
    _write_report(args, f"tflite-inverter requantize {args.source} -o {args.output}", [report])
    return EXIT_OK
