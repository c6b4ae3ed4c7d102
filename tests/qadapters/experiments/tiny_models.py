"""Small stand-ins for the Hugging Face encoders the experiments and benchmarks load."""

from __future__ import annotations

from typing import Any

import pytest
import torch

HIDDEN, LAYERS, POSITIONS = 32, 2, 64


def tiny_bert(seed: int = 0) -> Any:
    """A seeded random BERT (2 layers, hidden 32, 64 positions); skips without transformers."""
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        intermediate_size=2 * HIDDEN,
        max_position_embeddings=POSITIONS,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return transformers.BertModel(config)
