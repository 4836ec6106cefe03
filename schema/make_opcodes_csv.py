"""Regenerate ``schema/opcodes.csv`` from the newest generated schema this machine has.

The newest schema readers installed here are TensorFlow's own
(``tensorflow/lite/python/schema_py_generated.py``), which are newer than the ``tflite``
package the reader uses at run time. Opcode numbers and names are read from it; the options
table of each opcode is matched by name (with the exceptions the schema itself documents,
such as the pooling ops sharing ``Pool2DOptions``).

    python schema/make_opcodes_csv.py > schema/opcodes.csv
"""

from __future__ import annotations

import csv
import importlib.util
import re
import sys
from pathlib import Path

SHARED_OPTIONS = {
    "AVERAGE_POOL_2D": "Pool2DOptions", "MAX_POOL_2D": "Pool2DOptions", "L2_POOL_2D": "Pool2DOptions",
    "MAXIMUM": "MaximumMinimumOptions", "MINIMUM": "MaximumMinimumOptions",
    "MEAN": "ReducerOptions", "SUM": "ReducerOptions", "REDUCE_MAX": "ReducerOptions", "REDUCE_MIN": "ReducerOptions",
    "REDUCE_PROD": "ReducerOptions", "REDUCE_ANY": "ReducerOptions", "REDUCE_ALL": "ReducerOptions",
    "L2_NORMALIZATION": "L2NormOptions", "LOCAL_RESPONSE_NORMALIZATION": "LocalResponseNormalizationOptions",
    "UNIDIRECTIONAL_SEQUENCE_RNN": "SequenceRNNOptions", "LSTM": "LSTMOptions",
    "RANDOM_UNIFORM": "RandomOptions", "RANDOM_STANDARD_NORMAL": "RandomOptions", "MULTINOMIAL": "RandomOptions",
    "TOPK_V2": "TopKV2Options", "RFFT2D": "Rfft2dOptions", "ATAN2": "ATan2Options",
    "STABLEHLO_COMPOSITE": "StableHLOCompositeOptions", "CONV_3D": "Conv3DOptions", "CONV_3D_TRANSPOSE": "Conv3DOptions",
}


def newest_schema():
    origin = importlib.util.find_spec("tensorflow").submodule_search_locations[0]  # located, not imported
    path = Path(origin) / "lite" / "python" / "schema_py_generated.py"
    spec = importlib.util.spec_from_file_location("schema_py_generated", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def main() -> None:
    schema = newest_schema()
    ops = sorted((v, k) for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_"))
    tables = {_key(k[: -len("Options")]): k for k in vars(schema.BuiltinOptions) if k.endswith("Options")}
    tables.update({_key(k[: -len("Options")]): f"{k} (builtin_options_2)"
                   for k in vars(schema.BuiltinOptions2) if k.endswith("Options")})
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["code", "name", "options"])
    for code, name in ops:
        options = SHARED_OPTIONS.get(name) or tables.get(_key(name), "")
        writer.writerow([code, name, options])


if __name__ == "__main__":
    main()
