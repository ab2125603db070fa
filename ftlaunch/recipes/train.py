"""Run a plan.json: SFT or DPO with LoRA, QLoRA or full fine-tuning, on one device, torchrun, or DeepSpeed.

    python -m ftlaunch.recipes.train --plan RUN/plan.json [--resume auto|never|CHECKPOINT]
    torchrun --nproc-per-node 2 -m ftlaunch.recipes.train --plan RUN/plan.json

Reads top to bottom: check the plan and every data row (exit 2, one line on stderr, nothing written), set up
the process group, load tokenizer / data / model under the precision policy, build the TRL trainer with the
stop/budget/metrics callbacks, train (resuming from the newest complete checkpoint), then write
run_dir/actuals.json. Everything goes under plan.run_dir:

    checkpoints/checkpoint-N/   HF checkpoints; complete once ftlaunch-complete.json is in them
    final/                      the adapter (LoRA/QLoRA) or full model + tokenizer, when training completed
    metrics.jsonl  actuals.json  spend.json  preempted | budget_exhausted  (markers for the launcher)

Precision policy (the planner's memory model assumes exactly this):
    lora   base weights bf16 on GPU, adapters fp32 (PEFT autocast_adapter_dtype)
    qlora  nf4 + double quant, bf16 compute, bf16 quant storage
    full   fp32 weights + bf16 autocast; with DeepSpeed, DeepSpeed bf16
On CPU everything is fp32 with no autocast (QLoRA keeps its bf16 compute dtype), and process groups use gloo.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import time
from pathlib import Path

from ftlaunch.contract.plan import Plan, atomic_write_text, read_plan, write_plan
from ftlaunch.contract.say import say, verbose
from ftlaunch.recipes import assets, checkpoints, data, sysmetrics
from ftlaunch.recipes.data import DataError
from ftlaunch.recipes.signals import StopRequest


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m ftlaunch.recipes.train", description="Train one plan.json.")
    ap.add_argument("--plan", required=True, help="path to plan.json")
    ap.add_argument(
        "--resume", default="auto", help="auto (newest complete checkpoint) | never | a checkpoint dir"
    )
    ap.add_argument(
        "--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS
    )  # deepspeed
    return ap.parse_args(argv)


# ---------------------------------------------------------------- 1. check the plan and the data, touch nothing


def check(plan: Plan) -> str:
    """Raise ValueError/DataError on anything wrong with the plan or its data. Returns the data source."""
    t = plan.training
    if t.method not in ("lora", "qlora", "full"):
        raise ValueError(f"plan.training.method {t.method!r} is not lora, qlora or full")
    if t.objective == "dpo" and t.dpo_reference not in ("adapter", "model", "precomputed"):
        raise ValueError(
            f"plan.training.dpo_reference {t.dpo_reference!r} is not adapter, model or precomputed"
        )
    if t.objective == "dpo" and t.dpo_reference == "adapter" and t.method == "full":
        raise ValueError(
            "dpo_reference 'adapter' needs method lora or qlora (full has no adapter to switch off)"
        )
    if t.max_steps < 1 or t.micro_batch < 1 or t.grad_accum < 1 or t.seq_len < 8:
        raise ValueError("plan.training needs max_steps, micro_batch, grad_accum >= 1 and seq_len >= 8")
    data.check_objective(plan.data.format, t.objective)
    source = data.resolve(plan.data.path, plan.data.format)
    if data.is_local(source):
        data.validate_file(source, plan.data.format)
    return source


# ---------------------------------------------------------------- 2. processes and devices


def setup_env(plan: Plan) -> tuple[int, int]:
    """(rank, world size). DeepSpeed on a machine without CUDA uses its CPU accelerator and wants the
    torchrun-style variables even for one process; set them before deepspeed is first imported."""
    if plan.resources.zero_stage > 0:
        import torch

        if not torch.cuda.is_available():
            os.environ.setdefault("DS_ACCELERATOR", "cpu")
        if "RANK" not in os.environ:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}
            env["MASTER_PORT"] = str(port)
            for k, v in env.items():
                os.environ.setdefault(k, v)
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def init_deepspeed(on_gpu: bool) -> None:
    """ZeRO-3 partitions weights inside from_pretrained, so the process group must exist before it."""
    import deepspeed

    deepspeed.init_distributed(dist_backend="nccl" if on_gpu else "gloo")


# ---------------------------------------------------------------- 3. model, under the precision policy


def experts_implementation(plan: Plan, on_gpu: bool) -> str | None:
    """MoE full fine-tuning without DeepSpeed keeps fp32 weights on the GPU under bf16 autocast, but the
    stacked experts' default kernel, grouped_mm, is not autocast-enabled and its CUDA kernel takes bf16 only
    (transformers integrations/moe.py _grouped_mm casts the input to the weight dtype; torch
    _meta_registrations._meta_grouped_mm_common mirrors _grouped_mm_cuda's check). The per-expert loop
    ("eager") runs F.linear, which autocast handles. DeepSpeed's bf16 engine holds bf16 weights, and LoRA /
    QLoRA load bf16 bases, so those keep grouped_mm (None: transformers' default)."""
    moe = bool(plan.model.arch.get("num_experts"))
    if moe and on_gpu and plan.training.method == "full" and plan.resources.zero_stage == 0:
        return "eager"
    return None


def load_model(plan: Plan, model_path: str, on_gpu: bool, for_reference: bool = False):
    import torch
    from transformers import BitsAndBytesConfig

    method = plan.training.method
    bf16 = on_gpu and plan.training.precision == "bf16"
    kwargs: dict = {}
    if method == "qlora":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_quant_storage=torch.bfloat16,
        )
        kwargs["dtype"] = torch.bfloat16
        if on_gpu and plan.resources.zero_stage == 0:
            kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    elif method == "lora":
        kwargs["dtype"] = torch.bfloat16 if bf16 else torch.float32
    else:  # full: fp32 master weights; bf16 comes from autocast or DeepSpeed
        kwargs["dtype"] = torch.float32
    kwargs["attn_implementation"] = plan.training.attention  # what the planner's memory model assumed
    experts = experts_implementation(plan, on_gpu)
    if experts:
        kwargs["experts_implementation"] = experts
    model_cls, extra = assets.causal_lm_class(plan.model.arch.get("model_type"))
    kwargs.update(extra)
    model = model_cls.from_pretrained(model_path, **kwargs)
    if for_reference:
        model.eval().requires_grad_(False)
    return model


def lora_config(plan: Plan):
    from peft import LoraConfig

    t = plan.training
    targets = (
        t.lora_targets if t.lora_targets == "all-linear" else [x.strip() for x in t.lora_targets.split(",")]
    )
    return LoraConfig(
        r=t.lora_r,
        lora_alpha=t.lora_alpha,
        lora_dropout=t.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


# ---------------------------------------------------------------- 4. trainer


def training_args(plan: Plan, on_gpu: bool, ds_config: dict | None):
    """SFTConfig or DPOConfig (both TrainingArguments). Must exist before from_pretrained under ZeRO-3."""
    t = plan.training
    common = dict(
        output_dir=str(Path(plan.run_dir) / "checkpoints"),
        per_device_train_batch_size=t.micro_batch,
        gradient_accumulation_steps=t.grad_accum,
        max_steps=t.max_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,  # < 1: a fraction of max_steps
        max_length=t.seq_len,
        activation_checkpointing=t.grad_ckpt,
        activation_checkpointing_kwargs={"use_reentrant": False},
        bf16=on_gpu and t.precision == "bf16",
        use_cpu=not on_gpu,
        ddp_backend="gloo" if not on_gpu and int(os.environ.get("WORLD_SIZE", 1)) > 1 else None,
        ddp_find_unused_parameters=False,
        deepspeed=ds_config,
        seed=t.seed,
        data_seed=t.seed,
        logging_steps=1,
        save_strategy="steps" if t.checkpoint_every > 0 else "no",
        save_steps=max(t.checkpoint_every, 1),
        save_total_limit=3,  # >= 2, so the previous complete checkpoint outlives a half-written newer one
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=not verbose(),  # the launcher draws its own bar from metrics.jsonl (ftlaunch/run/progress.py)
        dataloader_num_workers=0,
    )
    if t.objective == "dpo":
        from trl import DPOConfig

        return DPOConfig(**common, beta=t.dpo_beta, precompute_ref_log_probs=t.dpo_reference == "precomputed")
    from trl import SFTConfig

    return SFTConfig(**common, packing=plan.data.packing)


def make_trainer(plan: Plan, args, model, ref_model, tokenizer, train_ds, callbacks):
    peft = lora_config(plan) if plan.training.method in ("lora", "qlora") else None
    if plan.training.objective == "dpo":
        from trl import DPOTrainer

        return DPOTrainer(
            model=model,
            ref_model=ref_model,
            args=args,
            train_dataset=train_ds,
            processing_class=tokenizer,
            peft_config=peft,
            callbacks=callbacks,
        )
    from trl import SFTTrainer

    return SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        processing_class=tokenizer,
        peft_config=peft,
        callbacks=callbacks,
    )


# ---------------------------------------------------------------- 5. run


def prepare_run_dir(plan: Plan) -> Path:
    """Rank 0: create the folders, keep a copy of the plan, drop stale markers and half-written checkpoints."""
    run_dir = Path(plan.run_dir)
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    if not (run_dir / "plan.json").exists():
        write_plan(plan, run_dir / "plan.json")
    for marker in ("preempted", "budget_exhausted"):
        (run_dir / marker).unlink(missing_ok=True)
    for half in checkpoints.incomplete(run_dir / "checkpoints"):
        say(f"removing half-written checkpoint {half}")
        shutil.rmtree(half, ignore_errors=True)
    return run_dir


def param_dtypes(model) -> dict[str, dict[str, int]]:
    """Stored elements per dtype, trainable and frozen, after training (DeepSpeed casts at init): what the
    precision policy produced. A 4-bit weight counts its packed storage elements, not its logical size."""
    out: dict[str, dict[str, int]] = {"trainable": {}, "frozen": {}}
    for p in model.parameters():
        side = out["trainable" if p.requires_grad else "frozen"]
        n = p.ds_numel if hasattr(p, "ds_numel") else p.numel()  # ZeRO-3 keeps the full size in ds_numel
        side[str(p.dtype).removeprefix("torch.")] = side.get(str(p.dtype).removeprefix("torch."), 0) + n
    return out


def write_marker(path: Path, d: dict) -> None:
    atomic_write_text(path, json.dumps(d, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    t0 = time.monotonic()
    stop_request = StopRequest().install()
    args = parse_args(argv)
    try:
        plan = read_plan(args.plan)
        source = check(plan)
        resume_from = checkpoints.pick_resume(Path(plan.run_dir) / "checkpoints", args.resume)
    except (DataError, ValueError, KeyError, TypeError, OSError) as e:
        say(f"error: {e}" if isinstance(e, DataError) else f"error: {args.plan}: {e}", err=True)
        return 2

    rank, world = setup_env(plan)
    is_main = rank == 0
    if world > 1:  # which node each rank landed on (Slurm multi-node jobs; `launch logs` shows it)
        node = os.environ.get("SLURMD_NODENAME") or socket.gethostname()
        print(f"[ftlaunch] node {node} rank {rank}/{world}", flush=True)
    run_dir = Path(plan.run_dir)

    import torch
    from transformers import AutoTokenizer, PrinterCallback, set_seed

    from ftlaunch.recipes import actuals, callbacks
    from ftlaunch.recipes.deepspeed_config import deepspeed_config

    on_gpu = torch.cuda.is_available()
    try:  # a hub dataset is only checked once loaded: still before anything is written
        train_ds = data.load(source, plan.data.format, plan.data.split, plan.training.objective)
    except DataError as e:
        say(f"error: {e}", err=True)
        return 2
    ledger = actuals.Ledger(run_dir, plan.resources.n_gpus, plan.resources.price_per_gpu_hour, t0)
    limit = actuals.budget_limit(plan)
    if is_main:
        prepare_run_dir(plan)
    if limit is not None and ledger.prior_cost >= limit:  # from the file: every rank decides alike
        if is_main:
            ledger.save()
            reason = {"reason": "budget", "spent_usd": ledger.cost_usd(), "limit_usd": limit, "step": None}
            write_marker(run_dir / "budget_exhausted", reason)
        say(f"budget spent: ${ledger.cost_usd():.4f} of ${limit:.4f}; not training")
        return 0

    ds_config = deepspeed_config(plan)
    if ds_config is not None:
        init_deepspeed(on_gpu)
    set_seed(plan.training.seed)
    targs = training_args(plan, on_gpu, ds_config)

    model_path = assets.resolve_model(plan.model.path)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = load_model(plan, model_path, on_gpu)
    ref_model = None
    if plan.training.objective == "dpo" and plan.training.dpo_reference == "model":
        ref_model = load_model(plan, model_path, on_gpu, for_reference=True)

    stop_cb = callbacks.GracefulStop(stop_request, run_dir)
    budget_cb = callbacks.BudgetGuard(ledger, limit)
    metrics_cb = callbacks.MetricsLog(run_dir, ledger.segment)
    sync_every = float(os.environ.get("FTLAUNCH_SYNC_EVERY_S", "30"))
    cbs = [
        callbacks.MarkComplete(),
        stop_cb,
        budget_cb,
        metrics_cb,
        callbacks.TrackingSync(run_dir, sync_every),
    ]
    if os.environ.get("FTLAUNCH_FAULT_KILL_AT_STEP"):
        cbs.append(callbacks.KillAtStep(int(os.environ["FTLAUNCH_FAULT_KILL_AT_STEP"])))
    trainer = make_trainer(plan, targs, model, ref_model, tokenizer, train_ds, cbs)
    trainer.remove_callback(PrinterCallback)  # MetricsLog prints one line per step instead

    if is_main:
        where = f"resuming from {resume_from}" if resume_from else "starting fresh"
        say(f"training {plan.job_name}: {plan.training.method} {plan.training.objective}, {where}")
    monitor = sysmetrics.start(plan, run_dir, resumed=ledger.segment > 1)
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    finally:
        sysmetrics.finish(monitor)
    train_s = time.monotonic() - metrics_cb.t_begin
    precision = {"bf16_autocast": targs.bf16, "stored_params": param_dtypes(trainer.model)}

    if stop_cb.reason:
        stop_reason = "preempted"
    elif budget_cb.reason:
        stop_reason = "budget"
    else:
        stop_reason = "completed"
        trainer.save_model(str(run_dir / "final"))  # collective under ZeRO-3
    memory = actuals.peak_memory()  # collective on GPU
    state = trainer.state
    if is_main:
        ledger.save()
        if stop_reason == "preempted":
            write_marker(run_dir / "preempted", {"reason": stop_cb.reason, "step": state.global_step})
            (run_dir / "STOP").unlink(missing_ok=True)  # consumed: the requeued job must run on
        elif stop_reason == "budget":
            write_marker(run_dir / "budget_exhausted", budget_cb.reason)
        result = actuals.build(
            plan,
            ledger,
            steps=state.global_step,
            log_history=state.log_history,
            tokens_seen=state.num_input_tokens_seen,
            segment_tokens=state.num_input_tokens_seen - metrics_cb.tokens_begin,
            train_s=train_s,
            world_size=world,
            stop_reason=stop_reason,
            resumed_from=str(resume_from) if resume_from else None,
            memory=memory,
        )
        result["precision"] = precision
        actuals.write(run_dir, result)
        say(f"{stop_reason} at step {state.global_step}; actuals in {run_dir / actuals.ACTUALS}")
    callbacks.barrier()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
