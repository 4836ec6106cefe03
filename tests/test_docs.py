"""Generated documents and tables stay in step with the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tflite_inverter.ops.table import render_ops_table

ROOT = Path(__file__).resolve().parents[1]


def test_ops_table_is_current():
    expected = render_ops_table()
    actual = (ROOT / "docs" / "ops.md").read_text()
    assert actual == expected, "docs/ops.md is stale: run `python -m tflite_inverter.ops.table > docs/ops.md`"


def test_schema_opcode_table_matches_readers():
    done = subprocess.run([sys.executable, str(ROOT / "schema" / "check_opcodes.py")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_registered_builtin_is_a_schema_opcode():
    from tflite_inverter import supported_ops
    from tflite_inverter.reader.opcodes import OPCODE_NAMES

    names = set(OPCODE_NAMES.values())
    unknown = [s.opcode for s in supported_ops() if not s.opcode.startswith("CUSTOM:") and s.opcode not in names]
    assert not unknown
