"""Recorded plans: what `launch ... dry_run=true` prints and writes for a fixed set of catalog and own-model
cases, so a refactor that changes a forecast, a choice or a printed line is caught.

Each case runs the installed `launch` in a fresh folder; paths and times are replaced by placeholders.
Record again (after a deliberate change, and say why in the commit):

    .venv/bin/python -m tests.golden_plans --record
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden" / "plans"

# A real-size Qwen3-8B config.json (the Hub's facts) for the own-folder cases.
QWEN3_8B = {
    "model_type": "qwen3", "hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36,
    "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 151936,
    "max_position_embeddings": 40960, "tie_word_embeddings": False, "rms_norm_eps": 1e-6,
}  # fmt: skip
TINY_LLAMA = {
    "model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 512,
    "tie_word_embeddings": True,
}  # fmt: skip
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

# name -> (arguments, own model config or None, own data format or None)
CASES: dict[str, tuple[list[str], dict | None, str | None]] = {
    "quickstart": ([], None, None),
    "llama3-8b-cloud": (["model=llama-3-8b", "data=alpaca", "cluster=cloud", "+budget=500"], None, None),
    "llama3-70b-large-shift": (
        ["model=llama-3-70b", "cluster=slurm-a100", "goal.domain_shift=large", "+budget=2000"], None, None),
    "mistral-dpo-ultrafeedback": (["model=mistral-7b", "data=ultrafeedback", "cluster=cloud", "+budget=300"],
                                  None, None),
    "qwen3-moe-cloud": (["model=qwen3-30b-a3b", "cluster=cloud", "+budget=500"], None, None),
    "mixtral-slurm": (["model=mixtral-8x7b", "data=alpaca", "cluster=slurm-a100", "+budget=1000"], None, None),
    "llama3-8b-tight": (["model=llama-3-8b", "data=alpaca", "cluster=cloud", "+budget=0.5"], None, None),
    "pinned-full-zero3": (
        ["model=llama-3-8b", "data=alpaca", "cluster=cloud", "method=full", "gpu=a100-80gb", "n_gpus=8",
         "zero=3", "offload=optimizer", "micro_batch=2", "grad_ckpt=true", "seq_len=4096"], None, None),
    "qwen2.5-time": (["model=qwen2.5-7b", "data=alpaca", "cluster=cloud", "+budget=100", "goal.optimize=time"],
                     None, None),
    "gemma2-eager": (["model=gemma-2-9b", "data=alpaca", "cluster=cloud", "attention=eager", "+budget=200"],
                     None, None),
    "phi3-dpo-pinned": (["model=phi-3-mini", "data=sample-pref", "method=dpo", "cluster=cloud"], None, None),
    "olmoe-qlora": (["model=olmoe-1b-7b", "data=alpaca", "cluster=cloud", "method=qlora"], None, None),
    "70b-no-budget-fits": (["model=llama-3.1-70b", "data=alpaca", "cluster=cloud", "+budget=3"], None, None),
    "own-qwen3-alpaca": (["cluster=cloud", "+budget=50"], QWEN3_8B, "alpaca"),
    "own-qwen3-messages-packed": (["cluster=cloud", "+budget=50", "data.packing=true"], QWEN3_8B, "messages"),
    "own-tiny-local": (["+budget=5"], TINY_LLAMA, "messages"),
    "own-qwen3-pref": (["cluster=slurm-a100", "+budget=100"], QWEN3_8B, "preference"),
}  # fmt: skip


def make_model_dir(d: Path, config: dict) -> Path:
    """A model folder as save_pretrained writes one: config.json and a byte-level BPE tokenizer trained here."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<pad>", "<s>", "</s>", "<|user|>", "<|assistant|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(["what is the answer to the question " * 3, "0123456789 +-=?"], trainer=trainer)
    d.mkdir(parents=True, exist_ok=True)
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>", "bos_token": "<s>"}))
    (d / "chat_template.jinja").write_text(TEMPLATE)
    (d / "config.json").write_text(json.dumps(config))
    return d


def make_data(path: Path, fmt: str, n: int = 300, seed: int = 0) -> Path:
    """Synthetic rows of varied length in one of the four formats."""
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        q = "what is the answer to the question " * rnd.randint(1, 12) + f"{i}?"
        a = " ".join(str(rnd.randint(0, 9999)) for _ in range(rnd.randint(1, 40)))
        if fmt == "alpaca":
            rows.append({"instruction": q, "input": "", "output": a})
        elif fmt == "messages":
            rows.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
        elif fmt == "preference":
            rows.append({"prompt": q, "chosen": a, "rejected": a[::-1] + " no"})
        else:
            rows.append({"text": q + " " + a})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _normalize(text: str, subs: dict[str, str]) -> str:
    # rich wraps the last line's long path at "/" or before it: join it back
    text = re.sub(r"(plan written to)(\s.*)$", lambda m: m[1] + " " + "".join(m[2].split()), text, flags=re.S)
    for real, ph in sorted(subs.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(real, ph)
    text = re.sub(r"-\d{8}-\d{6}-[0-9a-f]{6}", "-<STAMP>", text)
    return "\n".join(line.rstrip() for line in text.splitlines())


def run_case(name: str, work: Path, launch: str | None = None) -> dict:
    """Run one case in `work` (a fresh folder) and return what is compared: exit code, stdout, stderr,
    plan.json without its paths and times."""
    args, own_model, own_fmt = CASES[name]
    work.mkdir(parents=True, exist_ok=True)
    subs = {str(work.resolve()): "<WORK>"}
    args = list(args)
    if own_model is not None:
        model = make_model_dir(work / "model", own_model)
        args.append(f"model.path={model}")
    if own_fmt is not None:
        data = make_data(work / f"train-{own_fmt}.jsonl", own_fmt)
        args += ["data=jsonl", f"data.path={data}", f"data.format={own_fmt}"]
    exe = launch or str(Path(sys.executable).parent / "launch")
    env = {**os.environ, "FTLAUNCH_CACHE": str(work / "cache"), "COLUMNS": "140"}
    env.pop("FTLAUNCH_VERBOSE", None)
    r = subprocess.run([exe, *args, "dry_run=true"], cwd=work, capture_output=True, text=True, env=env,
                       timeout=120)  # fmt: skip
    plan = None
    found = sorted(work.glob("runs/*/plan.json"))
    if found:
        plan = json.loads(found[0].read_text())
        for k in ("run_dir", "created"):
            plan.pop(k, None)
        plan["tracking"].pop("uri", None)
        plan = json.loads(_normalize(json.dumps(plan), subs))
    return {
        "args": args and [_normalize(a, subs) for a in args],
        "rc": r.returncode,
        "stdout": _normalize(r.stdout, subs),
        "stderr": _normalize(r.stderr, subs),
        "plan": plan,
    }


def main(argv: list[str]) -> int:
    import tempfile

    if argv != ["--record"]:
        print(__doc__)
        return 2
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            got = run_case(name, Path(tmp) / name)
        (GOLDEN / f"{name}.json").write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        print(f"{name}: rc {got['rc']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
