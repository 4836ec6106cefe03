"""Quantization: parameters and grids, calibration data, re-quantization through the converters."""
