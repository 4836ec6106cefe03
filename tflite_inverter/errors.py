"""Every error the library raises on purpose derives from :class:`TfliteInverterError`.

The CLI prints such errors as one line and exits non-zero; anything else is a bug.
"""

from __future__ import annotations

from collections.abc import Mapping


class TfliteInverterError(Exception):
    """Base class of the library's errors: a clear message naming the place.

    Where an internal exception (TensorFlow's, numpy's) is the cause, it is kept in ``cause`` for
    debugging but not chained (``raise ... from None``): the user sees one message in the model's terms.
    """

    cause: BaseException | None = None


def with_cause(error: TfliteInverterError, cause: BaseException) -> TfliteInverterError:
    """``error`` with ``cause`` attached as an attribute: ``raise with_cause(err, exc) from None``."""
    error.cause = cause
    return error


class InvalidModelError(TfliteInverterError):
    """The bytes are not a valid TFLite flatbuffer (truncated, corrupt, or another format)."""


class UnsupportedOpsError(TfliteInverterError):
    """The model uses operators no builder is registered for.

    ``problems`` maps a key such as ``"CUMSUM v1"`` or ``"CUSTOM:MyOp"`` to a
    :class:`UnsupportedOp` record (count, a sample operator location, the reason).
    """

    def __init__(self, source: str, problems: Mapping[str, "UnsupportedOp"]):
        self.source = source
        self.problems = dict(problems)
        total = sum(p.count for p in self.problems.values())
        lines = [
            f"{source}: {len(self.problems)} unsupported operator kind(s), {total} operator(s):"
        ]
        for key, problem in sorted(self.problems.items()):
            lines.append(
                f"  {key} x{problem.count} (first: {problem.first_location}): {problem.reason}"
            )
        super().__init__("\n".join(lines))


class UnsupportedOp:
    __slots__ = ("count", "first_location", "reason")

    def __init__(self, first_location: str, reason: str):
        self.count = 0
        self.first_location = first_location
        self.reason = reason


class BuildError(TfliteInverterError):
    """A builder failed; the message names the operator index, opcode and output tensor."""


class RunError(TfliteInverterError):
    """TensorFlow refused the inputs or failed while running the inverted model (``cause`` holds its error)."""


class OutputExistsError(TfliteInverterError):
    """An output path exists and ``overwrite`` was not requested."""


class VerificationError(TfliteInverterError):
    """The reference interpreter could not run the model, or inputs could not be made."""


class ReferenceCrashedError(VerificationError):
    """The reference interpreter's process died by a signal (``signal_number``) on this model."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.signal_number = signal_number
