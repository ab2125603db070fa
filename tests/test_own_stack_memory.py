"""The planner's memory model against our own training stack (benchmarks/own_stack_memory.py): small shapes of
real architectures, one training step each, 2 decoder layers at full width under FakeTensorMode + MemTracker
(LoRA, full fine-tuning, an MoE with LoRA on its stacked experts) and QLoRA for real on CPU with 1 layer
(bitsandbytes cannot run on fake tensors). The full sweep at real depth is in benchmarks/results/."""

import sys
from dataclasses import replace

import pytest

from ftlaunch.config.build import model_spec
from ftlaunch.forecast.memory import peak_memory
from ftlaunch.forecast.params import count_params
from ftlaunch.forecast.setup import Setup
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import own_stack_memory as bench  # noqa: E402
import own_stack_qlora  # noqa: E402


def planned(arch: dict, layers: int, method: str, seq: int, mb: int, ckpt: bool) -> float:
    m = replace(model_spec(arch), num_hidden_layers=layers)
    s = Setup(method=method, objective="sft", n_gpus=1, zero=0, offload_optimizer=False, offload_params=False,
              micro_batch=mb, seq_len=seq, grad_ckpt=ckpt, lora_dropout=bench.lora_dropout(arch))  # fmt: skip
    return peak_memory(m, count_params(m), s).allocated


@pytest.mark.parametrize(
    "name,method,seq,mb,ckpt",
    [
        ("qwen2.5-0.5b", "lora", 512, 2, False),
        ("phi-3-mini", "full", 256, 1, True),
        ("olmoe-1b-7b", "lora", 256, 1, False),  # PEFT folds LoRA into a bf16 copy of every expert stack
    ],
)
def test_planner_within_10pct_of_own_stack(name, method, seq, mb, ckpt):
    arch = bench.load_conf(name)
    measured = bench.measure(arch, 2, method, "sft", seq, mb, ckpt)["peak"]
    assert planned(arch, 2, method, seq, mb, ckpt) == pytest.approx(measured, rel=0.10)


def test_qlora_planner_within_10pct_of_real_cpu_step():
    """Real nf4 weights from ftlaunch.recipes.train.load_model, one real step on CPU, 1 decoder layer at full width."""
    arch = bench.load_conf("qwen2.5-0.5b")
    r = own_stack_qlora.measure(arch, 1, "sft", 256, 1, True, bench.lora_dropout(arch))
    p = count_params(replace(model_spec(arch), num_hidden_layers=1))
    assert r["nf4_weight_bytes"] == pytest.approx(p.linear / 2, rel=0.01)  # 4 bits per quantized weight
    assert planned(arch, 1, "qlora", 256, 1, True) == pytest.approx(r["peak"], rel=0.10)
