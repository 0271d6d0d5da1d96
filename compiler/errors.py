"""The compiler's one error type."""

from __future__ import annotations


class CompileError(ValueError):
    """A layer, input or spec the compiler cannot lower to the given accelerator.

    The message is one line naming the tensor (or spec) and the limit it breaks.
    """
