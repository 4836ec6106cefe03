"""The supported-ops table in ``docs/ops.md``, generated from the registry.

``python -m tflite_inverter.opstable > docs/ops.md`` regenerates it; a test fails when the
file is stale.
"""

from __future__ import annotations

from .ops import supported_ops
from .reader.opcodes import NEWER_OPCODES, OPCODE_NAMES

NOT_OPERATORS = {"CUSTOM", "DELEGATE", "PLACEHOLDER_FOR_GREATER_OP_CODES"}

# Builtin opcodes deliberately without a builder, and why.
EXCEPTIONS = {
    "CONCAT_EMBEDDINGS": "LiteRT registers no kernel for it (\"Didn't find op for builtin opcode\"): nothing to be "
                         "equivalent to; tests/ops/test_embedding.py checks both facts",
}


def _row(number: str, name: str) -> str:
    specs = {spec.opcode: spec for spec in supported_ops()}
    spec = specs.get(name)
    if spec is None:
        return f"| {number} | `{name}` | no | | | | {EXCEPTIONS.get(name, '')}"
    family = spec.builder.__module__.rsplit(".", 1)[-1]
    test = f"tests/ops/test_{family}.py"
    return f"| {number} | `{name}` | yes | {spec.max_version} | `{family}.{spec.name}` | `{test}` |" + (
        f" {spec.note}" if spec.note else ""
    )


def render_ops_table() -> str:
    specs = supported_ops()
    builtin = [(n, name) for n, name in sorted(OPCODE_NAMES.items()) if name not in NOT_OPERATORS]
    regular = [(n, name) for n, name in builtin if not name.startswith("STABLEHLO_")]
    stablehlo = [(n, name) for n, name in builtin if name.startswith("STABLEHLO_")]
    supported_regular = sum(1 for _, name in regular if any(s.opcode == name for s in specs))
    lines = [
        "# Supported TFLite operators",
        "",
        "Generated from the op registry by `python -m tflite_inverter.opstable > docs/ops.md`;",
        "`tests/test_docs.py` fails when this file is stale. *Max version* is the highest op",
        "version the parity tests cover: a model with a higher version warns (fails with `--strict`).",
        "",
        f"Builtin operators (without StableHLO): {supported_regular} of {len(regular)} supported.",
        f"Opcodes newer than the installed generated readers, named from `schema/opcodes.csv`: "
        f"{', '.join(sorted(NEWER_OPCODES.values()))}.",
        "",
        "| code | opcode | supported | max version | builder | parity test | notes",
        "|---:|---|---|---:|---|---|---|",
    ]
    lines += [_row(str(n), name) for n, name in regular]
    customs = [s for s in specs if s.opcode.startswith("CUSTOM:")]
    lines += ["", "## Custom operators", ""]
    if customs:
        lines += ["| code | opcode | supported | max version | builder | parity test | notes", "|---:|---|---|---:|---|---|---|"]
        lines += [_row("custom", s.opcode) for s in customs]
    else:
        lines.append("None yet.")
    lines += ["", "## StableHLO operators", "", "| code | opcode | supported | max version | builder | parity test | notes",
              "|---:|---|---|---:|---|---|---|"]
    lines += [_row(str(n), name) for n, name in stablehlo]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_ops_table(), end="")
