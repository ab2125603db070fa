"""Peak-memory terms against hand-computed values."""

import pytest

from launcher.memory import (
    ADAM_STATE_BYTES,
    CUDA_CONTEXT_BYTES,
    LOGIT_BYTES_PER_VOCAB,
    NF4_BYTES,
    Setup,
    activation_bytes_per_token_layer,
    peak_memory,
)
from launcher.params import count_params
from launcher.specs import model_spec
from tests.conftest import load

M7 = model_spec(load("model", "llama-2-7b"))
P7 = count_params(M7)
PHI = 6_738_415_616


def setup(**kw):
    base = dict(method="full", objective="sft", n_gpus=1, zero=0, offload_optimizer=False, offload_params=False,
                micro_batch=1, seq_len=2048, grad_ckpt=False, lora_dropout=0.0)  # fmt: skip
    return Setup(**{**base, **kw})


def test_full_amp_states_16_bytes_per_param_plus_autocast_copy():
    b = peak_memory(M7, P7, setup())
    assert b.weights == 6 * PHI and b.gradients == 4 * PHI and b.optimizer == 8 * PHI


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
    # Llama-2-7B, no dropout: 2h + 4q + 4kv (attn) + 2h + 8I (mlp) + 2 norms * 4h
    h, i = 4096, 11008
    want = (2 * h + 4 * h + 4 * h) + (2 * h + 8 * i) + 8 * h
    assert activation_bytes_per_token_layer(M7, setup(method="lora")) == want
    # full FT also keeps the normed input of trainable norm weights
    assert activation_bytes_per_token_layer(M7, setup()) == want + 2 * 2 * h


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
    assert b.logits == LOGIT_BYTES_PER_VOCAB * 32000 * 2048 * 4  # 2 pairs = 4 sequences
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
