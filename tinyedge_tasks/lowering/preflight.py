"""The preflight of the backends that run the lowered model (C, MicroPython): every operator has a kernel, and
the arena is the memory plan's (exact, the same for every input). Seconds, no compiler."""
from __future__ import annotations

from collections.abc import Callable

from ..errors import TinyedgeError
from .lower import lower


def measure_with(lowering: Callable[[bytes], object]):
    """The preflight's measure step for a backend whose lowering (with its own scratch buffers) is `lowering`."""
    def measure(ctx, model, tflite: bytes, data, where: str) -> tuple[object, int]:
        """The lowered model (what the backend's budget charges: lowered once) and its planned arena; an operator
        without a kernel stops here, named with its layer."""
        try:
            lowered = lowering(tflite)
        except TinyedgeError as error:
            raise TinyedgeError(f"{where}: {error}") from None
        return lowered, lowered.arena_size
    return measure


measure = measure_with(lower)
