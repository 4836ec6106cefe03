"""The ``tflite-inverter`` command: a thin layer over the Python API, one module per subcommand.

Errors the user can act on print as one line and exit 2; a failed verification exits 1. Progress
lines go to stderr when it is a terminal, or with ``-v``; TensorFlow's and absl's warnings are silenced.
Each subcommand checks its arguments, paths and output locations before TensorFlow is imported.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from ..errors import TfliteInverterError
from . import batch, compare, convert, inspect, requantize, verify
from .common import (EXIT_ERROR, EXIT_OK, EXIT_VERIFY_FAILED, _FORMATTER, _add_common_options, _examples, _Parser,
                     _speaking_cli_terms, in_cli_terms, parse_input_shapes)
from .common import _verify_inputs  # noqa: F401  (tests feed it --data directly)

__all__ = ["EXIT_ERROR", "EXIT_OK", "EXIT_VERIFY_FAILED", "build_parser", "in_cli_terms", "main",
           "parse_input_shapes"]


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="tflite-inverter", formatter_class=_FORMATTER,
        description="Turn a .tflite model back into TensorFlow (SavedModel, frozen .pb) and check it against LiteRT.",
        epilog=_examples(
            "tflite-inverter inspect model.tflite --tensors",
            "tflite-inverter convert model.tflite -o out --pb --verify",
            "tflite-inverter verify model.tflite out/saved_model --data images/ --mean 127.5 --std 127.5",
            "tflite-inverter requantize model.tflite -o model_int8.tflite --mode int8 --data images/",
            "tflite-inverter requantize model_int8.tflite -o model_u8.tflite --mode uint8_throughout",
            "tflite-inverter compare model.tflite model_int8.tflite --data images/"),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _add_common_options(parser, top_level=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    def command(name: str, help: str, description: str, examples: tuple[str, ...]) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=description, formatter_class=_FORMATTER,
                                  epilog=_examples(*examples))
        _add_common_options(sub)
        return sub

    convert.add_parser(command)
    verify.add_parser(command)
    inspect.add_inspect_parser(command)
    inspect.add_sample_parser(command)
    requantize.add_parser(command)
    compare.add_parser(command)
    inspect.add_ops_parser(command)
    batch.add_parser(command)
    return parser


COMMANDS = {name: _speaking_cli_terms(command) for name, command in {
    "convert": convert.cmd_convert, "verify": verify.cmd_verify, "inspect": inspect.cmd_inspect,
    "sample": inspect.cmd_sample, "ops": inspect.cmd_ops, "requantize": requantize.cmd_requantize,
    "compare": compare.cmd_compare, "batch": batch.cmd_batch}.items()}


def _one_line(text: str) -> str:
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # The library's warnings (an op version above the tested one) as one line each, without source lines.
    warnings.formatwarning = lambda message, category, *rest, **kw: f"tflite-inverter: warning: {message}\n"
    try:  # each command checks its arguments before TensorFlow is imported (_prepare)
        return COMMANDS[args.command](args)
    except TfliteInverterError as exc:
        print(f"tflite-inverter {args.command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # the reader of a pipe left (`| head`): stop writing, quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # the final flush must not fail again
        return EXIT_OK
    except Exception as exc:  # a bug: still one line (the traceback with -v)
        if args.verbose:
            raise
        print(f"tflite-inverter {args.command}: internal error (a bug; -v shows the traceback): "
              f"{type(exc).__name__}: {_one_line(str(exc))[:500]}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("tflite-inverter: interrupted", file=sys.stderr)
        return 130


def run() -> None:
    """The process entry of ``tflite-inverter`` and ``python -m tflite_inverter``: :func:`main`, then the
    exit. Once TensorFlow is imported, the interpreter's own shutdown (finalising ~300,000 objects and
    TensorFlow's C++ state) takes 0.8-1.3 s on the 2-core machine, after all output is written. So the
    process runs what is registered with ``atexit`` (logging, multiprocessing, ``weakref.finalize``),
    flushes its streams and leaves with ``os._exit``. In-process callers of :func:`main` (tests,
    notebooks) never reach this."""
    code = main()
    if "tensorflow" not in sys.modules:  # inspect, ops, argument errors: a normal exit is quick
        sys.exit(code)
    import atexit
    import os

    try:
        atexit._run_exitfuncs()  # noqa: SLF001  (the handlers a normal exit would run)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more can reach it
                pass
        os._exit(code)
