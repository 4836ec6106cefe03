"""The op registry: one builder per TFLite opcode, registered with a decorator.

A builder is a pure function ``build(ctx, op, inputs) -> list[tf.Tensor]`` returning the
operator's outputs in TFLite order. It receives inputs already resolved: constants as
TensorFlow values (weights in TensorFlow layout when the spec declares one), optional
inputs as ``None``. Fused activations and naming happen in ``build/``, dequantization and
folding of constants in ``passes/``, never in a builder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..passes.signatures import OpSignature, declare, signature_of

Builder = Callable[..., list]
# A weight layout converts a constant (numpy) or run-time (tf) weight from TFLite's layout to
# the one the builder expects: layout(value, ctx, lib) with lib = numpy or tensorflow.
WeightLayout = Callable[[Any, Any, Any], Any]
# A resource factory names the state an operator creates (a resource variable, a hash table) and
# says how to make it: factory(ctx) -> (key, make). build/module.py makes each key once, at module creation,
# so the state lives in the tf.Module (saved with the SavedModel), not inside a traced function.
ResourceFactory = Callable[[Any], tuple]
# The input positions whose variable tensors the kernel writes back (an LSTM's output and cell
# states): a tuple, or a function of the operator's options giving one.
StateWrites = tuple[int, ...] | Callable[[Any], tuple[int, ...]]


@dataclass(frozen=True)
class OpSpec:
    opcode: str
    builder: Builder
    max_version: int
    weight_layouts: Mapping[int, WeightLayout] = field(default_factory=dict)
    note: str = ""
    resource_factory: ResourceFactory | None = None
    # False where LiteRT's kernel gives another static shape than the file records (the builder then
    # follows the kernel, and says why in ``note``).
    check_shape: bool = True
    # False where the options' fused_activation_function is the op's internal activation (the
    # LSTM/RNN cell activation, applied inside the recurrence by the builder), not one on output 0.
    fused_activation: bool = True
    # validator(op) -> None, or the reason the operator cannot be built (for the pre-build report).
    validator: Callable[[Any], str | None] | None = None
    # Inputs the kernel writes back into (variable tensors that persist across invocations); the
    # builder hands each new value to ``ctx.write_variable(position, value)``.
    writes_inputs: StateWrites = ()
    # What the operator needs before it is built (input/output counts, ranks, dtypes, options, shape
    # relations), checked by passes/validate.py; from the TF-free table in passes/signatures.py.
    signature: OpSignature | None = None

    @property
    def name(self) -> str:
        return self.builder.__name__

    def written_inputs(self, options: Mapping[str, Any]) -> tuple[int, ...]:
        """The input positions this operator (with these options) writes back into."""
        return tuple(self.writes_inputs(options) if callable(self.writes_inputs) else self.writes_inputs)


_REGISTRY: dict[str, OpSpec] = {}


def register(
    *opcodes: str,
    max_version: int = 1,
    weight_layouts: Mapping[int, WeightLayout] | None = None,
    note: str = "",
    resource_factory: ResourceFactory | None = None,
    check_shape: bool = True,
    fused_activation: bool = True,
    validator: Callable[[Any], str | None] | None = None,
    writes_inputs: StateWrites = (),
    signature: OpSignature | None = None,
) -> Callable[[Builder], Builder]:
    """Register ``builder`` for each TFLite spelling in ``opcodes`` (``"CONV_2D"``, ``"CUSTOM:Foo"``).

    ``max_version`` is the highest op version the parity tests cover; a model with a higher
    version warns (or fails in strict mode). A duplicate registration raises. ``writes_inputs``
    names the inputs whose variable tensors the kernel updates in place (module state). ``signature`` declares
    what the operator needs (checked by ``passes/validate.py`` before building); without it the
    opcode's entry in ``passes/signatures.py`` applies, if any.
    """

    def decorate(builder: Builder) -> Builder:
        for opcode in opcodes:
            if opcode in _REGISTRY:
                raise ValueError(f"{opcode} is registered twice ({_REGISTRY[opcode].name} and {builder.__name__})")
            _REGISTRY[opcode] = OpSpec(
                opcode=opcode,
                builder=builder,
                max_version=max_version,
                weight_layouts=MappingProxyType(dict(weight_layouts or {})),
                note=note,
                resource_factory=resource_factory,
                check_shape=check_shape,
                fused_activation=fused_activation,
                validator=validator,
                writes_inputs=writes_inputs,
                signature=signature if signature is not None else signature_of(opcode),
            )
            if signature is not None:
                declare(opcode, signature)
        return builder

    return decorate


def register_custom(*custom_codes: str, **kwargs: Any) -> Callable[[Builder], Builder]:
    """Register a builder for custom operators, keyed ``"CUSTOM:<custom_code>"``."""
    return register(*(f"CUSTOM:{code}" for code in custom_codes), **kwargs)


def unregister(opcode: str) -> None:
    """Remove a registration (for user extensions and tests that replace a builder)."""
    _REGISTRY.pop(opcode, None)


def lookup(opcode: str) -> OpSpec | None:
    """The spec for an opcode; a key ending in ``*`` (``"CUSTOM:Flex*"``) covers a whole family."""
    spec = _REGISTRY.get(opcode)
    if spec is None:
        for key, candidate in _REGISTRY.items():
            if key.endswith("*") and opcode.startswith(key[:-1]):
                return candidate
    return spec


def supported_ops() -> list[OpSpec]:
    return [spec for _, spec in sorted(_REGISTRY.items())]
