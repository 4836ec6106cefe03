"""``tflite-inverter inspect``, ``sample`` and ``ops``: the model summarised, the README's sample
model written, the builders listed."""

from __future__ import annotations

import argparse

from .common import EXIT_OK, _input_model, _output_file, _prepare


def add_inspect_parser(command) -> None:
    """The ``inspect`` subcommand's options."""
    inspect = command("inspect", "summarise a .tflite: inputs, outputs, quantization, ops, tensors",
                      "Print a summary of MODEL (no TensorFlow needed).",
                      ("tflite-inverter inspect model.tflite", "tflite-inverter inspect model.tflite --tensors",
                       "tflite-inverter inspect model.tflite --check"))
    inspect.add_argument("model", help="the .tflite file")
    inspect.add_argument("--check", action="store_true", help="also report ops no builder supports (exit 2 if any)")
    inspect.add_argument("--tensors", action="store_true",
                         help="list every tensor: name, shape, dtype, quantization, producing operator")


def add_sample_parser(command) -> None:
    """The ``sample`` subcommand's options."""
    sample = command("sample", "write the small sample model used in the README",
                     "Write a small float CNN made with the TFLite converter to PATH.",
                     ("tflite-inverter sample", "tflite-inverter sample /tmp/sample.tflite --overwrite"))
    sample.add_argument("path", nargs="?", default="sample.tflite", help="where to write it (default sample.tflite)")
    sample.add_argument("--overwrite", action="store_true", help="replace PATH if it exists")


def add_ops_parser(command) -> None:
    """The ``ops`` subcommand (no options)."""
    command("ops", "list the supported TFLite opcodes", "List every registered builder.", ("tflite-inverter ops",))


def check_inspect(args: argparse.Namespace):
    return _input_model(args.model)


def check_sample(args: argparse.Namespace) -> None:
    _output_file(args.path, "PATH", args.overwrite)


def cmd_inspect(args: argparse.Namespace) -> int:
    model = _prepare(args, check_inspect, tensorflow=bool(args.check))
    print(model.summary())
    if args.tensors:
        for index in range(len(model.subgraphs)):
            print(model.tensors(index).table())
    if args.check:
        from ..build.supported import check_supported
        from ..passes.validate import validate

        validate(model)
        check_supported(model)
        print("every operator has a builder")
    return EXIT_OK


def cmd_sample(args: argparse.Namespace) -> int:
    _prepare(args, check_sample, tensorflow=True)
    from ..sample import write_sample_model

    print(write_sample_model(args.path, overwrite=args.overwrite))
    return EXIT_OK


def cmd_ops(args: argparse.Namespace) -> int:
    _prepare(args, None, tensorflow=True)
    from .. import supported_ops

    for spec in supported_ops():
        print(f"{spec.opcode:40} v{spec.max_version}")
    return EXIT_OK
