"""bebert.hw.vec: the parts of the v3 vector unit (hw/vector_unit.py), one component per module.

Arithmetic (`arith`: the narrow POST, the per-row divider), the tile engine's lane (`lane`,
with the kernel datapaths `affine`, `gelu`, `layernorm`, `softmax`), the stream reader and the
writer with its row-word packer, the descriptor / constant fetcher, the scalar engine.
"""
