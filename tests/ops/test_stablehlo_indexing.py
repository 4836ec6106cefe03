"""Parity tests for tflite_inverter/ops/stablehlo_indexing.py: STABLEHLO_GATHER and STABLEHLO_SCATTER
against LiteRT (which has kernels for both) and against a numpy transcription of the spec, element by
element (for the forms LiteRT cannot run or computations it lacks).
"""

from __future__ import annotations

import numpy as np
import pytest

import tflite_inverter as ti
from graph_writer import ModelWriter
from stablehlo_parity import CaseTable, assert_litert, check_case, computation, options, single, uniform

CASES = CaseTable()
numpy_case, litert_case = CASES.numpy_case, CASES.litert_case


def _gather_reference(operand, indices, offset_dims, collapsed, start_index_map, index_vector_dim, slice_sizes):
    """The spec's gather, element by element."""
    if index_vector_dim == indices.ndim:
        indices = indices[..., None]
    batch_dims_of_indices = [d for d in range(indices.ndim) if d != index_vector_dim]
    batch_shape = [indices.shape[d] for d in batch_dims_of_indices]
    window = [slice_sizes[d] for d in range(operand.ndim) if d not in collapsed]
    out_rank = len(batch_shape) + len(window)
    batch_positions = [p for p in range(out_rank) if p not in offset_dims]
    out_shape = [0] * out_rank
    for p, n in zip(batch_positions, batch_shape):
        out_shape[p] = n
    for p, n in zip(sorted(offset_dims), window):
        out_shape[p] = n
    result = np.zeros(out_shape, operand.dtype)
    for out_index in np.ndindex(*out_shape):
        batch = [out_index[p] for p in batch_positions]
        vector_index = list(batch)
        vector_index.insert(index_vector_dim, slice(None))
        start_vector = indices[tuple(vector_index)]
        start = [0] * operand.ndim
        for k, d in enumerate(start_index_map):
            start[d] = int(np.clip(start_vector[k], 0, operand.shape[d] - slice_sizes[d]))
        offsets = iter(out_index[p] for p in sorted(offset_dims))
        full = [start[d] + (0 if d in collapsed else next(offsets)) for d in range(operand.ndim)]
        result[out_index] = operand[tuple(full)]
    return result


def _gather_model(operand_shape, indices_shape, out_shape, **dims):
    option = options("StablehloGatherOptions", offsetDims=dims["offset_dims"], collapsedSliceDims=dims["collapsed"],
                     startIndexMap=dims["start_index_map"], indexVectorDim=dims["index_vector_dim"],
                     sliceSizes=dims["slice_sizes"], indicesAreSorted=False)
    return single("STABLEHLO_GATHER", [(operand_shape, "float32"), (indices_shape, "int32")], (out_shape, "float32"),
                  option)


GATHER_CASES = {
    # operand, indices (values, out of range ones clamp), dimension numbers
    "rows": ([10, 4], np.array([[3], [0], [9]], np.int32), dict(offset_dims=[1], collapsed=[0], start_index_map=[0],
                                                                 index_vector_dim=1, slice_sizes=[1, 4])),
    "windows": ([5, 4, 3], np.array([[1, 3], [4, 0], [-2, 9]], np.int32),
                dict(offset_dims=[1, 2], collapsed=[0], start_index_map=[0, 1], index_vector_dim=1,
                     slice_sizes=[1, 2, 3])),
    "index_vector_first": ([6, 5], np.array([[0, 2, 5], [4, 1, 3]], np.int32),
                           dict(offset_dims=[0], collapsed=[1], start_index_map=[1, 0], index_vector_dim=0,
                                slice_sizes=[2, 1])),
}


@numpy_case
def gather_implicit_index_vector():
    """index_vector_dim == rank(indices): each index is a scalar. LiteRT 2.3's kernel crashes
    (SIGSEGV) on this form, so the numpy reference of the spec is the check."""
    operand, indices = uniform([10, 4]), np.array([3, 0, 12], np.int32)
    dims = dict(offset_dims=[1], collapsed=[0], start_index_map=[0], index_vector_dim=1, slice_sizes=[1, 4])
    expected = _gather_reference(operand, indices, **dims)
    return _gather_model([10, 4], [3], [3, 4], **dims), "STABLEHLO_GATHER", [operand, indices], [expected]


@pytest.mark.parametrize("name", sorted(GATHER_CASES))
def test_gather_litert(name):
    operand_shape, indices, dims = GATHER_CASES[name]
    operand = uniform(operand_shape)
    expected = _gather_reference(operand, indices, **dims)
    model = _gather_model(operand_shape, list(indices.shape), list(expected.shape), **dims)
    assert_litert(model, "STABLEHLO_GATHER", inputs=[[operand, indices]])
    # the reference above is also the spec's, element by element
    got = ti.invert(model).run([operand, indices])["out_00"]
    np.testing.assert_array_equal(got, expected)


def _scatter_model(operand_shape, indices_shape, updates_shape, body, **dims):
    m = ModelWriter()
    g = m.main
    operand, indices, updates = g.input(operand_shape), g.input(indices_shape, "int32"), g.input(updates_shape)
    option = options("StablehloScatterOptions", updateWindowDims=dims["update_window_dims"],
                     insertedWindowDims=dims["inserted_window_dims"],
                     scatterDimsToOperandDims=dims["scatter_dims_to_operand_dims"],
                     indexVectorDim=dims["index_vector_dim"], indicesAreSorted=False, uniqueIndices=False,
                     updateComputationSubgraphIndex=computation(m, body))
    g.outputs(*g.op("STABLEHLO_SCATTER", [operand, indices, updates], [(operand_shape, "float32")], option))
    return m.pack()


ROW_SCATTER = dict(update_window_dims=[1], inserted_window_dims=[0], scatter_dims_to_operand_dims=[0],
                   index_vector_dim=1)


@pytest.mark.parametrize("body", ["STABLEHLO_ADD", None, "STABLEHLO_MAXIMUM"])
def test_scatter_rows_litert(body):
    """Rows of updates added to / written over / maxed into operand rows; index 3 twice (add), 7 out of range."""
    indices = np.array([[3], [0], [3], [7]] if body != None else [[3], [0], [7], [1]], np.int32)  # noqa: E711
    operand, updates = uniform([5, 3]), uniform([4, 3], seed=1)
    model = _scatter_model([5, 3], [4, 1], [4, 3], body, **ROW_SCATTER)
    assert_litert(model, "STABLEHLO_SCATTER", inputs=[[operand, indices, updates]])


@litert_case
def scatter_windows():
    """2x2 windows added at (row, column) starts. The spec checks each element's result index: the
    window at (3, 4) lands its element (0, 0) and drops the other three."""
    operand, updates = uniform([4, 5]), uniform([3, 2, 2], seed=1)
    indices = np.array([[0, 0], [2, 3], [3, 4]], np.int32)
    expected = operand.copy()
    for k, (r, c) in enumerate(indices):
        for i, j in np.ndindex(2, 2):
            if r + i < 4 and c + j < 5:
                expected[r + i, c + j] += updates[k, i, j]
    model = _scatter_model([4, 5], [3, 2], [3, 2, 2], "STABLEHLO_ADD", update_window_dims=[1, 2],
                           inserted_window_dims=[], scatter_dims_to_operand_dims=[0, 1], index_vector_dim=1)
    return model, "STABLEHLO_SCATTER", [operand, indices, updates], [expected]


@litert_case
def scatter_multiply():
    """A multiply computation goes one update at a time; index 1 twice."""
    operand, updates = uniform([4, 3]), uniform([3, 3], seed=1)
    indices = np.array([[1], [3], [1]], np.int32)
    expected = operand.copy()
    for k, (row,) in enumerate(indices):
        expected[row] *= updates[k]
    model = _scatter_model([4, 3], [3, 1], [3, 3], "STABLEHLO_MULTIPLY", **ROW_SCATTER)
    return model, "STABLEHLO_SCATTER", [operand, indices, updates], [expected]


@numpy_case
def scatter_subtract_in_order():
    """A subtracting computation, traced as it is: body(current, update) = current - update."""
    operand, updates = uniform([4, 3]), uniform([2, 3], seed=1)
    indices = np.array([[2], [0]], np.int32)
    expected = operand.copy()
    for k, (row,) in enumerate(indices):
        expected[row] -= updates[k]
    model = _scatter_model([4, 3], [2, 1], [2, 3], "STABLEHLO_SUBTRACT", **ROW_SCATTER)
    return model, "STABLEHLO_SCATTER", [operand, indices, updates], [expected]


# Registered last: every case above is in the table.
@pytest.mark.parametrize("case", sorted(CASES.numpy))
def test_numpy_reference(case):
    check_case(CASES.numpy[case], against_litert=False)


@pytest.mark.parametrize("case", sorted(CASES.litert))
def test_litert_and_numpy_reference(case):
    check_case(CASES.litert[case], against_litert=True)
