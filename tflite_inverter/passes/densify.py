"""Densifying sparse constant tensors (TFLite's DimensionMetadata / block sparsity format).

The stored values are visited in traversal order: a DENSE level of size ``s`` expands each
position into ``s`` children; a SPARSE_CSR level expands position ``p`` into the entries
``array_segments[p]:array_segments[p+1]`` with coordinates ``array_indices``. Block levels
(``traversal_order`` entries >= rank) add an offset within the block of the dimension
``block_map`` names.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import ir
from ..errors import InvalidModelError
from ..ir import Sparsity
from .edit import map_tensors, tensor_location


def densify(values: np.ndarray, shape: tuple[int, ...], sparsity: Sparsity, where: str) -> np.ndarray:
    rank = len(shape)
    if rank == 0:
        raise InvalidModelError(f"{where}: a scalar cannot be sparse")
    order = sparsity.traversal_order or tuple(range(rank))
    if len(sparsity.dim_metadata) != len(order):
        raise InvalidModelError(f"{where}: {len(sparsity.dim_metadata)} dim_metadata for {len(order)} traversal levels")
    block_sizes = {}
    for level, dim in enumerate(order):
        if dim >= rank:
            block_sizes[sparsity.block_map[dim - rank]] = (dim, sparsity.dim_metadata[level].dense_size)

    positions = np.zeros(1, dtype=np.int64)
    coords = np.zeros((len(order), 1), dtype=np.int64)
    for level, dim in enumerate(order):
        meta = sparsity.dim_metadata[level]
        if meta.format == "DENSE":
            size = meta.dense_size
            positions = (positions[:, None] * size + np.arange(size)).reshape(-1)
            coords = np.repeat(coords, size, axis=1)
            coords[dim] = np.tile(np.arange(size), coords.shape[1] // max(size, 1))
        else:
            segments, indices = meta.array_segments, meta.array_indices
            if segments is None or indices is None or positions.size and positions.max() + 1 >= segments.size:
                raise InvalidModelError(f"{where}: sparse level {level} has too few array_segments")
            if segments.size and (segments[0] < 0 or np.any(np.diff(segments) < 0)):
                # Decreasing segments would let the expansion below repeat entries without bound.
                raise InvalidModelError(f"{where}: sparse level {level} array_segments are not increasing")
            starts, ends = segments[positions], segments[positions + 1]
            counts = ends - starts
            if np.any(counts < 0) or (ends.size and ends.max() > indices.size):
                raise InvalidModelError(f"{where}: sparse level {level} segments are out of range")
            total = int(counts.sum())
            offsets = np.repeat(ends - np.cumsum(counts), counts) + np.arange(total)
            coords = np.repeat(coords, counts, axis=1)
            positions = offsets
            coords[dim] = indices[positions]
    if positions.size and positions.max() >= values.size:
        raise InvalidModelError(f"{where}: sparse tensor indexes value {positions.max()} of {values.size}")
    dense_index = []
    for d in range(rank):
        coord = coords[d]
        if d in block_sizes:
            block_dim, block_size = block_sizes[d]
            coord = coord * block_size + coords[block_dim]
        if coord.size and coord.max() >= shape[d]:
            raise InvalidModelError(f"{where}: sparse coordinate {coord.max()} out of range for dimension {d} ({shape[d]})")
        dense_index.append(coord)
    dense = np.zeros(shape, dtype=values.dtype)
    dense[tuple(dense_index)] = values[positions]
    return dense


def densify_constants(model: ir.Model) -> ir.Model:
    """Every sparse constant as its dense value (``data`` dense, ``sparsity`` cleared), whoever
    consumes it: DENSIFY, DEQUANTIZE, or a FULLY_CONNECTED that takes block-sparse weights."""

    def dense(sg: ir.Subgraph, tensor: ir.Tensor) -> ir.Tensor | None:
        if tensor.data is None or tensor.sparsity is None or tensor.is_variable:
            return None
        where = tensor_location(model, sg, tensor)
        return dataclasses.replace(tensor, data=densify(np.asarray(tensor.data), tensor.shape, tensor.sparsity, where),
                                   sparsity=None)

    return map_tensors(model, dense)
