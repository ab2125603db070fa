"""QLoRA peak memory of OUR stack at real width, measured for real on CPU (bitsandbytes cannot run on fake tensors).

Run through benchmarks/own_stack_memory.py (its `qlora` configurations); this module holds the measurement.

The model is built the way ftlaunch/recipes/train.py builds it: a random-initialised checkpoint of the architecture at full
width is saved, then loaded by ftlaunch.recipes.train.load_model (BitsAndBytesConfig nf4 + double quant, bf16 compute and
quant storage: the linears are quantized while loading, as on a GPU), given the LoRA of ftlaunch.recipes.train.lora_config
by PEFT's get_peft_model, and prepared as TRL's SFTTrainer prepares a quantized model (no
prepare_model_for_kbit_training in trl 1.16: input grads for checkpointing, trainable adapters cast to bf16, fused
LM head). The optimizer is fused AdamW (TrainingArguments' default) with grad-norm clipping, as in
own_stack_memory.py.

How the peak is measured, and why: torch's MemTracker (torch.distributed._tools.mem_tracker) in real mode, the
same accounting as the fake-tensor benchmark: it sums the storages of live tensors (parameters, buffers,
gradients, activations, optimizer states, temporaries), seen through a TorchDispatchMode, so the figure is what
torch.cuda.max_memory_allocated counts on a GPU and is independent of the CPU allocator, the Python heap and the
page cache that make RSS noisy. The quantization constants (absmax, nested absmax, code books) are not parameters
or buffers: they are handed to the tracker explicitly.

CPU vs GPU: on CPU the recipe runs without bf16 autocast (TrainingArguments bf16=False); everything the QLoRA
model computes is bf16 anyway (compute dtype, storage, adapters), so autocast changes no tensor size. bitsandbytes
trains on CPU through the same MatMul4Bit autograd function as on CUDA (dequantize the weight to bf16, matmul,
save nothing of the input); the only CPU-only path (packing_format_for_cpu) is inference-only. Dropout and
TRL's fused head use their GPU memory behaviour (own_stack_memory._gpu_kernels). Not in the figure: temporaries
allocated inside bitsandbytes' C kernels (the CUDA dequantize writes its bf16 output directly).

The optimizer states are created by a first step on a short sequence (they do not depend on it); the measured
step is the second. Measured at 1 and 2 decoder layers and extrapolated linearly to the real depth, as the
fake-tensor path does with 2 and 4.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

LAYERS = (1, 2)
WARMUP_SEQ = 16  # the first step only creates the optimizer states


def _plan(arch: dict, dropout: float) -> SimpleNamespace:
    """The plan.json fields ftlaunch.recipes.train.load_model and lora_config read (ftlaunch/conf/method/qlora.yaml values)."""
    training = SimpleNamespace(
        method="qlora", precision="bf16", attention="sdpa", lora_r=16, lora_alpha=32, lora_dropout=dropout,
        lora_targets="all-linear",
    )  # fmt: skip
    return SimpleNamespace(
        training=training,
        resources=SimpleNamespace(zero_stage=0),
        model=SimpleNamespace(arch={"model_type": arch.get("model_type")}),
    )


def _quant_state_tensors(model) -> list:
    """Every tensor of every bitsandbytes QuantState (absmax, code, nested absmax/code, offset)."""
    import torch

    out, seen = [], set()

    def walk(qs) -> None:
        if qs is None or id(qs) in seen:
            return
        seen.add(id(qs))
        for v in vars(qs).values():
            if isinstance(v, torch.Tensor):
                out.append(v)
            elif type(v).__name__ == "QuantState":
                walk(v)

    for p in model.parameters():
        walk(getattr(p, "quant_state", None))
    return out


def save_random_checkpoint(cfg, out: Path) -> None:
    """A bf16 checkpoint of the architecture with random weights (the recipe quantizes while loading)."""
    import torch
    from transformers import AutoModelForCausalLM

    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = AutoModelForCausalLM.from_config(cfg)
    finally:
        torch.set_default_dtype(prev)
    model.save_pretrained(out)
    del model


def measure(arch: dict, layers: int, objective: str, seq: int, mb: int, ckpt: bool, dropout: float) -> dict:
    """Peak bytes of one steady-state QLoRA training step with `layers` decoder layers, real tensors on CPU."""
    import own_stack_memory as osm
    import torch
    from peft import get_peft_model
    from trl.trainer.utils import add_fused_lm_head

    from ftlaunch.recipes.train import load_model, lora_config

    cfg = osm.hf_config(arch, layers)
    plan = _plan(arch, dropout)
    tmp = Path(tempfile.mkdtemp(prefix="qlora-ckpt-"))
    try:
        save_random_checkpoint(cfg, tmp)
        model = load_model(plan, str(tmp), on_gpu=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    model.config.use_cache = False
    outputs = ("log_probs", "entropy", "is_top1") + (("mean_logits",) if objective == "dpo" else ())
    add_fused_lm_head(model, outputs=outputs)
    model = get_peft_model(model, lora_config(plan))
    if ckpt:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    for p in model.parameters():  # trl SFTTrainer/DPOTrainer.__init__ for a quantized model
        if p.requires_grad:
            p.data = p.data.to(torch.bfloat16)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, fused=True)
    sequences = mb * (2 if objective == "dpo" else 1)

    def step(length: int, tracker=None) -> None:
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(0, cfg.vocab_size, (sequences, length), generator=g)
        osm.train_step(model, ids, ids, objective, params, opt, tracker)

    with osm._gpu_kernels():
        step(WARMUP_SEQ)
        tracker = osm.TrainableMemTracker.make()
        tracker.track_external(model, opt, *_quant_state_tensors(model))
        with tracker:
            step(seq, tracker)
    snap = tracker.get_tracker_snapshot("peak")
    peak = max(v["Total"] for v in snap.values())
    quant = sum(t.untyped_storage().nbytes() for t in _quant_state_tensors(model))
    packed = sum(p.untyped_storage().nbytes() for p in model.parameters() if hasattr(p, "quant_state"))
    return {"peak": float(peak), "nf4_weight_bytes": float(packed), "quant_state_bytes": float(quant)}
