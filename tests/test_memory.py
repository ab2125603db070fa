"""Peak-memory terms against hand-computed values."""

import pytest

from ftlaunch.config.build import model_spec
from ftlaunch.forecast.memory import (
    ADAM_STATE_BYTES,
    CUDA_CONTEXT_BYTES,
    LOGIT_TILE_TOKENS,
    activation_bytes_per_token_layer,
    peak_memory,
)
from ftlaunch.forecast.params import count_params
from ftlaunch.forecast.setup import NF4_BYTES, Setup
from tests.conftest import load

M7 = model_spec(load("model", "llama-2-7b"))
P7 = count_params(M7)
PHI = 6_738_415_616


def setup(**kw):
    base = dict(method="full", objective="sft", n_gpus=1, zero=0, offload_optimizer=False, offload_params=False,
                micro_batch=1, seq_len=2048, grad_ckpt=False, lora_dropout=0.0)  # fmt: skip
    return Setup(**{**base, **kw})


def test_full_amp_peak_is_the_larger_of_backward_and_step():
    # fp32 weights (4) + Adam m, v (8) always; then either backward's start (autocast's bf16 weight copies,
    # activations, logits, no gradients yet) or the step (fp32 gradients), whichever is larger.
    for seq, mb in ((256, 1), (4096, 8)):
        b = peak_memory(M7, P7, setup(seq_len=seq, micro_batch=mb))
        assert b.weights == 4 * PHI and b.optimizer == 8 * PHI
        bwd = 2 * PHI + b.activations + b.logits + (b.buffers - 2 * PHI if b.gradients == 0 else 0)
        assert b.allocated == pytest.approx(12 * PHI + max(4 * PHI, bwd))
    small = peak_memory(M7, P7, setup(seq_len=256, micro_batch=1))
    assert small.gradients == 4 * PHI and small.activations == 0  # the step sets the peak
    big = peak_memory(M7, P7, setup(seq_len=4096, micro_batch=8))
    assert big.gradients == 0 and big.activations > 2 * PHI  # backward sets the peak


@pytest.mark.parametrize("zero,w,g", [(1, 2, 2), (2, 2, 2 / 8), (3, 2 / 8, 2 / 8)])
def test_zero_stages_shard_states(zero, w, g):
    b = peak_memory(M7, P7, setup(n_gpus=8, zero=zero))
    assert b.weights == pytest.approx(w * PHI)
    assert b.gradients == pytest.approx(g * PHI)
    assert b.optimizer == pytest.approx(ADAM_STATE_BYTES * PHI / 8)


def test_offload_moves_optimizer_and_params_off_gpu():
    b = peak_memory(M7, P7, setup(n_gpus=8, zero=3, offload_optimizer=True, offload_params=True))
    assert b.optimizer == 0 and b.weights == 0
    assert b.buffers > 0  # gathered layers still live on the GPU


def test_lora_bf16_base_fp32_adapters():
    b = peak_memory(M7, P7, setup(method="lora"))
    assert b.weights == pytest.approx(2 * PHI + 4 * P7.lora)
    assert b.gradients == 4 * P7.lora and b.optimizer == 8 * P7.lora


def test_qlora_nf4_linears_bf16_rest():
    b = peak_memory(M7, P7, setup(method="qlora"))
    base = NF4_BYTES * P7.linear + 2 * (P7.embed + P7.lm_head + P7.norm)
    assert b.weights == pytest.approx(base + 2 * P7.lora)  # TRL keeps QLoRA adapters in bf16
    assert b.gradients == 2 * P7.lora and b.optimizer == 4 * P7.lora
    # 4.127 bits/param (QLoRA paper): a 7B base is ~3.7 GB instead of 13.5 GB in bf16
    assert 3.3e9 < base < 4.1e9


def test_activation_bytes_by_hand():
    # Llama-2-7B, LoRA all-linear fp32 adapters, no dropout: SDPA q, k, v, out + o_proj's input copy (6q + 4kv),
    # gated MLP without the frozen linears' inputs (6I), 2 norms x fp32 input (4h), fp32 copy of each LoRA input.
    h, i = 4096, 11008
    lora_inputs = 3 * h + h + 2 * h + i  # q, k, v, o, gate, up, down
    want = (6 * h + 4 * h) + 6 * i + 8 * h
    assert activation_bytes_per_token_layer(M7, setup(method="lora")) == want + 4 * lora_inputs
    # dropout adds a 1-byte mask per LoRA input; QLoRA's bf16 adapters keep 2-byte copies
    assert (
        activation_bytes_per_token_layer(M7, setup(method="lora", lora_dropout=0.05))
        == want + 5 * lora_inputs
    )
    assert activation_bytes_per_token_layer(M7, setup(method="qlora")) == want + 2 * lora_inputs
    # full FT: trainable linears keep their inputs (2 normed 2h, down's 2I), trainable norms their bf16 input
    assert activation_bytes_per_token_layer(M7, setup()) == want + 2 * 2 * h + 2 * i + 2 * 2 * h


def test_checkpointing_keeps_layer_inputs_only():
    s = setup(method="lora")
    per_tok_layer = activation_bytes_per_token_layer(M7, s)
    no = peak_memory(M7, P7, s)
    yes = peak_memory(M7, P7, setup(method="lora", grad_ckpt=True))
    assert no.activations == 32 * per_tok_layer * 2048
    assert yes.activations == 32 * 2 * 4096 * 2048 + per_tok_layer * 2048
    assert yes.activations < no.activations / 8


def test_logits_and_dpo_doubles_sequences():
    s = setup(method="lora", objective="dpo", micro_batch=2)
    b = peak_memory(M7, P7, s)
    # TRL's fused LM head: one bf16 tile (4096 tokens x 32000 vocab), 8h per token of hidden-state traffic
    assert b.logits == 2 * LOGIT_TILE_TOKENS * 32000 + 8 * 4096 * 2048 * 4  # 2 pairs = 4 sequences
    ref = peak_memory(M7, P7, setup(objective="dpo", dpo_reference="model"))
    assert ref.reference == 2 * PHI
    pre = peak_memory(M7, P7, setup(objective="dpo", dpo_reference="precomputed"))
    assert pre.reference == 0


def test_total_includes_context_and_fragmentation():
    b = peak_memory(M7, P7, setup(method="lora"))
    states = b.weights + b.gradients + b.optimizer + b.activations + b.logits + b.buffers
    assert b.total == pytest.approx(states * 1.05 + CUDA_CONTEXT_BYTES)


def test_eager_attention_adds_the_score_matrices():
    sdpa = peak_memory(M7, P7, setup(method="lora", micro_batch=2))
    eager = peak_memory(M7, P7, setup(method="lora", micro_batch=2, attention="eager"))
    # 32 layers x 32 heads x 2048^2 x 2 sequences x 4 bytes (scores + softmax, bf16)
    assert eager.activations - sdpa.activations == 32 * 32 * 2048**2 * 2 * 4
