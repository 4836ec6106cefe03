"""The per-tensor verification as a Model Explorer node-data overlay (check/model_explorer.py):
keyed by the node ids of Model Explorer's TFLite adapter (the operator's index in its subgraph;
the subgraph's name, else its signature key and "main"), valued by error over tolerance."""

from __future__ import annotations

import json

import pytest

import tflite_inverter as ti
from flatbuffer_writer import edit
from tflite_inverter.check.model_explorer import FAILED, PASSED, graph_ids, node_data
from tflite_inverter.check.verify import TensorReport, VerifyReport
from tflite_inverter.cli import main
from tflite_inverter.sample import make_sample_model


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    path = tmp_path_factory.mktemp("explorer") / "sample.tflite"
    path.write_bytes(make_sample_model())
    return path


def test_the_overlay_of_a_per_tensor_verification(sample, tmp_path):
    model = ti.load(sample)
    inverted = ti.invert(model)
    saved = inverted.save_saved_model(tmp_path / "saved_model")
    assert main(["verify", str(sample), str(saved), "--per-tensor", "--model-explorer", str(tmp_path / "e.json")]) == 0
    written = json.loads((tmp_path / "e.json").read_text())
    # The converter names the subgraph "main"; a subgraph without a name is read as "main" too, and
    # newer adapters call that one by its signature key: the data is under both.
    assert list(written) == ["main", "serving_default"] and written["main"] == written["serving_default"]
    results = written["main"]["results"]
    # Every operator of the sample computes a float tensor the verification compares: one node each,
    # keyed by the operator's position in the file's subgraph.
    assert sorted(results, key=int) == [str(i) for i in range(len(model.main.operators))]
    report = ti.verify(sample, inverted, per_tensor=True)
    for row in report.tensors:
        assert model.main.operators[row.operator].opcode == row.opcode
        assert results[str(row.operator)]["value"] >= row.max_abs_error / row.tolerance
        assert results[str(row.operator)]["bgColor"] == PASSED
    assert all(result["value"] <= 1.0 for result in results.values())


def _row(operator, error, tolerance, passed):
    return TensorReport(operator=operator, opcode="ADD", tensor=f"t{operator}", max_abs_error=error, magnitude=1.0,
                        tolerance=tolerance, passed=passed)


def test_failing_nodes_are_red_and_ids_follow_the_adapter(sample):
    model = ti.load(sample)
    report = VerifyReport(model=str(sample), candidate="x", signature="serving_default", draws=1,
                          tensors=[_row(0, 1e-6, 1e-5, True), _row(3, 0.5, 1e-3, False), _row(3, 1e-6, 1e-3, True),
                                   _row(5, float("inf"), 0.0, False)])
    graph = node_data(report, model)["main"]
    assert graph["results"]["0"] == {"value": pytest.approx(0.1), "bgColor": PASSED}
    assert graph["results"]["3"] == {"value": pytest.approx(500.0), "bgColor": FAILED}  # the worse of its outputs
    assert graph["results"]["5"]["bgColor"] == FAILED and graph["results"]["5"]["value"] == 1e12  # no infinity in JSON
    json.dumps(graph, allow_nan=False)

    def unnamed(m):
        m.subgraphs[0].name = None

    anonymous = ti.load(edit(sample.read_bytes(), unnamed))
    assert graph_ids(anonymous) == ["main", "serving_default"]  # older adapters: "main"; newer: the signature key

    def renamed(m):
        m.subgraphs[0].name = b"encoder"

    assert graph_ids(ti.load(edit(sample.read_bytes(), renamed))) == ["encoder"]
    with pytest.raises(ti.TfliteInverterError, match="17 operators"):
        node_data(VerifyReport(model="m", candidate="x", signature="s", draws=1, tensors=[_row(40, 0, 1, True)]), model)
    with pytest.raises(ti.TfliteInverterError, match="per_tensor=True"):
        node_data(VerifyReport(model="m", candidate="x", signature="s", draws=1), model)
