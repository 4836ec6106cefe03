"""Fuzzing the reader, the validation pass and the builders with seeded mutations (tests/fuzzing.py).

CI tier: :data:`CI_LOAD` load cases (``load`` + ``summary`` + ``validate``, in this process) and
:data:`CI_RUN` invert-and-run cases (in worker subprocesses, so a crash is caught), plus the
regression cases: every escape the fuzzer found, regenerated from its ``(base, family, seed)``.
With ``TFLITE_INVERTER_FUZZ_LONG=1``: :data:`LONG_LOAD` and :data:`LONG_RUN` cases; with
``TFLITE_INVERTER_FUZZ_REPORT=FILE`` the counts per family and outcome are written there as JSON
(docs/fuzzing.md holds those of the last long run).

No tracebacks (escapes), crashes, memory blow-ups or hangs are allowed. A hang of a model with a
WHILE loop is the model's own (a loop whose condition never turns false runs forever in LiteRT too)
and is counted apart as ``loops``.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest

import fuzzing
import tflite_inverter as ti

LONG = os.environ.get("TFLITE_INVERTER_FUZZ_LONG") == "1"
CI_LOAD, CI_RUN = 2000, 200
LONG_LOAD, LONG_RUN = 10000, 1000
MEDIAPIPE_BASES = ("hand_recrop", "selfie_segmentation", "face_detection_full_range_sparse")
RUN_MEDIAPIPE_BASES = ("hand_recrop", "selfie_segmentation")
BAD = ("escape", "crash", "hang", "memory")

# Escapes the fuzzer found, now fixed: (base, family, seed, outcome now, text in the message).
REGRESSIONS = [
    ("hashtable", "sparsity", 54, "rejected", "a scalar cannot be sparse"),  # densify of a rank-0 constant
    ("control_flow", "sparsity", 34, "rejected", "a scalar cannot be sparse"),
    ("cnn_int8", "signature_defs", 175, "ran", ""),  # input named "." -> an argument TensorFlow renamed
    ("hashtable", "tensor_types", 128, "rejected", "running signature 'serving_default' failed"),  # TF error at run
    # Input and output of unknown rank: Conv2D on the scalar fed aborted the process (SIGABRT).
    ("cnn_int8", "zero_range", 100802, "rejected", "is not compatible with expected shape [?,?,?,?]"),
]


@pytest.fixture(scope="module")
def bases(generated_models, mediapipe_models) -> dict[str, str]:
    found = {name: str(path) for name, path in generated_models.items()}
    found.update({name: str(mediapipe_models[name]) for name in MEDIAPIPE_BASES})
    return found


def _base_for(i: int, generated: list[str], mediapipe: tuple[str, ...]) -> str:
    families = len(fuzzing.FAMILIES)
    if i % 5 == 4:
        return mediapipe[(i // 5) % len(mediapipe)]
    return generated[(i // families) % len(generated)]


def _report(name: str, counts: Counter) -> None:
    path = os.environ.get("TFLITE_INVERTER_FUZZ_REPORT")
    if not path:
        return
    report = json.loads(open(path).read()) if os.path.exists(path) else {}
    table: dict[str, dict[str, int]] = {}
    for (family, outcome), n in sorted(counts.items()):
        table.setdefault(family, {})[outcome] = n
    report[name] = table
    with open(path, "w") as handle:
        handle.write(json.dumps(report, indent=1, sort_keys=True) + "\n")


def test_mutations_are_deterministic(bases):
    data = open(bases["cnn_int8"], "rb").read()
    for family in fuzzing.FAMILIES:
        assert fuzzing.mutate(data, family, 3) == fuzzing.mutate(data, family, 3), family
    assert fuzzing.mutate(data, "shapes", 3) != data


def test_load_tier(bases):
    generated = sorted(n for n in bases if n not in MEDIAPIPE_BASES)
    data = {name: open(path, "rb").read() for name, path in bases.items()}
    counts, escapes = Counter(), []
    for i in range(LONG_LOAD if LONG else CI_LOAD):
        family = fuzzing.FAMILIES[i % len(fuzzing.FAMILIES)]
        base = _base_for(i, generated, MEDIAPIPE_BASES)
        case = fuzzing.mutate(data[base], family, i)
        outcome, detail = fuzzing.load_outcome(case)
        counts[family, outcome] += 1
        if outcome in BAD:
            escapes.append((base, family, i, detail))
    _report("load", counts)
    assert not escapes, escapes[:3]
    outcomes = Counter(outcome for (_, outcome) in counts.elements())
    assert outcomes["accepted"] > 0 and outcomes["rejected"] > 0, outcomes
    assert {family for family, _ in counts} == set(fuzzing.FAMILIES)


def test_run_tier_and_regressions(bases):
    generated = sorted(n for n in bases if n not in MEDIAPIPE_BASES)
    data = {name: open(path, "rb").read() for name, path in bases.items()}
    wanted = LONG_RUN if LONG else CI_RUN
    cases, i = [], 0
    while len(cases) < wanted:  # the run tier takes the mutants that pass validation
        family = fuzzing.FAMILIES[i % len(fuzzing.FAMILIES)]
        base = _base_for(i, generated, RUN_MEDIAPIPE_BASES)
        seed = 100_000 + i
        i += 1
        if fuzzing.load_outcome(fuzzing.mutate(data[base], family, seed))[0] == "accepted":
            cases.append((base, family, seed))
    regressions = [(base, family, seed) for base, family, seed, _, _ in REGRESSIONS]
    results = fuzzing.run_cases([(bases[b], f, s) for b, f, s in regressions + cases], timeout=20)
    counts, bad = Counter(), []
    for (base, family, seed), (outcome, detail) in zip(regressions + cases, results):
        if outcome == "hang" and any(op.opcode == "WHILE" for sg in ti.load(fuzzing.mutate(data[base], family, seed)).subgraphs
                                     for op in sg.operators):
            outcome = "loops"
        counts[family, outcome] += 1
        if outcome in BAD:
            bad.append((base, family, seed, outcome, detail[-600:]))
    _report("run", counts)
    assert not bad, bad[:3]
    for (base, family, seed, expected, text), (outcome, detail) in zip(REGRESSIONS, results):
        assert outcome == expected and text in detail, (base, family, seed, outcome, detail[-300:])
    assert Counter(o for (_, o) in counts.elements())["ran"] > wanted // 4
