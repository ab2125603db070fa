"""Exact parameter counts from the architecture (HF config facts), split the ways memory needs them.

Source: the module layout of transformers 5's *ForCausalLM for llama, mistral, qwen2/3, gemma2/3, phi3 and the
MoE families mixtral, qwen2_moe, qwen3_moe, olmoe (q,k,v,o projections, gated MLP or stacked experts, router,
RMSNorm weights, embedding, lm_head). Checked against sum(numel) of each family built on the meta device from
its real-size config, and PEFT's trainable count, in tests/test_modelconfig.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftlaunch.contract.errors import ConfigError
from ftlaunch.forecast.specs import ModelSpec

# PEFT 0.21 under transformers 5 rewrites a LoRA config for MoE families whose experts were nn.Linear in
# transformers 4 (peft/utils/transformers_weight_conversion.py, _MODEL_TO_CONVERSION_PATTERN and
# _MOE_TARGET_MODULE_MAPPING): the expert names become `target_parameters` on the stacked 3-D tensors
# (gate_up_proj with rank 2r, down_proj with rank r, each lora_A/B holding num_experts blocks), the router
# `gate` becomes a 2-D parameter target, and the dense-MLP names are dropped from target_modules. Families
# not in that table (qwen2_moe under this mapping) get only their nn.Linear layers: experts and router stay
# frozen. Checked by building each family and counting what get_peft_model creates (tests/test_modelconfig.py).
# model_type -> (router name, the two names fused into gate_up_proj, the name mapped to down_proj).
PEFT_FUSED_MOE = {
    "mixtral": ("gate", ("w1", "w3"), "w2"),
    "qwen3_moe": ("gate", ("gate_proj", "up_proj"), "down_proj"),
    "olmoe": ("gate", ("gate_proj", "up_proj"), "down_proj"),
}


@dataclass(frozen=True)
class ParamCounts:
    total: int
    embed: int  # input embedding
    lm_head: int  # 0 when tied to the embedding
    linear: int  # decoder nn.Linear weights+biases (what bitsandbytes quantizes)
    norm: int
    per_layer: int  # the largest decoder layer, all its parameters
    lora: int  # trainable LoRA parameters for the given rank/targets
    experts: int = 0  # stacked expert tensors + routers: not nn.Linear, so QLoRA leaves them bf16
    linear_active: int = -1  # decoder matmul params one token uses (MoE: top-k + shared experts); -1: linear
    lora_active: int = -1  # LoRA params one token uses; -1: lora

    @property
    def active(self) -> int:
        return self.linear if self.linear_active < 0 else self.linear_active

    @property
    def lora_per_token(self) -> int:
        return self.lora if self.lora_active < 0 else self.lora_active

    @property
    def matmul(self) -> int:
        """Parameters that take part in a matmul per token (lookup embedding excluded, MoE: active experts)."""
        return self.active + (self.lm_head or self.embed)


def attention_shapes(m: ModelSpec) -> dict[str, tuple[int, int]]:
    h, q, kv = m.hidden_size, m.q_dim, m.kv_dim
    if m.fused_projections:  # phi3
        return {"qkv_proj": (h, q + 2 * kv), "o_proj": (q, h)}
    return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h)}


def mlp_shapes(m: ModelSpec, i: int | None = None) -> dict[str, tuple[int, int]]:
    h, i = m.hidden_size, i or m.intermediate_size
    if m.mlp != "gated":
        return {"fc1": (h, i), "fc2": (i, h)}
    if m.fused_projections:
        return {"gate_up_proj": (h, 2 * i), "down_proj": (i, h)}
    return {"gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}


def linear_shapes(m: ModelSpec) -> dict[str, tuple[int, int]]:
    """(in_features, out_features) of each nn.Linear in one dense decoder layer."""
    return attention_shapes(m) | mlp_shapes(m)


def _moe_linear_shapes(m: ModelSpec) -> dict[str, tuple[int, int]]:
    """nn.Linear layers of one MoE block (qwen2_moe's shared expert and its gate); experts are not Linear."""
    out = {}
    if m.shared_expert_intermediate_size:
        out |= {f"shared_expert.{k}": v for k, v in mlp_shapes(m, m.shared_expert_intermediate_size).items()}
    if m.shared_expert_gate:
        out["shared_expert_gate"] = (m.hidden_size, 1)
    return out


def _fused(m: ModelSpec) -> tuple[str, tuple[str, str], str] | None:
    return PEFT_FUSED_MOE.get(m.model_type) if m.is_moe else None


def _layer_names(m: ModelSpec) -> set[str]:
    """Names a comma list of lora_targets may use for this model."""
    fused = _fused(m)
    if fused:
        router, gate_up, down = fused
        return set(attention_shapes(m)) | {router, *gate_up, down}
    names = set(linear_shapes(m))
    if m.is_moe:
        names |= {k.rpartition(".")[2] for k in _moe_linear_shapes(m)}
    return names


def _lora_layers(m: ModelSpec, r: int, names: set[str]) -> tuple[int, int, int]:
    """LoRA parameters PEFT creates in one (dense layer, MoE layer) and what one token uses of the MoE layer's.

    On an nn.Linear (in -> out): A (r x in) + B (out x r) (Hu et al. 2021, arXiv:2106.09685). On a stacked expert
    tensor (E, in, out) PEFT's ParamWrapper holds A (E*r x in) and B (out x E*r) (peft/tuners/lora/layer.py)."""
    every = "all-linear" in names
    attn = sum(r * (i + o) for k, (i, o) in attention_shapes(m).items() if every or k in names)
    fused = _fused(m)
    if fused:
        router, gate_up, down = fused
        picked = {router, *gate_up, down} if every else names
        if 0 < len(picked & set(gate_up)) < 2:
            raise ConfigError(
                f"method.lora_targets: PEFT fuses {' and '.join(gate_up)} of {m.name}'s experts into one tensor: "
                f"name both or neither"
            )
        h, e, ie, k = m.hidden_size, m.num_experts, m.expert_size, m.experts_per_token
        gu = 2 * r * e * (h + 2 * ie) if gate_up[0] in picked else 0  # rank 2r: two fused v4 LoRAs
        dn = r * e * (ie + h) if down in picked else 0
        rt = r * (h + e) if router in picked else 0
        # Dense-MLP Linears lose their names to the expert mapping, so dense layers keep attention LoRA only.
        return attn, attn + gu + dn + rt, attn + rt + (gu + dn) * k // e
    dense = attn + sum(r * (i + o) for k, (i, o) in mlp_shapes(m).items() if every or k in names)
    shared = sum(
        r * (i + o) for k, (i, o) in _moe_linear_shapes(m).items() if every or k.rpartition(".")[2] in names
    )
    return dense, attn + shared, attn + shared


def lora_targets(m: ModelSpec, targets: str) -> dict[str, tuple[int, int]]:
    """nn.Linear targets of a dense layer, name -> (in, out) (what LoRA dropout sees as inputs)."""
    names = _target_names(m, targets)
    out = {k: v for k, v in linear_shapes(m).items() if k in names or "all-linear" in names}
    if _fused(m):
        out = {k: v for k, v in attention_shapes(m).items() if k in out}
    return out


def _target_names(m: ModelSpec, targets: str) -> set[str]:
    if targets in ("all-linear", "all"):
        return {"all-linear"}
    names = {t.strip() for t in targets.split(",") if t.strip()}
    known = _layer_names(m)
    unknown = sorted(names - known)
    if unknown or not names:
        raise ConfigError(
            f"method.lora_targets={targets!r}: {m.name} has no module {unknown[0] if unknown else ''!r}; "
            f"use all-linear or a comma list of {', '.join(sorted(known))}"
        )
    return names


def lora_uses_parameter_targets(m: ModelSpec, targets: str) -> bool:
    """True when PEFT will wrap stacked expert/router tensors (lora.ParamWrapper), which refuses lora_dropout > 0."""
    fused = _fused(m)
    if not fused:
        return False
    router, gate_up, down = fused
    return bool(_target_names(m, targets) & {"all-linear", router, *gate_up, down})


def count_params(m: ModelSpec, lora_r: int = 16, targets: str = "all-linear") -> ParamCounts:
    h, L = m.hidden_size, m.num_hidden_layers
    attn = sum(i * o for i, o in attention_shapes(m).values())
    if m.attention_bias:  # q, k, v biases (Qwen2); llama's attention_bias also biases o_proj
        attn += m.q_dim + 2 * m.kv_dim + (h if m.attention_out_bias else 0)
    dense_mlp = sum(i * o for i, o in mlp_shapes(m).values())
    if m.mlp_bias:
        dense_mlp += sum(o for _, o in mlp_shapes(m).values())
    qk = {"none": 0, "head": 2 * m.hd, "full": m.q_dim + m.kv_dim}[m.qk_norm]
    norm_layer = m.norms_per_layer * h + qk

    n_moe = m.moe_layers
    n_dense = L - n_moe
    # MoE block: router (E x h, no bias) + E stacked gated experts (gate, up, down: 3 h I_e each)
    # + optional shared expert and its gate (transformers' *SparseMoeBlock / *Experts modules).
    router = m.num_experts * h
    experts = m.num_experts * 3 * h * m.expert_size
    shared = sum(i * o for i, o in _moe_linear_shapes(m).values())
    active_experts = m.experts_per_token * 3 * h * m.expert_size

    dense_layer = attn + dense_mlp + norm_layer
    moe_layer = attn + router + experts + shared + norm_layer
    embed = m.vocab_size * h
    lm_head = 0 if m.tie_word_embeddings else embed
    lora_dense, lora_moe, lora_moe_active = _lora_layers(m, lora_r, _target_names(m, targets))
    return ParamCounts(
        total=embed + lm_head + n_dense * dense_layer + n_moe * moe_layer + h,  # + final norm
        embed=embed,
        lm_head=lm_head,
        linear=n_dense * (attn + dense_mlp) + n_moe * (attn + shared),
        norm=L * norm_layer + h,
        per_layer=max(dense_layer if n_dense else 0, moe_layer if n_moe else 0),
        lora=n_dense * lora_dense + n_moe * lora_moe,
        experts=n_moe * (router + experts),
        linear_active=n_dense * (attn + dense_mlp) + n_moe * (attn + shared + router + active_experts),
        lora_active=n_dense * lora_dense + n_moe * lora_moe_active,
    )
