"""What a person sees in a notebook or a terminal: short reprs, HTML tables with pass/fail colours,
tensor listings, "did you mean" hints, and run() input errors that say what was given and expected."""

from __future__ import annotations

import numpy as np
import pytest

import tflite_inverter as ti
from tflite_inverter.check.compare import CompareReport, OutputComparison
from tflite_inverter.check.verify import OutputReport, VerifyReport
from tflite_inverter.display import FAIL_COLOUR, PASS_COLOUR, did_you_mean
from tflite_inverter.quant.requantize import RequantizeReport


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    from tflite_inverter.sample import write_sample_model

    path = write_sample_model(tmp_path_factory.mktemp("display") / "sample.tflite")
    return ti.load(path)


@pytest.fixture(scope="module")
def inverted(sample):
    return ti.invert(sample)


def test_model_and_its_parts_have_short_reprs_and_html(sample):
    text = repr(sample)
    assert len(text) < 400 and text.startswith("<Model ") and "float32[1,64,64,3]" in text
    sg = sample.main
    assert repr(sg).startswith("Subgraph(0 ") and len(repr(sg)) < 300
    op = sg.operators[0]
    assert repr(op).startswith(f"Operator(0: {op.opcode} v{op.version}")
    constant = next(t for t in sg.tensors if t.data is not None)
    assert repr(constant).startswith(f"Tensor({constant.index}: {constant.name}") and "constant" in repr(constant)
    assert len(repr(constant)) < 300  # the weights are not printed
    page = sample._repr_html_()
    assert page.startswith("<div>") and "<table" in page and "CONV_2D" in page and sg.tensors[sg.inputs[0]].name in page


def test_tensors_lists_every_tensor_with_its_producer(sample):
    table = sample.tensors()
    sg = sample.main
    assert len(table) == len(sg.tensors) and table.names() == [t.name for t in sg.tensors]
    producers = {out: op for op in sg.operators for out in op.outputs}
    for row in table:
        if row.index in producers:
            assert row.producer == f"{producers[row.index].index} {producers[row.index].opcode}"
        elif row.index in sg.inputs:
            assert row.producer == "(input)"
    assert {r.index for r in table.computed()} == set(producers)
    assert [r.index for r in table if r.role == "output"] == sorted(sg.outputs)
    text = table.table()
    for t in sg.tensors:
        assert t.name in text  # full names, never cut
    assert "<table" in table._repr_html_()
    with pytest.raises(ti.TfliteInverterError, match="no subgraph 5"):
        sample.tensors(5)


def test_did_you_mean_offers_close_and_containing_names():
    assert did_you_mean("inpt_1", ["input_1", "output"]) == " (did you mean 'input_1'?)"
    assert "'model/conv/Relu'" in did_you_mean("conv/Relu", ["model/conv/Relu", "model/dense"])
    assert did_you_mean("zzz", ["input_1"]) == ""


def test_unknown_tensor_input_and_signature_names_get_suggestions(sample, inverted):
    output = sample.main.tensors[sample.main.outputs[0]].name
    with pytest.raises(ti.TfliteInverterError, match=f"did you mean '{output}'"):
        ti.invert(sample, outputs=[output[:-1] + "X"])
    name = inverted.inputs()[0].name
    with pytest.raises(ti.TfliteInverterError, match=f"did you mean '{name}'"):
        ti.invert(sample, input_shapes={name + "x": [1, 64, 64, 3]})
    with pytest.raises(ti.TfliteInverterError, match="did you mean 'serving_default'"):
        inverted.run([np.zeros((1, 64, 64, 3), np.float32)], signature="serving_defautl")


def test_inverted_model_repr_summary_and_html(inverted):
    assert repr(inverted).startswith("<InvertedModel of ") and len(repr(inverted)) < 400
    summary = inverted.summary()
    spec = inverted.inputs()[0]
    assert f"input  {spec.name} float32[1,64,64,3]" in summary and "quantized='fake_quant'" in summary
    for out in inverted.outputs():
        assert f"output {out.name} " in summary
    assert "<table" in inverted._repr_html_() and spec.name in inverted._repr_html_()


@pytest.mark.parametrize("given,message", [
    ({"wrong": np.zeros((1, 64, 64, 3), np.float32)}, r"given input\(s\) \['wrong'\], missing \['{name}'\]"),
    ([np.zeros((64, 64, 3), np.float32)], r"shape \(64, 64, 3\) lacks the batch dimension; expected \[1,64,64,3\]"),
    ([np.zeros((1, 64, 64, 3), np.uint8)], r"a uint8 array was given; the model takes float32"),
    ([np.zeros((2, 64, 64, 3), np.float32)], r"differs from \[1,64,64,3\] in the batch dimension"),
    ([np.zeros((1, 64, 32, 3), np.float32)], r"differs from \[1,64,64,3\] in dimension\(s\) \[2\]"),
    ([np.zeros((1, 64, 64, 3), np.float32)] * 2, r"2 input array\(s\) given; signature 'serving_default' takes 1"),
])
def test_run_input_errors_name_what_was_given_and_what_is_expected(inverted, given, message):
    name = inverted.inputs()[0].name
    with pytest.raises(ti.TfliteInverterError, match=message.format(name=name)):
        inverted.run(given)


def test_run_accepts_one_array_and_the_tensor_name(inverted, sample):
    x = np.random.default_rng(0).uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
    by_list = inverted.run([x])
    one = inverted.run(x)
    by_tensor_name = inverted.run({sample.main.tensors[sample.main.inputs[0]].name: x})
    for key in by_list:
        np.testing.assert_array_equal(by_list[key], one[key])
        np.testing.assert_array_equal(by_list[key], by_tensor_name[key])


def _output(name, passed):
    return OutputReport(name, name, (1, 4), "float32", 0.0 if passed else 1.0, 0.0, 0.0, 1.0, 1e-7, 1e-4, passed)


def test_verify_report_colours_each_output_and_keeps_long_names_whole():
    long = "model/head_%d/very/long/scope/name/that/used/to/be/cut/at/forty/characters"
    report = VerifyReport("m.tflite", "saved_model", "serving_default", 3,
                          outputs=[_output(long % 1, True), _output(long % 2, False)])
    page = report._repr_html_()
    assert page.count(f"background:{PASS_COLOUR}") == 1  # the passing row
    assert page.count(f"background:{FAIL_COLOUR}") == 2  # the failing row and the FAILED badge
    assert long % 1 in page and long % 2 in page
    text = report.table()
    assert long % 1 in text and long % 2 in text and text.endswith("FAILED")
    assert repr(report).startswith("<VerifyReport FAILED: 1/2 outputs within tolerance")


def test_compare_report_labels_top1_on_random_inputs():
    outputs = [OutputComparison("probs", (1, 10), 0.1, 0.01, 1.0, 0.004, 25.0, 0.5, 1.0)]
    random = CompareReport("a.tflite", "b.tflite", 3, outputs=outputs, random_inputs=True)
    real = CompareReport("a.tflite", "b.tflite", 3, outputs=outputs, random_inputs=False)
    assert "3 random inputs" in random.table() and "(random inputs)" in random.table()
    assert "random" not in real.table()
    assert "random inputs" in random._repr_html_() and repr(random).startswith("<CompareReport b.tflite")


def test_requantize_report_repr_and_html_include_the_comparison():
    comparison = CompareReport("a.tflite", "b.tflite", 2, outputs=[
        OutputComparison("y", (1, 3), 0.5, 0.1, 2.0, None, None, None, None)])
    report = RequantizeReport("b.tflite", "int8", 123_000, {"CONV_2D": 2, "SOFTMAX": 1}, {"SOFTMAX": 1},
                              ["x int8[1,3]"], ["y int8[1,3]"], comparison=comparison)
    assert repr(report) == "<RequantizeReport b.tflite (int8, 0.12 MB, 3 ops, 1 in float)>"
    page = report._repr_html_()
    assert "SOFTMAX" in page and "compare b.tflite against a.tflite" in page
