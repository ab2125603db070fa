"""The published measurements (benchmarks/data/published_cases.csv: rows 0-43 the project's first collection,
rows 44-56 added with the throughput work of docs/accuracy.md; each row cites its source) mapped to planner inputs. Each case names its CSV row; every assumption made to map it is written beside it.
Rows left out are listed in EXCLUDED with the reason, so the accuracy figures can be read honestly.

mem_kind says what the source measured: "allocated" (torch.cuda.max_memory_allocated, no CUDA context),
"device" (nvidia-smi: reserved + context). Units are converted to GiB from what the row prints.
"""

from __future__ import annotations

# Architectures not in ftlaunch/conf/model (HF config.json facts of each checkpoint).
ARCH = {
    "qwen-1.8b": dict(hidden_size=2048, intermediate_size=5504, num_hidden_layers=24, num_attention_heads=16,
                      num_key_value_heads=16, vocab_size=151936, attention_bias=True),
    "qwen-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                    num_key_value_heads=32, vocab_size=151936, attention_bias=True),
    "qwen-14b": dict(hidden_size=5120, intermediate_size=13696, num_hidden_layers=40, num_attention_heads=40,
                     num_key_value_heads=40, vocab_size=152064, attention_bias=True),
    "stablelm-alpha-3b": dict(hidden_size=4096, intermediate_size=16384, num_hidden_layers=16,
                              num_attention_heads=32, num_key_value_heads=32, vocab_size=50688, mlp="standard"),
    "mpt-7b": dict(hidden_size=4096, intermediate_size=16384, num_hidden_layers=32, num_attention_heads=32,
                   num_key_value_heads=32, vocab_size=50432, tie_word_embeddings=True, mlp="standard"),
    "mpt-13b": dict(hidden_size=5120, intermediate_size=20480, num_hidden_layers=40, num_attention_heads=40,
                    num_key_value_heads=40, vocab_size=50432, tie_word_embeddings=True, mlp="standard"),
    "mpt-30b": dict(hidden_size=7168, intermediate_size=28672, num_hidden_layers=48, num_attention_heads=64,
                    num_key_value_heads=64, vocab_size=50432, tie_word_embeddings=True, mlp="standard"),
    "mpt-70b": dict(hidden_size=8192, intermediate_size=32768, num_hidden_layers=80, num_attention_heads=64,
                    num_key_value_heads=64, vocab_size=50432, tie_word_embeddings=True, mlp="standard"),
    "llama-65b": dict(hidden_size=8192, intermediate_size=22016, num_hidden_layers=80, num_attention_heads=64,
                      num_key_value_heads=64, vocab_size=32000),
    "tinyllama-1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                           num_key_value_heads=4, vocab_size=32000),
    "falcon-40b": dict(hidden_size=8192, intermediate_size=32768, num_hidden_layers=60, num_attention_heads=128,
                       num_key_value_heads=8, vocab_size=65024, mlp="standard"),
}  # fmt: skip

GPU: dict[str, dict] = {}  # GPUs not in ftlaunch/conf/gpu (none needed now)

LITGPT = dict(
    lora_r=8, lora_targets="q_proj,v_proj", lora_dropout=0.05
)  # lit-gpt finetune/lora.py defaults (2023)
QWEN_LORA = dict(
    lora_r=64, lora_targets="all-linear", lora_dropout=0.05
)  # Qwen finetune.py: c_attn,c_proj,w1,w2
PEFT_DOC = dict(lora_r=8, lora_targets="all-linear", lora_dropout=0.1)  # peft examples/sft run_peft_*.sh
VECTORLM_LORA = dict(lora_r=8, lora_targets="q_proj,v_proj", lora_dropout=0.1)  # PEFT's default Llama targets
TT_LORA = dict(lora_r=8, lora_targets="q_proj,v_proj", lora_dropout=0.0)  # torchtune llama2/7B_lora configs

CASES = [
    # --- memory ---------------------------------------------------------------------------------------
    dict(row=9, model="llama-2-7b", method="lora", seq=1304, mb=1, ckpt=False, gpu="a100-40gb", n=1,
         mem=21.3, mem_unit="GB", mem_kind="allocated", **LITGPT,
         note="variable length: peak at the longest sample (1304 tokens); litgpt default no checkpointing"),
    dict(row=5, model="llama-2-13b", method="lora", seq=1304, mb=1, ckpt=False, gpu="a100-40gb", n=1,
         mem=38.12, mem_unit="GB", mem_kind="allocated", **LITGPT, note="as row 9"),
    dict(row=13, model="llama-2-13b", method="qlora", seq=1304, mb=1, ckpt=False, gpu="a100-40gb", n=1,
         mem=23.14, mem_unit="GB", mem_kind="allocated", quant_bits=4.5, **LITGPT,
         note="as row 9, bnb.nf4 without double quantization (4 + 32/64 bits)"),
    dict(row=17, model="stablelm-alpha-3b", method="lora", seq=1034, mb=1, ckpt=False, gpu="a100-40gb", n=1,
         mem=9.69, mem_unit="GB", mem_kind="allocated", **LITGPT, note="as row 9, longest 1034"),
    dict(row=4, model="qwen-14b", method="lora", seq=2048, mb=1, ckpt=True, gpu="a100-80gb", n=1,
         mem=37.4, mem_unit="GiB", mem_kind="device", tps=1950, accum=8, **QWEN_LORA,
         note="Qwen README 'G' read as GiB; c_proj matches attention and MLP outputs, so all linears"),
    dict(row=30, model="qwen-7b", method="lora", seq=256, mb=1, ckpt=True, gpu="a100-80gb", n=1,
         mem=20.1, mem_unit="GiB", mem_kind="device", tps=1707, accum=8, **QWEN_LORA, note="as row 4"),
    dict(row=15, model="qwen-7b", method="qlora", seq=8192, mb=1, ckpt=True, gpu="a100-80gb", n=1,
         mem=23.5, mem_unit="GiB", mem_kind="device", tps=2939, accum=8, quant_bits=4.16, **QWEN_LORA,
         note="GPTQ int4, group 128 (4 + 16/128 + 4/128 bits); GPTQ kernels differ from bnb dequantization"),
    dict(row=19, model="qwen-1.8b", method="full", seq=2048, mb=1, ckpt=True, gpu="a100-80gb", n=1, zero=2,
         mem=43.5, mem_unit="GiB", mem_kind="device", tps=7123, accum=8,
         note="DeepSpeed single GPU; finetune_ds.sh of that commit uses ds_config_zero2.json"),
    dict(row=11, model="llama-2-70b", method="qlora", seq=2048, mb=2, ckpt=True, gpu="a100-80gb", n=2, zero=3,
         mem=36.6, mem_unit="GiB", mem_kind="device", **PEFT_DOC, note="nvidia-smi screenshot (MiB -> GiB)"),
    dict(row=23, model="llama-2-70b", method="qlora", seq=2048, mb=2, ckpt=True, gpu="rtx-4090", n=2, zero=3,
         offload="all", mem=19.6, mem_unit="GiB", mem_kind="device", **PEFT_DOC,
         note="FSDP CPU param offload mapped to ZeRO-3 offload of optimizer and parameters"),
    dict(row=41, model="llama-2-70b", method="lora", seq=2048, mb=8, ckpt=True, gpu="h100-sxm", n=8, zero=3,
         mem=76, mem_unit="GiB", mem_kind="device", **PEFT_DOC, note="doc says 72-80 GiB: midpoint"),
    dict(row=29, model="llama-2-7b", method="lora", seq=2048, mb=4, ckpt=True, gpu="rtx-4090", n=2, zero=3,
         mem=16.2, mem_unit="GiB", mem_kind="reserved", **TT_LORA,
         note="torchtune FSDP = ZeRO-3; checkpointing assumed on (4x2048 tokens do not fit 24 GB without it)"),
    # --- throughput -----------------------------------------------------------------------------------
    dict(row=20, model="mpt-7b", method="full", seq=2048, mb=6, ckpt=False, gpu="h100-sxm", n=8, zero=3,
         tps=10643, accum=1, note="Composer FSDP FULL_SHARD = ZeRO-3; pretraining step = full fine-tuning step"),
    dict(row=28, model="mpt-7b", method="full", seq=4096, mb=16, ckpt=True, gpu="h100-sxm", n=8, zero=3,
         tps=8611, accum=2, note="as row 20"),
    dict(row=34, model="mpt-13b", method="full", seq=2048, mb=2, ckpt=False, gpu="h100-sxm", n=8, zero=3,
         tps=4792, accum=1, note="as row 20"),
    dict(row=14, model="mpt-30b", method="full", seq=2048, mb=3, ckpt=True, gpu="h100-sxm", n=8, zero=3,
         tps=2002, accum=21, note="as row 20"),
    dict(row=16, model="mpt-30b", method="full", seq=2048, mb=3, ckpt=True, gpu="a100-80gb", n=8, zero=3,
         tps=916, accum=21, note="as row 20"),
    dict(row=42, model="mpt-70b", method="full", seq=2048, mb=8, ckpt=True, gpu="h100-sxm", n=64, zero=3,
         tps=1039, accum=4, note="as row 20; 8 nodes"),
    dict(row=32, model="qwen-7b", method="full", seq=1024, mb=1, ckpt=True, gpu="a100-80gb", n=2, zero=2,
         tps=1820, accum=8, note="ZeRO stage ambiguous in the source (script: zero2); memory 81 GiB > 80 not used"),
    dict(row=1, model="llama-3.1-8b", method="full", seq=2048, mb=2, ckpt=True, gpu="rtx-4090", n=1,
         tps=1650, accum=1, note="torchtune, torch.compile, paged 8-bit AdamW (memory not comparable)"),
    dict(row=44, model="llama-3-8b", method="lora", seq=2048, mb=8, ckpt=True, gpu="a100-80gb", n=1, zero=3,
         tps=4079, accum=4, **VECTORLM_LORA, note="VectorLM FSDP FULL_SHARD = ZeRO-3, checkpointing on; aggregate tokens/s / n_gpus"),
    dict(row=45, model="llama-3-8b", method="lora", seq=4096, mb=4, ckpt=True, gpu="a100-80gb", n=1, zero=3,
         tps=3682, accum=4, **VECTORLM_LORA, note="as row 44"),
    dict(row=46, model="llama-3-8b", method="lora", seq=8192, mb=2, ckpt=True, gpu="a100-80gb", n=1, zero=3,
         tps=3529, accum=4, **VECTORLM_LORA, note="as row 44"),
    dict(row=47, model="llama-3-8b", method="lora", seq=2048, mb=8, ckpt=True, gpu="a100-80gb", n=2, zero=3,
         tps=3591, accum=4, **VECTORLM_LORA, note="as row 44"),
    dict(row=48, model="llama-3-8b", method="lora", seq=4096, mb=4, ckpt=True, gpu="a100-80gb", n=2, zero=3,
         tps=3478, accum=4, **VECTORLM_LORA, note="as row 44"),
    dict(row=49, model="llama-3-8b", method="lora", seq=8192, mb=2, ckpt=True, gpu="a100-80gb", n=2, zero=3,
         tps=3226, accum=4, **VECTORLM_LORA, note="as row 44"),
    dict(row=50, model="llama-3-8b", method="lora", seq=2048, mb=8, ckpt=True, gpu="a100-80gb", n=4, zero=3,
         tps=3575, accum=4, **VECTORLM_LORA, note="as row 44"),
    dict(row=51, model="llama-3-8b", method="lora", seq=4096, mb=4, ckpt=True, gpu="a100-80gb", n=4, zero=3,
         tps=3459, accum=4, **VECTORLM_LORA, note="as row 44"),
    dict(row=52, model="llama-3-8b", method="lora", seq=8192, mb=2, ckpt=True, gpu="a100-80gb", n=4, zero=3,
         tps=3192, accum=4, **VECTORLM_LORA, note="as row 44"),
    dict(row=56, model="llama-3.1-8b", method="qlora", seq=2048, mb=2, ckpt=True, gpu="rtx-4090", n=1, tps=2413,
         accum=1, lora_r=8, lora_targets="all-linear",
         note="torchtune QLoRA, torch.compile, torchao NF4 (block 64, int8 scales ~4.13 bits); targets assumed"),
    dict(row=53, model="tinyllama-1.1b", method="full", seq=2048, mb=8, ckpt=False, gpu="a100-40gb", n=8, zero=3,
         tps=24000, accum=8, note="lit-gpt FSDP full shard; fused RMSNorm/SwiGLU/RoPE/CE kernels (eager traffic assumed)"),
]  # fmt: skip

# Feasibility: the planner must agree on fits / does not fit.
FEASIBILITY = [
    dict(row=36, model="llama-65b", method="qlora", seq=512, mb=1, ckpt=True, gpu_mem=48, fits=True,
         offload="optimizer",
         **dict(lora_r=64, lora_targets="all-linear", lora_dropout=0.05),
         note="QLoRA paper: 65B on one 48 GB GPU; paged optimizer mapped to optimizer offload; short sequences"),
    dict(row=38, model="falcon-40b", method="qlora", seq=1079, mb=1, ckpt=False, gpu_mem=40, fits=False,
         **LITGPT, note="litgpt: OOM on A100-40GB"),
]  # fmt: skip

EXCLUDED = {
    0: "litgpt multi-GPU strategy not stated (4 GPUs use nearly what 1 GPU does)",
    2: "sequence length and batch missing",
    3: "sequence parallel (DeepSpeed-Ulysses) is not planned",
    6: "FP8 (Transformer Engine); the planner forecasts bf16",
    7: "sequence length and batch missing",
    8: "max-fit bound, not a measured peak",
    10: "2579 tok/s x ~61 GFLOP/token = 157 TFLOP/s, above the A6000's 154.8 dense peak: not per-device work",
    12: "throughput in preference pairs/s; pair lengths not given",
    18: "max-fit bound with Unsloth's offloaded checkpointing",
    21: "sequence length and batch missing",
    22: "optimizer-in-backward with CPU offload is not planned",
    24: "FP8 (Transformer Engine)",
    25: "sequence length and batch missing",
    26: "encoder (BERT), fp32 classification",
    27: "max-fit bound with Unsloth's offloaded checkpointing",
    31: "max-fit bound with Unsloth's offloaded checkpointing",
    33: "sequence length conflicts between table and notes; per-GPU vs aggregate ambiguous",
    35: "encoder (BERT), fp32 classification",
    37: "sequence length and batch missing",
    39: "aggregate figure, no per-GPU setup",
    40: "T5 encoder-decoder, sequence length missing",
    43: "sequence parallel (DeepSpeed-Ulysses) is not planned",
    54: "3083 tok/s x ~48 GFLOP/token (LoRA + recompute) = 148 TFLOP/s, 0.90 of the RTX 4090's 165 dense peak: above"
    " the best measured matmul efficiency of any GPU (0.87, A100), so not the work the planner counts",
    55: "4699 tok/s x ~48 GFLOP/token = 226 TFLOP/s, above the A6000's 154.8 dense peak: not per-device work",
}
