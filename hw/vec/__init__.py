"""bebert.hw.vec: the arithmetic engines of the vector unit (LayerNorm and softmax rows,
GELU / add / requantize elements), each bit-exact to `bebert.model.integer_ops`.
One engine per module: `layernorm.LayerNormRow`, `softmax.SoftmaxRow`,
`elem.GeluElem` / `AddElem` / `RequantElem`; `arith` holds the shared int64 arithmetic."""
