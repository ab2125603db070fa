"""Which attention calls compute the whole s x s square: the planner's ftlaunch/forecast/throughput.py masked_layers
against what transformers 5 really hands torch's scaled_dot_product_attention (a spy on the call) for tiny
random models of the families, with and without padding, packing and sliding windows."""

from __future__ import annotations

import pytest
import torch

from ftlaunch.config.build import model_spec
from ftlaunch.config.modelconfig import facts
from ftlaunch.forecast.setup import Setup
from ftlaunch.forecast.throughput import attention_flops, masked_layers
from ftlaunch.forecast.tokenstats import TokenCounts
from ftlaunch.forecast.workload import Workload

TINY = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=512, max_position_embeddings=512)  # fmt: skip
S = 32


def sdpa_masks(model_type: str, kw: dict, batch: int, pad: bool = False, packed: bool = False) -> int:
    """SDPA calls of one forward+loss that got an explicit attn_mask (0 = every layer used is_causal)."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.integrations import sdpa_attention

    cfg = AutoConfig.for_model(model_type, **TINY, **kw)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa")
    ids = torch.randint(0, 500, (batch, S))
    mask = torch.ones(batch, S, dtype=torch.long)
    if pad:
        mask[-1, S // 2 :] = 0  # right padding, as TRL's collators pad
    pos = torch.cat([torch.arange(12), torch.arange(S - 12)]).unsqueeze(0) if packed else None
    seen = []
    real = sdpa_attention.torch.nn.functional.scaled_dot_product_attention

    def spy(*a, attn_mask=None, **k):
        seen.append(attn_mask is not None)
        return real(*a, attn_mask=attn_mask, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sdpa_attention.torch.nn.functional, "scaled_dot_product_attention", spy)
        model(input_ids=ids, attention_mask=None if packed else mask, position_ids=pos, labels=ids)
    assert len(seen) == TINY["num_hidden_layers"]
    return sum(seen)


CASES = [
    # (what, model_type, config kwargs, micro-batch, padded, packed)
    ("one row", "llama", {}, 1, False, False),
    ("two rows, same length", "llama", {}, 2, False, False),
    ("two rows, padded", "llama", {}, 2, True, False),
    ("packed (position_ids)", "llama", {}, 1, False, True),
    ("window shorter than the sequence", "mistral", {"sliding_window": S // 2}, 1, False, False),
    ("window longer than the sequence", "mistral", {"sliding_window": 2 * S}, 1, False, False),
    ("gemma3: local layers only", "gemma3_text", {"sliding_window": S // 2, "head_dim": 16,
                                                 "sliding_window_pattern": 2}, 1, False, False),
    ("qwen2: windowed from layer 2", "qwen2", {"use_sliding_window": True, "sliding_window": S // 2,
                                               "max_window_layers": 2}, 1, False, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "model_type", "kw", "mb", "pad", "packed"), CASES, ids=[c[0] for c in CASES]
)
def test_masked_layers_are_the_ones_transformers_masks(what, model_type, kw, mb, pad, packed):
    m = model_spec({"name": "t", "path": "/x", **facts({"model_type": model_type, **TINY, **kw})})
    s = Setup(method="lora", objective="sft", n_gpus=1, zero=0, offload_optimizer=False, offload_params=False,
              micro_batch=mb, seq_len=S, grad_ckpt=False, padded=pad)  # fmt: skip
    assert masked_layers(m, s) == sdpa_masks(model_type, kw, mb, pad, packed)


def test_a_masked_layer_costs_twice_the_causal_attention():
    m = model_spec({"name": "t", "path": "/x", **facts({"model_type": "llama", **TINY})})
    s = Setup(method="lora", objective="sft", n_gpus=1, zero=0, offload_optimizer=False, offload_params=False,
              micro_batch=2, seq_len=S, grad_ckpt=False)  # fmt: skip
    causal = attention_flops(m, s)
    assert causal == 2.0 * S * m.q_dim * m.num_hidden_layers
    from dataclasses import replace

    assert attention_flops(m, replace(s, padded=True)) == 2 * causal
    assert attention_flops(m, replace(s, attention="eager")) == 2 * causal


def test_workload_says_when_micro_batches_are_padded():
    varied = TokenCounts(prompt=(0, 0, 0), seqs=((10, 20, 30),), tokenizer="x")
    same = TokenCounts(prompt=(0, 0, 0), seqs=((20, 20, 20),), tokenizer="x")

    def wl(counts, packing=False, sequences=1):
        return Workload(3, 20.0, 64, sequences, packing, counts is not None, None, counts)

    assert not wl(varied).padded(1) and wl(varied).padded(2)
    assert not wl(same).padded(4)  # equal lengths: no padding, no mask
    assert not wl(varied, packing=True).padded(8)
    assert wl(None).padded(2) and not wl(None).padded(1)  # estimated lengths: assumed to differ
    assert wl(varied, sequences=2).padded(1)  # a DPO pair: chosen and rejected padded together
