"""The facts a plan is made from, as plain dataclasses: model, data, method, GPU, cluster, pins, the job.

Built and validated from config by ftlaunch/config/build.py, so the arithmetic can trust them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ftlaunch.contract.datarows import FORMATS

METHODS = ("lora", "qlora", "full")
OBJECTIVES = ("sft", "dpo")
DATA_FORMATS = FORMATS  # contract/datarows.py, shared with the recipe
# Learning rates users expect from Axolotl/LLaMA-Factory examples: adapters tolerate ~10x full FT's.
DEFAULT_LR = {("lora", "sft"): 2e-4, ("qlora", "sft"): 2e-4, ("full", "sft"): 2e-5}
DEFAULT_LR.update({("lora", "dpo"): 5e-5, ("qlora", "dpo"): 5e-5, ("full", "dpo"): 5e-7})


@dataclass(frozen=True)
class ModelSpec:
    name: str
    path: str
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    max_position_embeddings: int
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    head_dim: int | None = None
    norms_per_layer: int = 2
    mlp: str = "gated"  # gated (SwiGLU/GeGLU: gate, up, down) | standard (fc1, fc2)
    # Family quirks (ftlaunch/config/modelconfig.py derives them from config.json; catalog yamls state them).
    model_type: str = "llama"  # HF model_type: decides how PEFT's all-linear treats MoE experts (params.py)
    qk_norm: str = (
        "none"  # none | head (qwen3, gemma3: RMSNorm of head_dim on q and k) | full (olmoe: q_dim, kv_dim)
    )
    fused_projections: bool = False  # phi3: one qkv_proj and one gate_up_proj nn.Linear
    attention_out_bias: bool = False  # llama attention_bias=true also biases o_proj
    mlp_bias: bool = False
    # Mixture of experts (0 experts: dense). Every expert is resident; only experts_per_token run per token.
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0  # one expert's width (0: intermediate_size)
    shared_expert_intermediate_size: int = 0  # qwen2_moe's always-on shared expert (0: none)
    shared_expert_gate: bool = False  # qwen2_moe: sigmoid gate (hidden -> 1) on the shared expert
    # Sliding-window attention (ftlaunch/config/modelconfig.py _sliding): how many layers attend to at most
    # sliding_window earlier tokens (0: none). Costs FLOPs in ftlaunch/forecast/throughput.py.
    sliding_window: int = 0
    sliding_layers: int = 0
    dense_layers: tuple[
        int, ...
    ] = ()  # MoE models: layers with a dense MLP (mlp_only_layers, decoder_sparse_step)

    @classmethod
    def from_arch(cls, name: str, path: str, arch: dict[str, Any]) -> ModelSpec:
        """plan.json's model.arch (this dataclass as a dict) back into the spec; unset facts keep defaults."""
        known = {f.name for f in fields(cls)}
        d = {"name": name, "path": path, **{k: v for k, v in arch.items() if k in known and v is not None}}
        d["dense_layers"] = tuple(d.get("dense_layers") or ())
        return cls(**d)

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def moe_layers(self) -> int:
        return self.num_hidden_layers - len(self.dense_layers) if self.is_moe else 0

    @property
    def expert_size(self) -> int:
        return self.moe_intermediate_size or self.intermediate_size

    @property
    def hd(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def q_dim(self) -> int:
        return self.num_attention_heads * self.hd

    @property
    def kv_dim(self) -> int:
        return self.num_key_value_heads * self.hd


@dataclass(frozen=True)
class GpuSpec:
    name: str
    label: str
    memory_gib: float
    bf16_tflops: float
    mem_bandwidth_gb_s: float
    price_per_gpu_hour: float | None
    intra_node_gb_s: float
    mfu: float | None = (
        None  # share of peak this GPU reaches in training (None: ftlaunch/forecast/throughput.py derives it)
    )
    matmul_tflops: float | None = None  # measured max achievable bf16 matmul rate (MAMF; None: not measured)


@dataclass(frozen=True)
class ClusterSpec:
    name: str
    executor: str
    gpus: tuple[str, ...]
    gpus_per_node: int
    max_nodes: int
    inter_node_gb_s: float
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    cpus_per_gpu: int = 8
    mem_per_gpu_gib: float = 64
    prices: dict[str, float] = field(default_factory=dict)
    gpu_flag: str = "gres"  # Slurm GPU request: gres (--gres=gpu:N) | gpus-per-node (--gpus-per-node=N)
    gres: dict[str, str] = field(
        default_factory=dict
    )  # GPU type -> Slurm gres type (ftlaunch/cluster/clusterconf.py)
    max_time_min: int | None = None  # partition MaxTime; None: no limit


@dataclass(frozen=True)
class DataSpec:
    name: str
    path: str
    format: str
    split: str
    n_samples: int
    tokens_per_sample: float
    max_tokens: int
    packing: bool
    # Per-row token counts from the model's tokenizer (ftlaunch/config/tokens.py); None: lengths are an estimate.
    counts: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class MethodSpec:
    name: str  # auto | lora | qlora | full | dpo
    adapter: str  # for dpo: auto | lora | qlora | full
    lora_r: int
    lora_alpha: int
    lora_dropout: float
    lora_targets: str
    learning_rate: float | None
    dpo_beta: float
    dpo_reference: str


@dataclass(frozen=True)
class Pins:
    """Dimensions the user fixed; None means the planner chooses."""

    gpu: str | None = None
    n_gpus: int | None = None
    zero: int | None = None
    offload: str | None = None  # none | optimizer | all
    micro_batch: int | None = None
    grad_ckpt: bool | None = None


@dataclass(frozen=True)
class Job:
    """Everything the planner needs, resolved and validated."""

    model: ModelSpec
    data: DataSpec
    method: MethodSpec
    cluster: ClusterSpec
    gpus: tuple[GpuSpec, ...]  # candidate GPU types (cluster's, or the pinned one), priced
    pins: Pins
    seq_len: int
    epochs: float
    global_batch: int
    budget: float | None
    domain_shift: str
    optimize: str
    checkpoint_every: int | None
    seed: int
    job_name: str = "job"
    attention: str = "sdpa"
    # "<gpu>/<method>" -> {"tokens_per_s": f, "peak_mem": f, "overhead": f} (ftlaunch/planning/calibration.py)
    calibration: dict[str, dict[str, float]] = field(default_factory=dict)
    cost_cap: float | None = None  # USD, runtime guard carried by the plan (ftlaunch/recipes/actuals.py)
