"""Config dicts (Hydra's, resolved) -> the plain dataclasses a plan is made from (ftlaunch/forecast/specs.py),
each failure one line that says how to fix it.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from ftlaunch.config.catalog import gpu_catalog
from ftlaunch.contract.errors import ConfigError
from ftlaunch.forecast.specs import (
    DATA_FORMATS,
    METHODS,
    ClusterSpec,
    DataSpec,
    GpuSpec,
    Job,
    MethodSpec,
    ModelSpec,
    Pins,
)


def _need(d: dict[str, Any], key: str, kind: type, where: str) -> Any:
    v = d.get(key)
    if v is None:
        raise ConfigError(
            f"{where}.{key} is missing: set it in ftlaunch/conf/{where}/<name>.yaml or with {where}.{key}=..."
        )
    if kind in (int, float) and (isinstance(v, bool) or not isinstance(v, (int, float))):
        raise ConfigError(f"{where}.{key}={v!r} is not a number: give a number, e.g. {where}.{key}=4096")
    if kind is int and v != int(v):
        raise ConfigError(f"{where}.{key}={v!r} must be a whole number")
    if kind in (int, float) and v <= 0:
        raise ConfigError(f"{where}.{key}={v!r} must be positive")
    return kind(v)


def model_spec(d: dict[str, Any]) -> ModelSpec:
    w = "model"
    spec = ModelSpec(
        name=str(d.get("name", "?")),
        path=str(_need(d, "path", str, w)),
        hidden_size=_need(d, "hidden_size", int, w),
        intermediate_size=_need(d, "intermediate_size", int, w),
        num_hidden_layers=_need(d, "num_hidden_layers", int, w),
        num_attention_heads=_need(d, "num_attention_heads", int, w),
        num_key_value_heads=_need(d, "num_key_value_heads", int, w),
        vocab_size=_need(d, "vocab_size", int, w),
        max_position_embeddings=_need(d, "max_position_embeddings", int, w),
        tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
        attention_bias=bool(d.get("attention_bias", False)),
        head_dim=int(d["head_dim"]) if d.get("head_dim") else None,
        norms_per_layer=int(d.get("norms_per_layer", 2)),
        mlp=str(d.get("mlp", "gated")),
        model_type=str(d.get("model_type") or "llama"),
        qk_norm=str(d.get("qk_norm") or "none"),
        fused_projections=bool(d.get("fused_projections", False)),
        attention_out_bias=bool(d.get("attention_out_bias", False)),
        mlp_bias=bool(d.get("mlp_bias", False)),
        sliding_window=_count(d, "sliding_window"),
        sliding_layers=_count(d, "sliding_layers"),
        num_experts=_count(d, "num_experts"),
        experts_per_token=_count(d, "experts_per_token"),
        moe_intermediate_size=_count(d, "moe_intermediate_size"),
        shared_expert_intermediate_size=_count(d, "shared_expert_intermediate_size"),
        shared_expert_gate=bool(d.get("shared_expert_gate", False)),
        dense_layers=tuple(sorted({int(i) for i in d.get("dense_layers") or ()})),
    )
    if spec.num_attention_heads % spec.num_key_value_heads:
        raise ConfigError(
            f"model.num_key_value_heads={spec.num_key_value_heads} must divide "
            f"num_attention_heads={spec.num_attention_heads}"
        )
    if spec.mlp not in ("gated", "standard"):
        raise ConfigError(f"model.mlp={spec.mlp!r} is not gated or standard")
    from ftlaunch.config.modelconfig import SUPPORTED, SUPPORTED_LINE

    if spec.model_type not in SUPPORTED:
        raise ConfigError(f"model.model_type={spec.model_type!r} is not planned; {SUPPORTED_LINE}")
    if spec.qk_norm not in ("none", "head", "full"):
        raise ConfigError(f"model.qk_norm={spec.qk_norm!r} is not none, head or full")
    if spec.is_moe and not 0 < spec.experts_per_token <= spec.num_experts:
        raise ConfigError(
            f"model.experts_per_token={spec.experts_per_token} must be 1..num_experts={spec.num_experts}"
        )
    if any(not 0 <= i < spec.num_hidden_layers for i in spec.dense_layers):
        raise ConfigError(f"model.dense_layers={list(spec.dense_layers)} must be layer indices 0..L-1")
    return spec


def _count(d: dict[str, Any], key: str) -> int:
    """An optional non-negative whole number (0 when absent)."""
    v = d.get(key) or 0
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ConfigError(f"model.{key}={v!r} must be a whole number >= 0")
    return v


def gpu_spec(d: dict[str, Any], price_override: float | None = None) -> GpuSpec:
    w = "gpu"
    price = price_override if price_override is not None else d.get("price_per_gpu_hour")
    if price is not None and (not isinstance(price, (int, float)) or price < 0):
        raise ConfigError(f"gpu {d.get('name')}: price_per_gpu_hour={price!r} must be a non-negative number")
    mamf, peak = d.get("matmul_tflops"), d.get("bf16_tflops")
    if mamf and isinstance(peak, (int, float)) and mamf > peak:
        raise ConfigError(
            f"gpu {d.get('name')}: matmul_tflops={mamf} is above bf16_tflops={peak}: a measured matmul rate "
            "cannot beat the datasheet peak (give the dense, not the sparse, peak)"
        )
    return GpuSpec(
        name=str(_need(d, "name", str, w)),
        label=str(d.get("label", d["name"])),
        memory_gib=_need(d, "memory_gib", float, w),
        bf16_tflops=_need(d, "bf16_tflops", float, w),
        mem_bandwidth_gb_s=_need(d, "mem_bandwidth_gb_s", float, w),
        price_per_gpu_hour=None if price is None else float(price),
        intra_node_gb_s=_need(d, "intra_node_gb_s", float, w),
        mfu=float(d["mfu"]) if d.get("mfu") else None,
        matmul_tflops=float(d["matmul_tflops"]) if d.get("matmul_tflops") else None,
    )


def catalog_gpu(name: str) -> GpuSpec:
    """The catalog's GPU of that name (ftlaunch/conf/gpu/<name>.yaml), or one line naming the known ones."""
    catalog = gpu_catalog()
    if name not in catalog:  # a forecast for some other device would be silently wrong
        raise ConfigError(f"GPU {name!r} is not in the GPU catalog: known are {', '.join(sorted(catalog))}")
    return gpu_spec(catalog[name])


def cluster_spec(d: dict[str, Any]) -> ClusterSpec:
    w = "cluster"
    gpus = d.get("gpus") or []
    if isinstance(gpus, str):
        gpus = [gpus]
    if not gpus:
        raise ConfigError("cluster.gpus is empty: list the GPU types the cluster offers, e.g. [a100-80gb]")
    executor = str(d.get("executor", "slurm"))
    if executor not in ("local", "slurm"):
        raise ConfigError(f"cluster.executor={executor!r} is not local or slurm")
    prices = dict(d.get("prices") or {})
    gpu_flag = str(d.get("gpu_flag") or "gres")
    if gpu_flag not in ("gres", "gpus-per-node"):
        raise ConfigError(f"cluster.gpu_flag={gpu_flag!r} is not gres or gpus-per-node")
    for k, v in prices.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise ConfigError(f"cluster.prices.{k}={v!r} must be a non-negative number (USD per GPU-hour)")
    return ClusterSpec(
        name=str(d.get("name", "?")),
        executor=executor,
        gpus=tuple(str(g) for g in gpus),
        gpus_per_node=_need(d, "gpus_per_node", int, w),
        max_nodes=_need(d, "max_nodes", int, w),
        inter_node_gb_s=float(d.get("inter_node_gb_s") or 0),
        partition=d.get("partition"),
        account=d.get("account"),
        qos=d.get("qos"),
        cpus_per_gpu=int(d.get("cpus_per_gpu") or 8),
        mem_per_gpu_gib=float(d.get("mem_per_gpu_gib") or 64),
        prices={str(k): float(v) for k, v in prices.items()},
        gpu_flag=gpu_flag,
        gres={str(k): str(v) for k, v in (d.get("gres") or {}).items()},
        max_time_min=None if d.get("max_time_min") is None else int(d["max_time_min"]),
    )


def data_spec(d: dict[str, Any]) -> DataSpec:
    w = "data"
    fmt = str(d.get("format", ""))
    if fmt not in DATA_FORMATS:
        raise ConfigError(f"data.format={fmt!r} is not one of {', '.join(DATA_FORMATS)}")
    return DataSpec(
        name=str(d.get("name", "?")),
        path=str(_need(d, "path", str, w)),
        format=fmt,
        split=str(d.get("split") or "train"),
        n_samples=_need(d, "n_samples", int, w),
        tokens_per_sample=_need(d, "tokens_per_sample", float, w),
        max_tokens=_need(d, "max_tokens", int, w),
        packing=bool(d.get("packing", False)),
        counts=d.get("token_counts"),
    )


def method_spec(d: dict[str, Any]) -> MethodSpec:
    name = str(d.get("name", ""))
    if name not in ("auto", "dpo", *METHODS):
        raise ConfigError(
            f"method={name!r} is not one of auto, lora, qlora, full, dpo: pick one with method=lora"
        )
    adapter = str(d.get("adapter") or "auto")
    if adapter not in ("auto", *METHODS):
        raise ConfigError(f"method.adapter={adapter!r} is not one of auto, lora, qlora, full")
    ref = str(d.get("dpo_reference") or "auto")
    if ref not in ("auto", "adapter", "model", "precomputed"):
        raise ConfigError(f"method.dpo_reference={ref!r} is not one of auto, adapter, model, precomputed")
    dropout = float(d.get("lora_dropout") or 0.0)
    if not 0 <= dropout < 1:
        raise ConfigError(f"method.lora_dropout={dropout} must be in [0, 1)")
    lr = d.get("learning_rate")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0):
        raise ConfigError(f"method.learning_rate={lr!r} must be a positive number")
    w = "method"
    return MethodSpec(
        name=name,
        adapter=adapter,
        lora_r=_need(d, "lora_r", int, w),
        lora_alpha=_need(d, "lora_alpha", int, w),
        lora_dropout=dropout,
        lora_targets=str(d.get("lora_targets") or "all-linear"),
        learning_rate=None if lr is None else float(lr),
        dpo_beta=_need(d, "dpo_beta", float, w),
        dpo_reference=ref,
    )


def _opt_int(cfg: dict[str, Any], key: str, lo: int, hi: int | None = None) -> int | None:
    v = cfg.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ConfigError(f"{key}={v!r} must be a whole number {rng} (or null to let the planner choose)")
    return v


def _job_name(cfg: dict[str, Any], model: str, data: str) -> str:
    """ftlaunch/conf/config.yaml's ${model.name}-${data.name} after the data file renamed the set (ftlaunch/config/datafile.py:
    a file given on the sample config), unless the user named the job."""
    name = str(cfg.get("job_name") or "")
    default = f"{cfg['model'].get('name')}-{cfg['data'].get('name')}"
    return f"{model}-{data}" if not name or name == default else name


def job_from_config(cfg: dict[str, Any]) -> Job:
    """The resolved Hydra config (as a plain dict) -> Job. Raises ConfigError with one line."""
    from ftlaunch.config.datafile import inspect
    from ftlaunch.config.modelconfig import with_local_facts
    from ftlaunch.forecast.params import lora_uses_parameter_targets

    model = model_spec(with_local_facts(cfg["model"]))
    data = data_spec(inspect(cfg["data"], model.path))  # the resolved folder (hf:Org/Name -> its snapshot)
    method = method_spec(cfg["method"])
    if method.lora_dropout and lora_uses_parameter_targets(model, method.lora_targets):
        # PEFT's ParamWrapper (LoRA on stacked expert tensors) refuses dropout: plan and train without it.
        method = replace(method, lora_dropout=0.0)
    cluster = cluster_spec(cfg["cluster"])

    budget = cfg.get("budget")
    if budget is not None:
        if isinstance(budget, bool) or not isinstance(budget, (int, float)):
            raise ConfigError(f"budget={budget!r} is not a number: give dollars, e.g. +budget=500")
        if not math.isfinite(budget) or budget <= 0:
            raise ConfigError(f"budget={budget!r} must be a positive number of dollars, e.g. +budget=500")
        budget = float(budget)

    seq_len = cfg.get("seq_len")
    if seq_len is None:
        seq_len = min(data.max_tokens, model.max_position_embeddings)
    elif isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len <= 0:
        raise ConfigError(f"seq_len={seq_len!r} must be a positive whole number of tokens")
    if seq_len > model.max_position_embeddings:
        raise ConfigError(
            f"seq_len={seq_len} exceeds {model.name}'s context of {model.max_position_embeddings} tokens: "
            f"lower seq_len or pick a longer-context model"
        )

    epochs = cfg.get("epochs", 1)
    if isinstance(epochs, bool) or not isinstance(epochs, (int, float)) or epochs <= 0:
        raise ConfigError(f"epochs={epochs!r} must be a positive number")
    global_batch = _opt_int(cfg, "global_batch", 1)
    if global_batch is None:
        raise ConfigError("global_batch must be set (samples per optimizer step), e.g. global_batch=32")

    goal = cfg.get("goal") or {}
    shift = str(goal.get("domain_shift", "small"))
    if shift not in ("small", "large"):
        raise ConfigError(f"goal.domain_shift={shift!r} is not small or large")
    optimize = str(goal.get("optimize", "cost"))
    if optimize not in ("cost", "time"):
        raise ConfigError(f"goal.optimize={optimize!r} is not cost or time")

    offload = cfg.get("offload")
    if offload is not None and offload not in ("none", "optimizer", "all"):
        raise ConfigError(f"offload={offload!r} is not none, optimizer or all")
    grad_ckpt = cfg.get("grad_ckpt")
    if grad_ckpt is not None and not isinstance(grad_ckpt, bool):
        raise ConfigError(f"grad_ckpt={grad_ckpt!r} must be true or false")

    gpu_cfg = cfg.get("gpu") or {"name": "auto"}
    catalog = gpu_catalog()
    pinned_gpu = None if gpu_cfg.get("name") == "auto" else str(gpu_cfg["name"])
    if pinned_gpu is not None:
        gpus = (gpu_spec(dict(gpu_cfg), cluster.prices.get(pinned_gpu)),)
    else:
        unknown = [g for g in cluster.gpus if g not in catalog]
        if unknown:
            raise ConfigError(
                f"cluster.gpus names unknown GPU type {unknown[0]!r}: known types are {', '.join(sorted(catalog))}"
            )
        gpus = tuple(gpu_spec(catalog[g], cluster.prices.get(g)) for g in cluster.gpus)
    priced = tuple(g for g in gpus if g.price_per_gpu_hour is not None)
    if not priced:
        raise ConfigError(
            f"no price for GPU type(s) {', '.join(g.name for g in gpus)}: set cluster.prices.<gpu>=<USD per GPU-hour>"
        )

    pins = Pins(
        gpu=pinned_gpu,
        n_gpus=_opt_int(cfg, "n_gpus", 1),
        zero=_opt_int(cfg, "zero", 0, 3),
        offload=offload,
        micro_batch=_opt_int(cfg, "micro_batch", 1),
        grad_ckpt=grad_ckpt,
    )
    max_gpus = cluster.gpus_per_node * cluster.max_nodes
    if pins.n_gpus is not None and pins.n_gpus > max_gpus:
        raise ConfigError(
            f"n_gpus={pins.n_gpus} exceeds cluster {cluster.name}'s {max_gpus} GPUs "
            f"({cluster.max_nodes} nodes x {cluster.gpus_per_node})"
        )
    if pins.offload == "all" and pins.zero not in (None, 3):
        raise ConfigError(f"offload=all (parameters) needs ZeRO-3, not zero={pins.zero}")

    cap = cfg.get("cost_cap")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float)) or cap <= 0):
        raise ConfigError(f"cost_cap={cap!r} must be a positive number of dollars (or null)")
    attention = str(cfg.get("attention") or "sdpa")
    if attention not in ("sdpa", "eager"):
        raise ConfigError(f"attention={attention!r} is not sdpa or eager")
    from ftlaunch.config.modelconfig import EAGER_ONLY

    if model.model_type in EAGER_ONLY:
        attention = "eager"

    return Job(
        job_name=_job_name(cfg, model.name, data.name),
        attention=attention,
        model=model,
        data=data,
        method=method,
        cluster=cluster,
        gpus=priced,
        pins=pins,
        seq_len=int(seq_len),
        epochs=float(epochs),
        global_batch=global_batch,
        budget=budget,
        domain_shift=shift,
        optimize=optimize,
        checkpoint_every=_opt_int(cfg, "checkpoint_every", 1),
        seed=int(cfg.get("seed") or 0),
        cost_cap=None if cap is None else float(cap),
    )
