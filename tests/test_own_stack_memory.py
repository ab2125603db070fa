"""The planner's memory model against our own training stack, measured under FakeTensorMode + MemTracker
(benchmarks/own_stack_memory.py): two small shapes of real architectures, 2 decoder layers at full width, one
LoRA and one full fine-tuning step each. The full sweep at real depth is in benchmarks/results/."""

import sys
from dataclasses import replace

import pytest

from launcher.memory import Setup, peak_memory
from launcher.params import count_params
from launcher.specs import model_spec
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import own_stack_memory as bench  # noqa: E402


@pytest.mark.parametrize(
    "name,method,seq,mb,ckpt",
    [("qwen2.5-0.5b", "lora", 512, 2, False), ("phi-3-mini", "full", 256, 1, True)],
)
def test_planner_within_10pct_of_own_stack(name, method, seq, mb, ckpt):
    arch = bench.load_conf(name)
    measured = bench.measure(arch, 2, method, "sft", seq, mb, ckpt)["peak"]
    m = replace(model_spec(arch), num_hidden_layers=2)
    s = Setup(method=method, objective="sft", n_gpus=1, zero=0, offload_optimizer=False, offload_params=False,
              micro_batch=mb, seq_len=seq, grad_ckpt=ckpt, lora_dropout=bench.LORA_DROPOUT)  # fmt: skip
    predicted = peak_memory(m, count_params(m), s).allocated
    assert predicted == pytest.approx(measured, rel=0.10)
