"""Check ``schema/opcodes.csv`` against the installed generated readers and the reader's table.

Every opcode the installed ``tflite`` readers know must have the same number and name in the
CSV; every opcode of the CSV must be named by ``tflite_inverter.reader.opcodes.OPCODE_NAMES``
(the readers' names plus ``NEWER_OPCODES``). Exit status 1 and one line per mismatch otherwise.

    python schema/check_opcodes.py
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import tflite

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's package, not an installed copy
from tflite_inverter.reader.opcodes import OPCODE_NAMES, READER_OPCODES, _enum_names

CSV_PATH = Path(__file__).with_name("opcodes.csv")


def problems() -> list[str]:
    with open(CSV_PATH) as handle:
        table = {int(row["code"]): row["name"] for row in csv.DictReader(handle)}
    found = []
    for code, name in sorted(_enum_names(tflite.BuiltinOperator).items()):
        if table.get(code) != name:
            found.append(f"installed readers: {code} is {name}, opcodes.csv says {table.get(code)}")
    installed = _enum_names(tflite.BuiltinOperator)
    if installed != READER_OPCODES:
        found.append("reader/opcodes.py READER_OPCODES differs from the installed readers' BuiltinOperator: "
                     f"{sorted(set(installed.items()) ^ set(READER_OPCODES.items()))[:5]}")
    for code, name in sorted(table.items()):
        if OPCODE_NAMES.get(code) != name:
            found.append(f"opcodes.csv: {code} is {name}, the reader names it {OPCODE_NAMES.get(code)}")
    return found


if __name__ == "__main__":
    issues = problems()
    for line in issues:
        print(line)
    print(f"{len(issues)} mismatch(es) between schema/opcodes.csv, the installed readers and the reader")
    sys.exit(1 if issues else 0)
