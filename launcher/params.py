"""Exact parameter counts from the architecture (HF config facts), split the ways memory needs them.

Source: the module layout of transformers' LlamaForCausalLM / Qwen2 / Gemma2 / Mistral / Phi3
(q,k,v,o projections, gated MLP gate/up/down, RMSNorm weights, embedding, lm_head). Checked against
the published totals in tests/test_params.py (e.g. Llama-3-8B = 8,030,261,248).
"""

from __future__ import annotations

from dataclasses import dataclass

from launcher.errors import ConfigError
from launcher.specs import ModelSpec


@dataclass(frozen=True)
class ParamCounts:
    total: int
    embed: int  # input embedding
    lm_head: int  # 0 when tied to the embedding
    linear: int  # decoder nn.Linear weights+biases (what bitsandbytes quantizes)
    norm: int
    per_layer: int  # one decoder layer, all its parameters
    lora: int  # trainable LoRA parameters for the given rank/targets

    @property
    def matmul(self) -> int:
        """Parameters that take part in a matmul per token (lookup embedding excluded)."""
        return self.linear + (self.lm_head or self.embed)


def linear_shapes(m: ModelSpec) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of each projection in one decoder layer."""
    h, q, kv, i = m.hidden_size, m.q_dim, m.kv_dim, m.intermediate_size
    shapes = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h)}
    if m.mlp == "gated":
        shapes |= {"gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}
    else:
        shapes |= {"fc1": (h, i), "fc2": (i, h)}
    return shapes


def lora_targets(m: ModelSpec, targets: str) -> dict[str, tuple[int, int]]:
    shapes = linear_shapes(m)
    if targets in ("all-linear", "all"):
        return shapes
    names = [t.strip() for t in targets.split(",") if t.strip()]
    unknown = [n for n in names if n not in shapes]
    if unknown or not names:
        raise ConfigError(
            f"method.lora_targets={targets!r}: {m.name} has no module {unknown[0] if unknown else ''!r}; "
            f"use all-linear or a comma list of {', '.join(shapes)}"
        )
    return {n: shapes[n] for n in names}


def count_params(m: ModelSpec, lora_r: int = 16, targets: str = "all-linear") -> ParamCounts:
    shapes = linear_shapes(m)
    linear = sum(i * o for i, o in shapes.values())
    if m.attention_bias:  # Qwen2: biases on q, k, v only
        linear += m.q_dim + 2 * m.kv_dim
    norm_layer = m.norms_per_layer * m.hidden_size
    per_layer = linear + norm_layer
    embed = m.vocab_size * m.hidden_size
    lm_head = 0 if m.tie_word_embeddings else embed
    L = m.num_hidden_layers
    # LoRA: A (r x in) + B (out x r) per targeted projection (Hu et al. 2021, arXiv:2106.09685).
    lora = L * sum(lora_r * (i + o) for i, o in lora_targets(m, targets).values())
    return ParamCounts(
        total=embed + lm_head + L * per_layer + m.hidden_size,  # + final norm
        embed=embed,
        lm_head=lm_head,
        linear=L * linear,
        norm=L * norm_layer + m.hidden_size,
        per_layer=per_layer,
        lora=lora,
    )
