"""Offline assets the project makes itself: a tiny random Llama, its tokenizer, and a synthetic task.

Nothing is downloaded. The model and tokenizer are written with save_pretrained and read back by the
ordinary from_pretrained code path; the data are plain JSONL read back by load_dataset("json").

    python -m ftlaunch.recipes.assets --out DIR      # DIR/tiny-llama/ and DIR/data/arith_*.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
from pathlib import Path

# Alpaca rows become prompt/completion text with this template (ftlaunch/contract/prompts.py, shared with the planner).
from ftlaunch.contract.prompts import ALPACA_PROMPT, ALPACA_PROMPT_INPUT

ASSETS_VERSION = 1
TINY_MODEL = "tiny-llama"
# ftlaunch/conf/model/tiny.yaml states the same numbers for the planner: change both or neither. Every layer size is a
# multiple of 32 (bitsandbytes 4-bit eval on CPU needs it).
TINY_LLAMA = dict(
    hidden_size=128,
    intermediate_size=384,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=512,
    max_position_embeddings=512,
    tie_word_embeddings=False,
    attention_bias=False,
)
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + eos_token + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# Sample sizes match ftlaunch/conf/data/sample.yaml (512) and ftlaunch/conf/data/sample-pref.yaml (256).
ARITH_FILES = {
    "alpaca": ("arith_alpaca.jsonl", 512),
    "messages": ("arith_messages.jsonl", 512),
    "preference": ("arith_pref.jsonl", 256),
    "text": ("arith_text.jsonl", 512),
}
SAMPLE_DIR = Path(__file__).resolve().parent / "sample"  # committed copies, shipped with the package


def cache_dir() -> Path:
    return Path(os.environ.get("FTLAUNCH_CACHE") or Path.home() / ".cache" / "ftlaunch")


# ---------------------------------------------------------------- synthetic arithmetic task


def _problems(n: int, seed: int) -> list[tuple[int, str, int, int]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(0, 49), rng.randint(0, 49)
        op = rng.choice("+-")
        out.append((a, op, b, a + b if op == "+" else a - b))
    return out


def arith_rows(fmt: str, n: int, seed: int = 0) -> list[dict]:
    """Rows of one format. Alpaca puts the numbers in `input` for every third row, to exercise that field."""
    rng = random.Random(seed + 1)
    rows: list[dict] = []
    for i, (a, op, b, ans) in enumerate(_problems(n, seed)):
        question = f"What is {a}{op}{b}?"
        if fmt == "alpaca":
            if i % 3 == 2:
                rows.append(
                    {"instruction": "Compute the expression.", "input": f"{a}{op}{b}", "output": str(ans)}
                )
            else:
                rows.append({"instruction": question, "input": "", "output": str(ans)})
        elif fmt == "messages":
            rows.append(
                {
                    "messages": [
                        {"role": "user", "content": question},
                        {"role": "assistant", "content": str(ans)},
                    ]
                }
            )
        elif fmt == "preference":
            wrong = ans + rng.choice([-1, 1]) * rng.randint(1, 9)
            rows.append({"prompt": question, "chosen": str(ans), "rejected": str(wrong)})
        elif fmt == "text":
            rows.append({"text": f"Q: {question} A: {ans}"})
        else:
            raise ValueError(f"unknown format {fmt!r}")
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in rows)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_arith(out_dir: Path, seed: int = 0) -> dict[str, Path]:
    paths = {}
    for fmt, (name, n) in ARITH_FILES.items():
        paths[fmt] = out_dir / name
        write_jsonl(paths[fmt], arith_rows(fmt, n, seed))
    return paths


def arith_file(fmt: str) -> Path:
    """The committed sample file for `fmt` if present, else one generated into the cache (same content)."""
    name, _ = ARITH_FILES[fmt]
    if (SAMPLE_DIR / name).is_file():
        return SAMPLE_DIR / name
    path = cache_dir() / f"data-v{ASSETS_VERSION}" / name
    if not path.is_file():
        write_arith(path.parent)
    return path


# ---------------------------------------------------------------- tokenizer and model


def _corpus() -> list[str]:
    lines = []
    for fmt in ARITH_FILES:
        for r in arith_rows(fmt, 512, seed=123):
            lines.append(json.dumps(r))
    lines += [ALPACA_PROMPT, ALPACA_PROMPT_INPUT, "Q: A: What is Compute the expression."]
    lines += ["the quick brown fox jumps over the lazy dog. Answer the question. Explain your reasoning."]
    return lines


def build_tokenizer():
    """Byte-level BPE (no unknown tokens), digits split one by one, vocab <= 512, with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_LLAMA["vocab_size"],
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    assert tok.get_vocab_size() <= TINY_LLAMA["vocab_size"], tok.get_vocab_size()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        chat_template=CHAT_TEMPLATE,
        model_max_length=TINY_LLAMA["max_position_embeddings"],
    )


def build_tiny_llama(out: Path, seed: int = 0) -> Path:
    """Random-initialised LlamaForCausalLM + tokenizer, saved with save_pretrained into `out`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer()
    config = LlamaConfig(
        **TINY_LLAMA,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).to(torch.float32)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def tiny_llama_path() -> Path:
    """The cached tiny model folder, built on first use. Safe when several ranks race to build it."""
    final = cache_dir() / f"{TINY_MODEL}-v{ASSETS_VERSION}"
    if (final / "config.json").is_file() and (final / "tokenizer.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    try:
        build_tiny_llama(tmp)
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first: keep theirs
            if not (final / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def causal_lm_class(model_type: str | None):
    """(class, from_pretrained kwargs) that load the model the planner counted. A multimodal Gemma-3 checkpoint:
    its language model (ftlaunch/config/modelconfig.py reads text_config), whose weights sit under language_model.model.*
    on disk; everything else: AutoModelForCausalLM."""
    if model_type == "gemma3":
        from transformers import Gemma3ForCausalLM

        return Gemma3ForCausalLM, {
            "key_mapping": {r"^language_model\.model\.": "model.", r"^model\.language_model\.": "model."}
        }
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM, {}


def resolve_model(path: str) -> str:
    """plan.model.path -> a from_pretrained() argument."""
    if path == f"builtin:{TINY_MODEL}":
        return str(tiny_llama_path())
    if path.startswith("builtin:"):
        raise ValueError(f"unknown builtin model {path!r}; known: builtin:{TINY_MODEL}")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="folder to write tiny-llama/ and data/ into")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    model_dir = build_tiny_llama(args.out / TINY_MODEL, seed=args.seed)
    paths = write_arith(args.out / "data", seed=args.seed)
    print(f"model: {model_dir}")
    for fmt, p in paths.items():
        print(f"data ({fmt}): {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
