"""Parity tests for tflite_inverter/ops/stablehlo_random.py: STABLEHLO_RNG_BIT_GENERATOR against
LiteRT, bits and new state word for word."""

from __future__ import annotations

import numpy as np
import pytest
from tensorflow.lite.python import schema_py_generated as schema

from stablehlo_parity import assert_litert, options, single


def _rng_model(state_size, algorithm, out_shape, dtype):
    option = options("StablehloRngBitGeneratorOptions", algorithm=getattr(schema.RngAlgorithm, algorithm))
    return single("STABLEHLO_RNG_BIT_GENERATOR", [([state_size], "uint64")],
                  [([state_size], "uint64"), (out_shape, dtype)], option)


@pytest.mark.parametrize("state_size,algorithm,out_shape,dtype", [
    (2, "PHILOX", [3, 5], "uint32"),   # 15 words: a partial last block
    (3, "DEFAULT", [2, 3], "uint64"),
    (2, "THREEFRY", [7], "int32"),
    (2, "THREEFRY", [2, 2], "int64"),
])
def test_rng_bit_generator_litert(state_size, algorithm, out_shape, dtype):
    """Bits and new state word for word; the states include words above 2**32."""
    rng = np.random.default_rng(3)
    draws = [[rng.integers(0, 2**63, state_size, dtype=np.uint64) * np.uint64(2) + np.uint64(k)] for k in range(2)]
    assert_litert(_rng_model(state_size, algorithm, out_shape, dtype), "STABLEHLO_RNG_BIT_GENERATOR", inputs=draws)
