"""What people see of an :class:`~tflite_inverter.build.inverted.InvertedModel`: ``summary()``,
``repr`` and the notebook's HTML (signatures with their inputs and outputs, the inversion's
settings, the weights)."""

from __future__ import annotations

import numpy as np

from ..display import html_block, html_lines, html_table, shape_text


class InvertedModelDisplay:
    """The description methods of :class:`~tflite_inverter.build.inverted.InvertedModel`, which
    provides what they read: ``model``, ``prepared``, ``module``, ``io``, ``cut``, ``input_shapes``,
    ``passthrough``, ``signatures``, ``notes``, ``quantized_mode``, ``inputs()``, ``outputs()``,
    ``_info()`` and ``_expected_shape()``."""

    def _settings(self) -> list[str]:
        settings = [f"quantized={self.quantized_mode!r}", f"io={self.io!r}"]
        if self.module.integer_rescale:
            settings.append("integer_rescale: 8-bit kernels' output rescaling emulated exactly")
        if self.cut:
            settings.append(f"cut: inputs {list(self.cut[0]) or 'of the model'}, outputs {list(self.cut[1]) or 'of the model'}")
        if self.input_shapes:
            settings.append("input_shapes: " + ", ".join(f"{self.model.subgraphs[self.signatures[k].subgraph_index].tensors[i].name}"
                                                         f"={shape_text(v)}" for (k, i), v in self.input_shapes.items()))
        if self.passthrough is not None:
            settings.append("passthrough: " + ("every custom op without a builder" if self.passthrough.codes is None
                                               else ", ".join(sorted(self.passthrough.codes))))
        return settings

    def _weight_summary(self) -> str:
        variables = list(self.module.trainable_variables) + [v for v in self.module.variables if not v.trainable]
        count = len({id(v) for v in variables})
        size = sum(int(np.prod(v.shape)) * v.dtype.size for v in {id(v): v for v in variables}.values())
        return f"{count} variables, {size / 1e6:.2f} MB"

    def _io_rows(self, key: str) -> list[tuple[str, str, str, str, str]]:
        info = self._info(key)
        rows = [("input", s.name, shape_text(self._expected_shape(info, s) or []), s.dtype,
                 s.tensor.quantization.describe() if s.quantized else "") for s in self.inputs(key)]
        traced = getattr(self, "concrete_functions", {}).get(key)
        shapes = {name: [d for d in value.shape] for name, value in traced.structured_outputs.items()} if traced else {}
        rows += [("output", s.name, shape_text(shapes.get(s.name, s.shape)), s.dtype,
                  s.tensor.quantization.describe() if s.quantized else "") for s in self.outputs(key)]
        return rows

    def summary(self) -> str:
        """Signatures with their inputs and outputs as the inverted model takes and returns them,
        the inversion's settings and the weights."""
        operators = sum(len(sg.operators) for sg in self.prepared.subgraphs)
        lines = [f"inverted model of {self.model.source}: {operators} operators built, {self._weight_summary()}",
                 "settings: " + "; ".join(self._settings())]
        for key in self.signatures:
            lines.append(f"signature {key!r}:")
            for label, name, shape, dtype, quant in self._io_rows(key):
                lines.append(f"  {label:6} {name} {dtype}{shape}" + (f" ({quant})" if quant else ""))
        if self.model.tflite_metadata is not None:
            lines.extend(self.model.tflite_metadata.lines())
        lines.extend(self.notes)
        return "\n".join(lines)

    def __repr__(self) -> str:
        signatures = ", ".join(f"{k!r}: {len(v.input_names)} in, {len(v.output_names)} out" for k, v in self.signatures.items())
        return f"<InvertedModel of {self.model.source!r}: {signatures}; {'; '.join(self._settings())}>"

    def _repr_html_(self) -> str:
        tables = [html_table(("", "name", "shape", "dtype", "quantization"), self._io_rows(key), caption=f"signature {key!r}")
                  for key in self.signatures]
        operators = sum(len(sg.operators) for sg in self.prepared.subgraphs)
        return html_block(f"inverted model of {self.model.source}: {operators} operators built, {self._weight_summary()}",
                          html_lines(self._settings() + list(self.notes)), *tables,
                          html_lines(self.model.tflite_metadata.lines() if self.model.tflite_metadata is not None else []))
