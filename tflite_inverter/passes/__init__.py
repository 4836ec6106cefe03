"""IR -> IR passes: pure functions on :class:`tflite_inverter.ir.Model`, no TensorFlow.

``validate`` (:mod:`.validate`) checks a model read from an untrusted file against the declared
operator signatures (:mod:`.signatures`) before anything is built.
"""
