"""Peak memory of OUR training stack at real model sizes, without a GPU: the ground truth for ftlaunch/forecast/memory.py.

    nice -n 10 python benchmarks/own_stack_memory.py            # all configurations not yet in the results
    python benchmarks/own_stack_memory.py --only llama-3-8b     # a subset; --list shows them
    python benchmarks/own_stack_memory.py --fresh --exclude qlora  # re-measure the fake-tensor ones (~20 min)

Each configuration builds the model the way ftlaunch/recipes/train.py does on a GPU (precision policy: LoRA base bf16 with
fp32 adapters via PEFT, full FT fp32 weights + bf16 autocast; SDPA attention; TRL's fused LM head, which is how
SFTTrainer/DPOTrainer compute the loss; non-reentrant activation checkpointing with input grads for PEFT;
AdamW fused, the TrainingArguments default; grad-norm clipping), under torch's FakeTensorMode (no memory is
allocated) with torch.distributed._tools.mem_tracker.MemTracker counting every storage. It runs one step to
create the optimizer states, then measures a second, steady-state step: forward, backward, clip, optimizer step.
The peak grows linearly with the layer count (every per-layer term repeats; embeddings, head and loss do not),
so each configuration is measured at full width with 2 and 4 layers and extrapolated to the real depth.

Results append to benchmarks/results/own_stack_memory.json (one row per configuration, written as each ends),
beside ftlaunch/forecast/memory.py's `allocated` figure for the same setup. Caveats (docs/stack-facts.md): bitsandbytes
cannot run on fake tensors, so QLoRA configurations run for real on CPU at 1 and 2 layers (own_stack_qlora.py,
same MemTracker accounting); two CPU fallbacks whose memory differs from the GPU kernels are swapped for the GPU
behaviour (_gpu_kernels: dropout mask, TRL's fused-head tiles); CUDA context, cuBLAS workspaces and allocator
fragmentation are not tensors and are not in `allocated` either. MoE architectures run transformers' grouped_mm
experts with PEFT's LoRA on the stacked expert tensors (no dropout: PEFT's ParamWrapper refuses it); MoE full
fine-tuning cannot run here (grouped_mm takes bf16 only, the recipe's fp32 master weights reach it unautocast).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ftlaunch.config.build import model_spec  # noqa: E402
from ftlaunch.forecast.memory import GiB, peak_memory  # noqa: E402
from ftlaunch.forecast.params import count_params, lora_uses_parameter_targets  # noqa: E402
from ftlaunch.forecast.setup import Setup  # noqa: E402

RESULTS = HERE / "results" / "own_stack_memory.json"
# ftlaunch/conf/model name prefix -> transformers model_type (the architecture class from_pretrained would pick).
MODEL_TYPES = {"llama": "llama", "mistral": "mistral", "qwen2": "qwen2", "gemma-2": "gemma2", "phi-3": "phi3"}
# transformers 5.24 refuses SDPA for Gemma-2 ("does not support an attention implementation through
# scaled_dot_product_attention"): the recipe (and this benchmark) must run it with eager attention.
EAGER_ONLY = ("gemma2",)
# MoE families: every expert resident as stacked 3-D tensors (transformers 5), routed with grouped_mm (the default
# experts implementation on SM80+ GPUs, transformers/integrations/moe.py).
MOE_TYPES = ("olmoe", "qwen3_moe", "mixtral")
MEASURED_LAYERS = (2, 4)
LORA_DROPOUT = 0.05  # ftlaunch/conf/method/lora.yaml
DEBUG = False


def model_type(name: str) -> str:
    conf = HERE.parent / "ftlaunch" / "conf" / "model" / f"{name}.yaml"
    t = load_conf(name).get("model_type") if conf.exists() else None
    if t in MOE_TYPES:
        return t
    for prefix, t in MODEL_TYPES.items():
        if name.startswith(prefix):
            return t
    raise ValueError(f"no transformers model_type known for {name}")


def lora_dropout(arch: dict) -> float:
    """PEFT's ParamWrapper (LoRA on stacked expert tensors) refuses dropout, so the planner plans MoE LoRA without
    it (ftlaunch/config/build.py job_from_config) and the recipe trains without it."""
    return 0.0 if lora_uses_parameter_targets(model_spec(arch), "all-linear") else LORA_DROPOUT


def attention(arch: dict) -> str:
    return "eager" if model_type(arch["name"]) in EAGER_ONLY else "sdpa"


def load_conf(name: str) -> dict:
    import yaml

    return yaml.safe_load((HERE.parent / "ftlaunch" / "conf" / "model" / f"{name}.yaml").read_text())


def hf_config(arch: dict, layers: int):
    from transformers import AutoConfig

    kw = dict(
        hidden_size=arch["hidden_size"],
        intermediate_size=arch["intermediate_size"],
        num_hidden_layers=layers,
        num_attention_heads=arch["num_attention_heads"],
        num_key_value_heads=arch["num_key_value_heads"],
        vocab_size=arch["vocab_size"],
        max_position_embeddings=arch["max_position_embeddings"],
        tie_word_embeddings=arch.get("tie_word_embeddings", False),
    )
    if arch.get("head_dim"):
        kw["head_dim"] = arch["head_dim"]
    t = model_type(arch["name"])
    if t == "llama":
        kw["attention_bias"] = arch.get("attention_bias", False)
    if t in ("mistral", "qwen2", "gemma2"):
        kw["sliding_window"] = None if t != "gemma2" else 4096
    if t == "qwen2":
        kw["use_sliding_window"] = False
    if t in MOE_TYPES:
        kw["num_experts_per_tok"] = arch["experts_per_token"]
        kw["num_local_experts" if t == "mixtral" else "num_experts"] = arch["num_experts"]
        kw["output_router_logits"] = (
            False  # as in the three config.json files; the recipe leaves it (no aux loss)
        )
        if t == "mixtral":
            kw["sliding_window"] = None
        if t == "qwen3_moe":
            kw["moe_intermediate_size"] = arch["moe_intermediate_size"]
            kw["decoder_sparse_step"], kw["mlp_only_layers"] = 1, []
    cfg = AutoConfig.for_model(t, **kw)
    cfg.use_cache = False
    return cfg


class TrainableMemTracker:
    """MemTracker whose gradient hooks go on trainable parameters only (frozen ones cannot take hooks)."""

    @staticmethod
    def make():
        import torch
        from torch.distributed._tools.mem_tracker import MemTracker, _MemRefType

        class _T(MemTracker):
            def _track_module_params_and_buffers(self, module, install_grad_hooks=True):
                def _grad_hook(grad):
                    self._update_and_maybe_create_winfos(grad, _MemRefType.GRAD)

                param_memory = 0
                for param in module.parameters():
                    winfos = self._update_and_maybe_create_winfos(param, _MemRefType.PARAM)
                    param_memory += sum(w.mem_consumed for w in winfos)
                    if param.grad is not None:
                        self._update_and_maybe_create_winfos(param.grad, _MemRefType.GRAD)
                    if (
                        param.requires_grad
                        and install_grad_hooks
                        and param not in self._param_to_grad_hook_handles
                    ):
                        self._param_to_grad_hook_handles[param] = (
                            param.register_hook(_grad_hook),
                            param.register_post_accumulate_grad_hook(lambda p: _grad_hook(p.grad)),
                        )
                buffer_memory = 0
                for buffer in module.buffers():
                    winfos = self._update_and_maybe_create_winfos(buffer, _MemRefType.BUFFER)
                    buffer_memory += sum(w.mem_consumed for w in winfos)
                return param_memory, buffer_memory

        del torch
        return _T()


@contextmanager
def _gpu_kernels():
    """Swap the two CPU fallbacks whose memory differs from what runs on a GPU, for the GPU's behaviour:
    - dropout: on CUDA torch uses the fused native_dropout (a 1-byte bool mask); the CPU composite keeps a
      float noise tensor of the input's size (aten/src/ATen/native/Dropout.cpp, is_fused_kernel_acceptable).
    - TRL's fused LM head: on a GPU Triton kernels fold each logits tile in registers; the CPU fallback
      (_forward_tile/_backward_tile, _addmm_fp32) makes fp32 copies of the tile and of each weight chunk. Fake tensors hold no values, so the
      Triton path's memory is reproduced by folding nothing (forward) and writing the tile in place (backward).
    """
    import torch
    import torch.nn.functional as F
    from trl.kernels import chunked_logprob as cl

    saved = F.dropout, cl._forward_tile, cl._backward_tile, cl._addmm_fp32

    def dropout(x, p=0.5, training=True, inplace=False):
        return torch.native_dropout(x, p, training)[0] if training and p > 0 else x

    F.dropout = dropout
    cl._forward_tile = lambda tile, *a, **k: None
    cl._backward_tile = lambda tile, *a, **k: tile.zero_()
    cl._addmm_fp32 = lambda acc, a, b: (
        None
    )  # CUDA: addmm(out_dtype=float32) in place; CPU: fp32 copies of a, b
    try:
        yield
    finally:
        F.dropout, cl._forward_tile, cl._backward_tile, cl._addmm_fp32 = saved


@contextmanager
def _no_adapter_casts():
    import torch
    from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer

    # Everything is already on the one (fake) CPU device, adapters in fp32: every cast would be a no-op.
    saved = (
        BaseTunerLayer._move_adapter_to_device_of_base_layer,
        BaseTuner._cast_adapter_dtype,
        torch.nn.Module.to,
    )
    BaseTunerLayer._move_adapter_to_device_of_base_layer = lambda self, *a, **k: None
    BaseTuner._cast_adapter_dtype = lambda self, *a, **k: None
    torch.nn.Module.to = lambda self, *a, **k: self
    try:
        yield
    finally:
        (
            BaseTunerLayer._move_adapter_to_device_of_base_layer,
            BaseTuner._cast_adapter_dtype,
            torch.nn.Module.to,
        ) = saved


def train_step(model, ids, labels, objective, params, opt, tracker=None, autocast=None) -> None:
    """One training step as the recipe's trainer runs it: forward with TRL's fused LM head (plus the DPO loss
    over the reference's log-probs), backward, clipping, the fused AdamW step."""
    import torch

    with autocast or nullcontext():
        ref = None
        if objective == "dpo":
            # TRL runs the reference (base with the adapter off, no grad) after the policy forward;
            # MemTracker cannot see one module run twice in a step, so it runs first here and its
            # transient (one layer + one logits tile, freed at once) is not stacked on the policy's.
            with torch.no_grad(), model.disable_adapter():
                ref = model(input_ids=ids, labels=labels, fused_lm_head=True).log_probs.sum(1)
            if tracker is not None:
                tracker.reset_mod_stats()
        out = model(input_ids=ids, labels=labels, fused_lm_head=True)
        loss = out.loss
        if ref is not None:
            c, r = (out.log_probs.sum(1) - ref).chunk(2)
            loss = -torch.nn.functional.logsigmoid(0.1 * (c - r)).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


def measure(arch: dict, layers: int, method: str, objective: str, seq: int, mb: int, ckpt: bool) -> dict:
    """Peak bytes of one steady-state training step with `layers` decoder layers."""
    import torch
    from peft import LoraConfig, get_peft_model
    from torch._subclasses.fake_tensor import FakeTensorMode
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    cfg = hf_config(arch, layers)
    weights_dtype = (
        torch.bfloat16 if method == "lora" else torch.float32
    )  # ftlaunch/recipes/train.py load_model, on GPU
    outputs = (
        ("log_probs", "entropy", "is_top1")
        if objective == "sft"
        else ("log_probs", "entropy", "mean_logits", "is_top1")
    )
    sequences = mb * (2 if objective == "dpo" else 1)
    prev = torch.get_default_dtype()
    with FakeTensorMode(allow_non_fake_inputs=True), _gpu_kernels():
        torch.set_default_dtype(weights_dtype)
        try:
            model = AutoModelForCausalLM.from_config(cfg, attn_implementation=attention(arch))
        finally:
            torch.set_default_dtype(prev)
        add_fused_lm_head(model, outputs=outputs)
        if method == "lora":
            # PEFT creates the adapters, then casts them with Module.to (autocast_adapter_dtype: fp32 beside a
            # bf16 base); Module.to cannot swap fake parameters, so create them fp32 directly and skip the casts.
            lora = LoraConfig(
                r=16,
                lora_alpha=32,
                lora_dropout=lora_dropout(arch),
                target_modules="all-linear",
                task_type="CAUSAL_LM",
            )
            with _no_adapter_casts():
                torch.set_default_dtype(torch.float32)
                model = get_peft_model(model, lora)
        if ckpt:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if method == "lora":
                model.enable_input_require_grads()
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-5, fused=True)
        ids = torch.randint(0, cfg.vocab_size, (sequences, seq))
        labels = ids.clone()
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if method == "full" else nullcontext()

        train_step(model, ids, labels, objective, params, opt, autocast=autocast)  # creates optimizer states
        tracker = TrainableMemTracker.make()
        tracker.track_external(model, opt)
        with tracker:
            train_step(model, ids, labels, objective, params, opt, tracker, autocast)
        snap = tracker.get_tracker_snapshot("peak")
        peak = max(v["Total"] for v in snap.values())
        if DEBUG:
            print({str(k): {str(t): b / 2**20 for t, b in v.items()} for k, v in snap.items()}, flush=True)
    return {"peak": float(peak)}


CONFIGS: list[tuple[str, str, str, int, int, bool]] = [
    # (model, method, objective, seq_len, micro_batch, grad_ckpt)
    ("llama-3-8b", "lora", "sft", 2048, 1, True),
    ("llama-3-8b", "lora", "sft", 2048, 1, False),
    ("llama-3-8b", "lora", "sft", 8192, 1, True),
    ("llama-3-8b", "lora", "sft", 512, 8, False),
    ("llama-3-8b", "lora", "dpo", 1024, 2, True),
    ("llama-3-8b", "full", "sft", 2048, 1, True),
    ("llama-3-8b", "full", "sft", 1024, 2, False),
    ("mistral-7b", "lora", "sft", 4096, 1, True),
    ("mistral-7b", "lora", "sft", 1024, 4, False),
    ("mistral-7b", "lora", "dpo", 2048, 1, True),
    ("mistral-7b", "full", "sft", 4096, 1, True),
    ("qwen2.5-7b", "lora", "sft", 2048, 2, True),
    ("qwen2.5-7b", "lora", "sft", 1024, 1, False),
    ("qwen2.5-7b", "lora", "dpo", 1024, 1, True),
    ("qwen2.5-7b", "full", "sft", 2048, 1, True),
    ("gemma-2-9b", "lora", "sft", 2048, 1, True),
    ("gemma-2-9b", "lora", "sft", 1024, 2, False),
    ("gemma-2-9b", "lora", "dpo", 1024, 1, True),
    ("phi-3-mini", "lora", "sft", 4096, 1, True),
    ("phi-3-mini", "lora", "sft", 2048, 4, False),
    ("phi-3-mini", "full", "sft", 2048, 2, True),
    ("phi-3-mini", "lora", "dpo", 2048, 2, True),
    ("llama-2-13b", "lora", "sft", 4096, 1, True),
    ("llama-2-13b", "lora", "sft", 2048, 2, False),
    ("llama-2-13b", "full", "sft", 2048, 1, True),
    ("llama-2-13b", "lora", "dpo", 1024, 2, True),
    ("llama-3-70b", "lora", "sft", 2048, 1, True),
    ("llama-3-70b", "lora", "sft", 4096, 2, True),
    ("llama-3-70b", "lora", "sft", 1024, 1, False),
    ("llama-3-70b", "lora", "dpo", 1024, 1, True),
    ("qwen2.5-72b", "lora", "sft", 2048, 1, True),
    ("qwen2.5-72b", "lora", "sft", 8192, 1, True),
    ("qwen2.5-0.5b", "lora", "sft", 2048, 8, False),
    ("qwen2.5-0.5b", "full", "sft", 2048, 4, True),
    ("qwen2.5-0.5b", "full", "sft", 1024, 8, False),
    ("qwen2.5-0.5b", "lora", "dpo", 1024, 4, False),
    ("llama-2-7b", "lora", "sft", 4096, 1, True),
    ("llama-2-7b", "lora", "sft", 1024, 8, True),
    ("llama-2-7b", "full", "sft", 512, 4, False),
    ("llama-2-7b", "lora", "dpo", 512, 4, False),
    ("llama-3.1-8b", "lora", "sft", 8192, 2, True),
    ("mistral-7b", "lora", "sft", 512, 8, True),
    # QLoRA: real tensors on CPU at 1 and 2 layers (minutes each; own_stack_qlora.py)
    ("llama-3-8b", "qlora", "sft", 1024, 1, True),
    ("llama-3-8b", "qlora", "sft", 512, 2, False),
    ("qwen2.5-7b", "qlora", "sft", 1024, 1, True),
    ("mistral-7b", "qlora", "dpo", 512, 1, True),
    ("phi-3-mini", "qlora", "sft", 2048, 1, True),
    ("qwen2.5-0.5b", "qlora", "sft", 2048, 4, False),
    ("olmoe-1b-7b", "qlora", "sft", 1024, 1, True),
    # MoE: PEFT puts LoRA on the stacked expert tensors (no dropout), grouped_mm routing
    ("olmoe-1b-7b", "lora", "sft", 2048, 1, True),
    ("olmoe-1b-7b", "lora", "sft", 1024, 4, False),
    ("olmoe-1b-7b", "lora", "dpo", 1024, 2, True),
    # Full FT of an MoE is not here: fp32 master weights reach grouped_mm unautocast (transformers casts the input to
    # the weight's dtype) and torch's grouped_mm takes bf16 only ("Expected inputs of BF16 type"), on fake tensors.
    ("qwen3-30b-a3b", "lora", "sft", 2048, 1, True),
    ("qwen3-30b-a3b", "lora", "sft", 4096, 2, True),
    ("qwen3-30b-a3b", "lora", "sft", 1024, 1, False),
    ("mixtral-8x7b", "lora", "sft", 2048, 1, True),
    ("mixtral-8x7b", "lora", "sft", 1024, 1, False),
]


def _round_robin(configs: list[tuple]) -> list[tuple]:
    """One configuration of each architecture in turn, so an interrupted run still spans them all."""
    by_model: dict[str, list[tuple]] = {}
    for c in configs:
        by_model.setdefault(c[0], []).append(c)
    out = []
    while any(by_model.values()):
        for cs in by_model.values():
            if cs:
                out.append(cs.pop(0))
    return out


def key(c: tuple) -> str:
    m, meth, obj, seq, mb, ck = c
    return f"{m}/{meth}/{obj}/s{seq}/mb{mb}/{'ckpt' if ck else 'nockpt'}"


def predicted(arch: dict, method: str, objective: str, seq: int, mb: int, ckpt: bool) -> float:
    m = model_spec(arch)
    s = Setup(method=method, objective=objective, n_gpus=1, zero=0, offload_optimizer=False, offload_params=False,
              micro_batch=mb, seq_len=seq, grad_ckpt=ckpt, lora_dropout=lora_dropout(arch), attention=attention(arch))  # fmt: skip
    return peak_memory(m, count_params(m), s).allocated


def run_one(c: tuple) -> dict:
    name, method, objective, seq, mb, ckpt = c
    arch = load_conf(name)
    t = time.perf_counter()
    if method == "qlora":  # bitsandbytes cannot run on fake tensors: real tensors on CPU (own_stack_qlora.py)
        import own_stack_qlora

        layers = own_stack_qlora.LAYERS
        lo, hi = (
            own_stack_qlora.measure(arch, n, objective, seq, mb, ckpt, lora_dropout(arch)) for n in layers
        )
    else:
        layers = MEASURED_LAYERS
        lo, hi = (measure(arch, n, method, objective, seq, mb, ckpt) for n in layers)
    per_layer = (hi["peak"] - lo["peak"]) / (layers[1] - layers[0])
    L = arch["num_hidden_layers"]
    measured = lo["peak"] + (L - layers[0]) * per_layer
    pred = predicted(arch, method, objective, seq, mb, ckpt)
    return {
        "config": key(c),
        "model": name,
        "method": method,
        "objective": objective,
        "seq_len": seq,
        "micro_batch": mb,
        "grad_ckpt": ckpt,
        "layers": L,
        "measured_layers": list(layers),
        "tensors": "real (CPU)" if method == "qlora" else "fake",
        "peak_lo_layers_gib": lo["peak"] / GiB,
        "peak_hi_layers_gib": hi["peak"] / GiB,
        "per_layer_gib": per_layer / GiB,
        "measured_gib": measured / GiB,
        "predicted_allocated_gib": pred / GiB,
        "error_pct": 100 * (pred - measured) / measured,
        "seconds": time.perf_counter() - t,
    }


def summarize(rows: list[dict]) -> dict:
    errs = [abs(r["error_pct"]) for r in rows]
    if not errs:
        return {}
    out = {"n": len(errs), "median_abs_error_pct": statistics.median(errs), "max_abs_error_pct": max(errs)}
    for method in sorted({r["method"] for r in rows}):
        e = [abs(r["error_pct"]) for r in rows if r["method"] == method]
        out[method] = {"n": len(e), "median_abs_error_pct": statistics.median(e), "max_abs_error_pct": max(e)}
    return out


def save(rows: list[dict], extra: dict) -> None:
    RESULTS.parent.mkdir(exist_ok=True)
    data = {"rows": rows, "summary": summarize(rows), **extra}
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="substring of the configuration key")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--exclude", default="", help="substring of configuration keys to leave out")
    ap.add_argument(
        "--fresh", action="store_true", help="re-measure the selected configurations already measured"
    )
    ap.add_argument("--reprice", action="store_true", help="recompute predictions/errors only (no measuring)")
    a = ap.parse_args(argv)

    def selected(k: str) -> bool:
        return a.only in k and not (a.exclude and a.exclude in k)

    configs = _round_robin([c for c in CONFIGS if selected(key(c))])
    if a.list:
        print("\n".join(key(c) for c in configs))
        return
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"rows": []}
    rows = [r for r in old.get("rows", []) if not (a.fresh and selected(r["config"]))]
    extra = {k: v for k, v in old.items() if k not in ("rows", "summary")}
    if a.reprice:
        for r in rows:
            pred = predicted(load_conf(r["model"]), r["method"], r["objective"], r["seq_len"], r["micro_batch"],
                             r["grad_ckpt"])  # fmt: skip
            r["predicted_allocated_gib"] = pred / GiB
            r["error_pct"] = 100 * (pred / GiB - r["measured_gib"]) / r["measured_gib"]
        save(rows, extra)
    else:
        done = {r["config"] for r in rows}
        for c in configs:
            if key(c) in done:
                continue
            try:
                r = run_one(c)
            except Exception as e:  # one architecture failing must not lose the others' rows
                print(f"{key(c)}: FAILED {type(e).__name__}: {e}", flush=True)
                continue
            rows.append(r)
            save(rows, extra)
            print(f"{r['config']:<40} measured {r['measured_gib']:7.2f} GiB  planner {r['predicted_allocated_gib']:7.2f}"
                  f"  {r['error_pct']:+6.1f}%  ({r['seconds']:.0f} s)", flush=True)  # fmt: skip
    s = summarize(rows)
    if s:
        print(
            f"{s['n']} configurations: median |error| {s['median_abs_error_pct']:.1f}%, max {s['max_abs_error_pct']:.1f}%"
        )


if __name__ == "__main__":
    main()
