"""The login side's token count (ftlaunch/config/tokens.py: `tokenizers` + jinja2, no transformers) equals what the
recipe's real trainer tokenizes: the recipe's own data loading and TRL trainer, with the transformers
tokenizer loaded by from_pretrained from the same folder, row by row, for every data format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import build_plan

from ftlaunch.config import tokens
from ftlaunch.contract.plan import read_plan
from ftlaunch.forecast import tokenstats
from ftlaunch.recipes import assets, data
from ftlaunch.recipes.train import make_trainer, training_args

SEQ_LEN = 48
# A template that uses a special-token variable and the generation prompt, like real ones (Llama 3, Zephyr).
TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama and a locally trained BPE tokenizer that adds BOS itself (post-processor), so
    plain-text rows get BOS from the tokenizer and chat rows only from the template."""
    import torch
    from tokenizers import processors
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    d = tmp_path_factory.mktemp("tok-model")
    base = assets.build_tokenizer()
    backend = base.backend_tokenizer
    bos = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", chat_template=TEMPLATE
    )
    tok.save_pretrained(d)
    cfg = LlamaConfig(**assets.TINY_LLAMA, bos_token_id=bos, eos_token_id=tok.eos_token_id, pad_token_id=0)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(d)
    return d


def _rows(fmt: str) -> list[dict]:
    """Short and long rows: some longer than SEQ_LEN (truncated), one prompt longer than SEQ_LEN (TRL drops
    it for prompt/completion formats), digits and punctuation the tokenizer splits finely."""
    long = "Explain your reasoning about 1234567 and the lazy dog. " * 4
    if fmt == "alpaca":
        return [
            {"instruction": "What is 2+3?", "input": "", "output": "5"},
            {"instruction": "Compute the expression.", "input": "41-7", "output": "34"},
            {"instruction": long, "output": "ok"},  # prompt alone > SEQ_LEN: dropped
            {"instruction": "Answer briefly.", "output": long},  # truncated
        ]
    if fmt == "messages":
        return [
            {
                "messages": [
                    {"role": "user", "content": "What is 2+3?"},
                    {"role": "assistant", "content": "5"},
                ]
            },
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": long},
                    {"role": "assistant", "content": "ok"},
                ]
            },
        ]
    if fmt == "preference":
        return [
            {"prompt": "What is 2+3?", "chosen": "5", "rejected": "6"},
            {"prompt": "Answer briefly: ", "chosen": long, "rejected": "no"},  # chosen truncated
            {"prompt": long, "chosen": "a", "rejected": "b"},  # prompt fills SEQ_LEN: dropped
        ]
    return [{"text": "Q: What is 2+3? A: 5"}, {"text": long}]


def _trainer_lengths(plan_path: Path, model_dir: Path, fmt: str) -> list[tuple[int, ...]]:
    """Per kept row, the sequence lengths the recipe's trainer feeds the model (after truncation)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    plan = read_plan(plan_path)
    t = plan.training
    ds = data.load(data.resolve(plan.data.path, fmt), fmt, plan.data.split, t.objective)
    tok = AutoTokenizer.from_pretrained(model_dir)  # what ftlaunch/recipes/train.py does
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    trainer = make_trainer(plan, training_args(plan, False, None), model, None, tok, ds, [])
    out = []
    for row in trainer.train_dataset:
        if (
            t.objective == "dpo"
        ):  # DataCollatorForPreference: prompt + chosen / rejected, each cut at max_length
            p = len(row["prompt_ids"])
            out.append((min(p + len(row["chosen_ids"]), SEQ_LEN), min(p + len(row["rejected_ids"]), SEQ_LEN)))
        else:
            out.append((len(row["input_ids"]),))
    return out


@pytest.mark.parametrize("fmt", ["alpaca", "messages", "preference", "text"])
def test_login_count_equals_the_trainers_tokens(fmt, model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FTLAUNCH_CACHE", str(tmp_path / "cache"))
    f = tmp_path / f"{fmt}.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in _rows(fmt)))
    objective = "dpo" if fmt == "preference" else "sft"
    plan = build_plan(tmp_path / "run", fmt=fmt, objective=objective, data_path=str(f), seq_len=SEQ_LEN)
    real = _trainer_lengths(plan, model_dir, fmt)

    counts = tokens.count_file(f, fmt, tokens.tokenizer_dir(str(model_dir)))
    kept = [i for i, p in enumerate(counts.prompt) if p < SEQ_LEN]
    mine = [tuple(min(c[i], SEQ_LEN) for c in counts.seqs) for i in kept]
    assert mine == real
    st = tokenstats.stats(counts, SEQ_LEN)
    assert st.n_rows == len(real)
    assert st.mean_trained == pytest.approx(sum(map(sum, real)) / len(real))
    assert st.n_truncated >= 1  # the long rows really exceed SEQ_LEN, so truncation was exercised
    if fmt in ("alpaca", "preference"):
        assert st.n_dropped == 1
    # A second count of the unchanged file comes from the cache, with the same numbers.
    again = tokens.cached(f, fmt, Path(model_dir))
    assert again is not None and again.seqs == counts.seqs and again.prompt == counts.prompt


def test_trained_tokens_equal_the_plans_counted_tokens(model_dir, tmp_path, recipe_env):
    """End to end: plan with model.path + a local file (counted tokens), run the recipe for one epoch,
    and the tokens the trainer reports (non-padding) are the plan's tokens_total."""
    import random
    import subprocess
    import sys

    rng = random.Random(0)
    rows = [{"instruction": f"What is {i}+{i}?", "output": " ".join(["the answer is", str(2 * i)] * rng.randint(1, 6))}
            for i in range(64)]  # fmt: skip
    f = tmp_path / "train.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    launch = str(Path(sys.executable).parent / "launch")
    args = [launch, "model=tiny", f"model.path={model_dir}", "data=jsonl", f"data.path={f}",
            "data.format=alpaca", "global_batch=8", "executor=local", "tracking.enabled=false", "+budget=5"]  # fmt: skip
    r = subprocess.run(args, cwd=tmp_path, env=recipe_env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (plan_path,) = tmp_path.glob("runs/*/plan.json")
    plan = read_plan(plan_path)
    assert plan.extra["data_tokens"]["source"] == "counted" and plan.training.max_steps == 8
    actual = json.loads((plan_path.parent / "actuals.json").read_text())
    assert actual["tokens_seen"] == plan.forecast.tokens_total
