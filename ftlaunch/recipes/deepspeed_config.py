"""plan -> DeepSpeed config dict, passed as TrainingArguments(deepspeed=dict). Pure: no torch, no I/O.

"auto" is used where the HF integration fills the value from TrainingArguments (so the two cannot disagree):
bf16, train_batch_size, gradient clipping, optimizer hyper-parameters, ZeRO bucket sizes from hidden_size.
Micro batch and gradient accumulation are written as numbers from the plan; HF checks they match its args.
"""

from __future__ import annotations

from typing import Any

from ftlaunch.contract.plan import Plan

OFFLOAD = {"device": "cpu", "pin_memory": True}


def deepspeed_config(plan: Plan) -> dict[str, Any] | None:
    """None when the plan uses no DeepSpeed (zero_stage 0)."""
    r, t = plan.resources, plan.training
    stage = r.zero_stage
    if stage == 0:
        if r.offload_optimizer or r.offload_params:
            raise ValueError("offload needs DeepSpeed: plan.resources.zero_stage is 0")
        return None
    if stage not in (1, 2, 3):
        raise ValueError(f"zero_stage must be 0-3, got {stage}")
    if r.offload_params and stage != 3:
        raise ValueError(f"parameter offload needs ZeRO-3, plan has ZeRO-{stage}")
    if r.offload_optimizer and stage == 1:
        raise ValueError("optimizer offload needs ZeRO-2 or ZeRO-3, plan has ZeRO-1")

    zero: dict[str, Any] = {
        "stage": stage,
        "overlap_comm": stage >= 2,
        "contiguous_gradients": True,
        "reduce_bucket_size": "auto",
    }
    if stage == 3:
        zero.update(
            stage3_prefetch_bucket_size="auto",
            stage3_param_persistence_threshold="auto",
            stage3_max_live_parameters=1e9,
            stage3_max_reuse_distance=1e9,
            # one consolidated 16-bit state dict at save time, so save_pretrained / adapters work
            stage3_gather_16bit_weights_on_model_save=True,
        )
    if r.offload_optimizer:
        zero["offload_optimizer"] = dict(OFFLOAD)
    if r.offload_params:
        zero["offload_param"] = dict(OFFLOAD)

    cfg: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": t.micro_batch,
        "gradient_accumulation_steps": t.grad_accum,
        "train_batch_size": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},  # HF sets it from TrainingArguments.bf16 (on for GPU, off for CPU)
        "fp16": {"enabled": False},
        "zero_optimization": zero,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if r.offload_optimizer:
        # ZeRO-Offload refuses a client torch optimizer; this makes DeepSpeed build its CPU Adam.
        cfg["optimizer"] = {
            "type": "AdamW",
            "params": {"lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"},
        }
    return cfg
