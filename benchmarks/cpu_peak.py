"""This machine's CPU as a "device" (ftlaunch/conf/gpu/cpu.yaml): its fp32 matmul rate, and the fixed cost of an eager
training micro-step that no FLOP count sees (Python + kernel dispatch), which is all a tiny model's step is.

python benchmarks/cpu_peak.py     # ~1 min; prints figures; writes benchmarks/results/cpu_peak.json

Dispatch: forward + backward of a LoRA (all-linear, r16, dropout 0.05) Llama at the tiny model's width with
2 and 6 decoder layers, micro-batch 1 x 32 tokens: the slope is the cost per layer per pass, the intercept the
per-micro-step cost outside the layers (embedding, head, loss, autograd). The machine is shared, so each
figure is the minimum of many repeats (the least-disturbed run), with the median and load average beside it.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def matmul_tflops(n: int = 1024, reps: int = 20, rounds: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t) / 1e12)
    return best


def micro_step_s(layers: int, reps: int = 40) -> tuple[float, float]:
    """(min, median) seconds of one LoRA forward + backward at the tiny width with `layers` layers."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftlaunch.recipes.assets import TINY_LLAMA

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**{**TINY_LLAMA, "num_hidden_layers": layers}))
    lora = LoraConfig(
        r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    model = get_peft_model(model, lora).train()
    ids = torch.randint(0, TINY_LLAMA["vocab_size"], (1, 32))
    times = []
    for i in range(reps + 5):
        t = time.perf_counter()
        model(input_ids=ids, labels=ids).loss.backward()
        if i >= 5:
            times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def main() -> None:
    load = os.getloadavg()[0]
    tflops = matmul_tflops()
    rounds = [(micro_step_s(2), micro_step_s(6)) for _ in range(3)]
    lo_min = statistics.median(r[0][0] for r in rounds)
    hi_min = statistics.median(r[1][0] for r in rounds)
    lo_med = statistics.median(r[0][1] for r in rounds)
    hi_med = statistics.median(r[1][1] for r in rounds)
    per_layer_pass = (hi_min - lo_min) / 4 / 2  # 4 more layers, forward + backward
    fixed = lo_min - 2 * 2 * per_layer_pass
    out = {
        "tflops_fp32": round(tflops, 4),
        "threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "n": 1024,
        "micro_step_s": {
            "2_layers": {"min": lo_min, "median": lo_med},
            "6_layers": {"min": hi_min, "median": hi_med},
        },
        "layer_pass_s": per_layer_pass,
        "micro_step_fixed_s": fixed,
        "load_avg_1min_at_start": load,
        "load_avg_1min_at_end": os.getloadavg()[0],
        "note": "dispatch figures: median over 3 rounds of each round's minimum of 40 repeats",
    }
    print(
        f"fp32 matmul 1024x1024: {tflops:.3f} TFLOP/s on {torch.get_num_threads()} threads (load {load:.1f})"
    )
    print(
        f"LoRA micro-step dispatch: {per_layer_pass * 1e3:.2f} ms per layer-pass + {fixed * 1e3:.2f} ms fixed"
    )
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    (res / "cpu_peak.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
