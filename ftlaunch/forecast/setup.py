"""One candidate configuration as the memory and speed models see it: method, layout, batch, length."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ftlaunch.contract.plan import Plan

# QLoRA paper (Dettmers et al. 2023, arXiv:2305.14314 §3): NF4 is 4 bits, blocksize 64 absmax; double
# quantization brings constants to 8/64 + 32/(64*256) = 0.127 bits/param -> 4.127 bits = 0.516 bytes.
NF4_BYTES = 4.127 / 8


@dataclass(frozen=True)
class Setup:
    """One candidate's memory-relevant choices."""

    method: str  # lora | qlora | full
    objective: str  # sft | dpo
    n_gpus: int
    zero: int
    offload_optimizer: bool
    offload_params: bool
    micro_batch: int  # samples (pairs for DPO) per GPU per micro-step
    seq_len: int
    grad_ckpt: bool
    lora_r: int = 16
    lora_targets: str = "all-linear"
    lora_dropout: float = 0.05
    dpo_reference: str = "adapter"  # adapter | model | precomputed
    quant_bits: float = NF4_BYTES * 8  # QLoRA base bits/param (4.5 without double quantization)
    attention: str = "sdpa"  # sdpa | eager
    # The micro-batch carries padding, so transformers hands SDPA an explicit mask (ftlaunch/forecast/workload.py
    # Workload.masked); priced in ftlaunch/forecast/throughput.py attention_flops.
    padded: bool = False
    device_context: bool = True  # False for the CPU "device": no CUDA context, the process RSS instead

    @classmethod
    def from_plan(cls, plan: Plan) -> Setup:
        """The setup a written plan runs: the one place plan.json fields map onto the memory model's."""
        t, r = plan.training, plan.resources
        return cls(
            method=t.method, objective=t.objective, n_gpus=r.n_gpus, zero=r.zero_stage,
            offload_optimizer=r.offload_optimizer, offload_params=r.offload_params, micro_batch=t.micro_batch,
            seq_len=t.seq_len, grad_ckpt=t.grad_ckpt, lora_r=t.lora_r, lora_targets=t.lora_targets,
            lora_dropout=t.lora_dropout, dpo_reference=t.dpo_reference, attention=t.attention,
            device_context=r.gpu != "cpu",
        )  # fmt: skip

    @property
    def sequences(self) -> int:
        """Sequences per micro-step: DPO runs chosen and rejected together (TRL concatenated_forward)."""
        return self.micro_batch * (2 if self.objective == "dpo" else 1)
