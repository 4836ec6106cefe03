"""IR -> IR passes, run after the reader and before any TensorFlow op is built (no TensorFlow here).

Each pass is a pure function ``Model -> Model``: it returns a new model (sharing every tensor and
operator it does not change) and never writes the arrays of the one it was given. ``prepare`` in
:mod:`tflite_inverter.passes.pipeline` runs them in order for :func:`tflite_inverter.invert`;
``validate`` (:mod:`.validate`) checks a model read from an untrusted file against the declared
operator signatures (:mod:`.signatures`) before anything is built.
"""
