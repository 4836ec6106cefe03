"""What verify says when LiteRT's child process fails: LiteRT's own exception line, without the
traceback's source lines, caret markers or the cache path (check/runner.py ``_failure``)."""

from tflite_inverter.check.runner import _failure

TRACEBACK = """Traceback (most recent call last):
  File "/usr/lib/python3.11/runpy.py", line 198, in _run_module_as_main
    return _run_code(code, main_globals, None,
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/x/interpreter.py", line 513, in __init__
    self._interpreter = _interpreter_wrapper.CreateWrapperFromFile(
                        ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
RuntimeError: Encountered unresolved custom op: Convolution2DTransposeBias.
Node number 244 (Convolution2DTransposeBias) failed to prepare.
"""


def test_the_exception_line_is_what_is_said():
    assert _failure(TRACEBACK) == ("RuntimeError: Encountered unresolved custom op: Convolution2DTransposeBias. | "
                                   "Node number 244 (Convolution2DTransposeBias) failed to prepare.")
    assert _failure("Fatal Python error: Aborted\n\nCurrent thread 0x1 (most recent call first):\n  File \"a.py\"") == (
        "Fatal Python error: Aborted | Current thread 0x1 (most recent call first): | File \"a.py\"")
    assert _failure("") == ""
