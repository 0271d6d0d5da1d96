"""bebert.hw.vec: the arithmetic engines of the vector unit, each bit-exact to
`bebert.integer_ops` on int64 words, with a cycle count that depends on `cols` only.

One engine per module: `layernorm.LayerNormRow`, `softmax.SoftmaxRow` (row engines over
synchronous row memories, start / done, `cycles(cols)`), `elem.GeluElem` / `AddElem` /
`RequantElem` (one element per cycle, fixed `LATENCY`); `arith` holds the shared int64
arithmetic and the iterative `Isqrt64` / `Divider`."""

from .elem import AddElem, GeluElem, RequantElem
from .layernorm import LayerNormRow
from .softmax import SoftmaxRow

__all__ = ["AddElem", "GeluElem", "LayerNormRow", "RequantElem", "SoftmaxRow"]
