"""Measure what the recipe really uses, per method, next to what the planner predicts.

    python benchmarks/gpu_validation.py                      # CPU: tiny model, a few steps per method
    python benchmarks/gpu_validation.py --model llama-3-8b --seq-len 2048 --steps 6   # on a GPU node
    python benchmarks/gpu_validation.py --predict predictions.json

For each method (lora, qlora, full, dpo) it writes a plan.json for a random-weight model of the chosen
architecture (HF config facts from ftlaunch/conf/model/<name>.yaml, or the built-in tiny shape), runs the real recipe
(`python -m ftlaunch.recipes.train`) for a few steps, and reads back the recipe's actuals.json and metrics.jsonl:
peak memory (CUDA max allocated / reserved on GPU, peak RSS on CPU) and tokens/s per device (median over
steps after the first). SFT methods train on packed text (best-fit packing), so sequences come close to
seq_len tokens.

Predictions, printed beside the measurements, come from the planner (`ftlaunch.forecast.predict.predict(plan)`)
unless a --predict file gives them for a method:
a JSON file {"lora": {"peak_mem_gib": 1.2, "tokens_per_s_per_gpu": 3400}, "qlora": {...}, ...}.
Results go to benchmarks/results/gpu_validation-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ftlaunch.contract.plan import (  # noqa: E402
    ClusterRef,
    DataRef,
    Forecast,
    ModelRef,
    Plan,
    Resources,
    Training,
    write_plan,
)
from ftlaunch.recipes import assets  # noqa: E402

METHODS = ("lora", "qlora", "full", "dpo")
ARCH_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "max_position_embeddings",
    "tie_word_embeddings",
    "attention_bias",
)


def arch_facts(name: str) -> dict:
    """HF config facts: the built-in tiny shape, or the planner's ftlaunch/conf/model/<name>.yaml."""
    if name == "tiny":
        return dict(assets.TINY_LLAMA)
    import yaml

    d = yaml.safe_load((REPO / "ftlaunch" / "conf" / "model" / f"{name}.yaml").read_text())
    return {k: d[k] for k in ARCH_KEYS if k in d}


def random_model(name: str, facts: dict, on_gpu: bool) -> str:
    """A from_pretrained() folder with random weights of this shape (cached), with the project tokenizer."""
    if name == "tiny":
        return str(assets.tiny_llama_path())
    out = assets.cache_dir() / f"random-{name}"
    if (out / "config.json").is_file():
        return str(out)
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = assets.build_tokenizer()
    cfg = LlamaConfig(
        **facts, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    with torch.device("cuda" if on_gpu else "cpu"):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)


# torch.cuda.get_device_name() -> GPU catalog key (ftlaunch/conf/gpu/); first match wins, so PCIe before the SXM default.
DEVICE_NAMES = (
    ("H200", "h200"), ("H100 PCIe", "h100-pcie"), ("H100", "h100-sxm"), ("A100-SXM4-80GB", "a100-80gb"),
    ("A100 80GB", "a100-80gb"), ("A100", "a100-40gb"), ("L40S", "l40s"), ("L4", "l4"), ("A10G", "a10g"),
    ("RTX 4090", "rtx-4090"), ("V100", "v100-32gb"), ("MI300X", "mi300x"),
)  # fmt: skip


def catalog_gpu(device: str, on_gpu: bool) -> str | None:
    """The catalog key for this device, so the forecast is for the GPU that is measured; None if unknown."""
    if not on_gpu:
        return "cpu"
    return next((key for part, key in DEVICE_NAMES if part.lower() in device.lower()), None)


def make_plan(run_dir: Path, method: str, model_name: str, model_path: str, facts: dict, a) -> Path:
    dpo = method == "dpo"
    data = (
        DataRef("arith-pref", "builtin:arith-pref", "preference", "train", 256, 40, False)
        if dpo
        else DataRef("arith-text", "builtin:arith-text", "text", "train", 512, 16, True)
    )
    plan = Plan(
        job_name=f"gpu-validation-{method}",
        model=ModelRef(model_name, model_path, 0, facts),
        data=data,
        training=Training(
            method="lora" if dpo else method,
            objective="dpo" if dpo else "sft",
            seq_len=a.seq_len,
            epochs=1.0,
            micro_batch=a.micro_batch,
            grad_accum=1,
            global_batch=a.micro_batch,
            max_steps=a.steps,
            grad_ckpt=a.grad_ckpt,
            learning_rate=1e-4 if method == "full" else 1e-3,
            lora_r=16,
            lora_alpha=32,
            lora_dropout=0.0,
            lora_targets="all-linear",
            dpo_beta=0.1,
            dpo_reference="adapter",
            checkpoint_every=0,
        ),
        resources=Resources(a.gpu, 1, 1, 1, 0, False, False, 0.0),
        forecast=Forecast(0.0, {}, 0.0, 0.0, 0.0, 0.0, 0.0),
        budget_usd=None,
        cluster=ClusterRef(name="local", executor="local"),
        run_dir=str(run_dir),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    write_plan(plan, run_dir / "plan.json")
    return run_dir / "plan.json"


def planner_prediction(plan_path: Path, method: str, predict_file: dict) -> dict | None:
    """The --predict file's entry when given for this method, else the planner's ftlaunch.forecast.predict.predict."""
    if method in predict_file:
        return {**predict_file[method], "source": "--predict"}
    from ftlaunch.config.build import catalog_gpu
    from ftlaunch.contract.plan import read_plan
    from ftlaunch.forecast.predict import predict

    plan = read_plan(plan_path)
    p = predict(plan, catalog_gpu(plan.resources.gpu))
    return {**p, "source": "ftlaunch.forecast.predict.predict"}


def measure(plan_path: Path, timeout: float) -> dict:
    run_dir = plan_path.parent
    t = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "ftlaunch.recipes.train", "--plan", str(plan_path), "--resume", "never"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")},
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        oom = "out of memory" in proc.stderr.lower()
        return {"ok": False, "error": "OOM" if oom else " | ".join(tail), "wall_s": time.monotonic() - t}
    act = json.loads((run_dir / "actuals.json").read_text())
    steps = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    later = [s["tokens_per_s"] for s in steps[1:]] or [act["tokens_per_s"]]
    tps = statistics.median(later) / max(act["world_size"], 1)
    return {
        "ok": True,
        "peak_mem_gib": act["peak_mem_gb"],
        "peak_mem_reserved_gib": act["peak_mem_reserved_gb"],
        "peak_mem_source": act["peak_mem_source"],
        "tokens_per_s_per_gpu": tps,
        "steps": act["steps"],
        "loss_first": act["loss_first"],
        "final_loss": act["final_loss"],
        "precision": act.get("precision"),
        "wall_s": time.monotonic() - t,
    }


def _fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def main(argv: list[str] | None = None) -> int:
    import torch

    on_gpu = torch.cuda.is_available()
    device = torch.cuda.get_device_name() if on_gpu else "cpu"
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--model", default="tiny", help="tiny, or a ftlaunch/conf/model/<name>.yaml name (e.g. llama-3-8b)"
    )
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=2048 if on_gpu else 64)
    ap.add_argument("--micro-batch", type=int, default=1 if on_gpu else 2)
    ap.add_argument("--grad-ckpt", action="store_true", help="activation checkpointing on")
    ap.add_argument(
        "--predict",
        type=Path,
        help="JSON predictions per method (used when ftlaunch.forecast.predict has none)",
    )
    ap.add_argument(
        "--out", type=Path, help="results JSON (default benchmarks/results/gpu_validation-<device>.json)"
    )
    ap.add_argument("--runs", type=Path, help="keep the run folders here (default: a temporary folder)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--gpu", help="GPU catalog key of this device (default: recognised from its name)")
    a = ap.parse_args(argv)
    a.gpu = a.gpu or catalog_gpu(device, on_gpu)
    if a.gpu is None:
        print(f"error: device {device!r} is not recognised: pass --gpu <GPU catalog key>", file=sys.stderr)
        return 2

    slug = re.sub(r"[^a-z0-9]+", "-", device.lower()).strip("-")
    out = a.out or REPO / "benchmarks" / "results" / f"gpu_validation-{slug}.json"
    predict_file = json.loads(a.predict.read_text()) if a.predict else {}
    facts = arch_facts(a.model)
    model_path = random_model(a.model, facts, on_gpu)
    runs = a.runs or Path(tempfile.mkdtemp(prefix="gpu-validation-"))

    rows = []
    print(
        f"device {device}; model {a.model} (random weights); seq_len {a.seq_len}; micro_batch {a.micro_batch}"
    )
    print(f"{'method':7} {'peak GiB':>9} {'pred GiB':>9} {'tok/s/gpu':>10} {'pred tok/s':>10}  note")
    for method in a.methods.split(","):
        plan_path = make_plan(runs / method, method, a.model, model_path, facts, a)
        m = measure(plan_path, a.timeout)
        pred = planner_prediction(plan_path, method, predict_file)
        rows.append({"method": method, "measured": m, "predicted": pred})
        pg = pred.get("peak_mem_gib") if pred else None
        pt = pred.get("tokens_per_s_per_gpu") if pred else None
        note = "" if m["ok"] else m["error"][:80]
        if m["ok"]:
            note = f"loss {m['loss_first']:.3f} -> {m['final_loss']:.3f}"
        print(
            f"{method:7} {_fmt(m.get('peak_mem_gib'), '9.3f')} {_fmt(pg, '9.3f')} "
            f"{_fmt(m.get('tokens_per_s_per_gpu'), '10.0f')} {_fmt(pt, '10.0f')}  {note}",
            flush=True,
        )
    result = {
        "device": device,
        "model": a.model,
        "arch": facts,
        "seq_len": a.seq_len,
        "micro_batch": a.micro_batch,
        "steps": a.steps,
        "grad_ckpt": a.grad_ckpt,
        "torch": torch.__version__,
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    if a.runs is None:
        shutil.rmtree(runs, ignore_errors=True)
    return 0 if all(r["measured"]["ok"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
