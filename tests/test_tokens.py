"""Token counts on the login side (ftlaunch/config/tokens.py, ftlaunch/forecast/workload.py): statistics, the padding
model, the cache, and the plan a user gets for their own model folder and data file. The tokenizer is
trained here with the `tokenizers` library (no download, no transformers)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from ftlaunch.config import tokens
from ftlaunch.contract.plan import read_plan
from ftlaunch.forecast import tokenstats, workload
from ftlaunch.planning.planner import choose
from tests.conftest import load, make_job, run_launch

TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def make_tokenizer(d: Path) -> Path:
    """A byte-level BPE tokenizer folder as transformers saves one: tokenizer.json, tokenizer_config.json,
    chat_template.jinja."""
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
    # model.path names a model folder: the planner reads its architecture from config.json (tiny's facts here)
    arch = {k: v for k, v in load("model", "tiny").items() if k not in ("name", "path")}
    (d / "config.json").write_text(json.dumps({"model_type": "llama", **arch}))
    return d


@pytest.fixture
def tok_dir(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FTLAUNCH_CACHE", str(tmp_path / "cache"))
    return make_tokenizer(tmp_path / "model")


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def counts_of(*lengths, prompt=None) -> tokenstats.TokenCounts:
    n = len(lengths[0])
    return tokenstats.TokenCounts(
        prompt=tuple(prompt or [0] * n), seqs=tuple(map(tuple, lengths)), tokenizer="x"
    )


def test_stats_truncation_and_drops():
    c = counts_of([10, 20, 30, 400], prompt=[2, 3, 100, 5])
    st = tokenstats.stats(c, 64)
    assert (st.n_rows, st.n_dropped, st.n_truncated) == (3, 1, 1)  # prompt 100 >= 64 is dropped
    assert st.max == 400 and st.mean == pytest.approx((10 + 20 + 400) / 3)
    assert st.mean_trained == pytest.approx((10 + 20 + 64) / 3)
    assert c.max_sequence() == 400


def test_dpo_rows_count_both_sequences_and_pad_to_the_longer():
    c = counts_of([10, 40], [30, 20])
    assert c.mean_tokens() == pytest.approx(50)
    assert tokenstats.padded_length(c, 1, 100) == pytest.approx(35)  # mean of max(10,30), max(40,20)


def test_padded_length_matches_sampling_micro_batches():
    rng = random.Random(0)
    lengths = [int(rng.lognormvariate(4, 0.9)) + 1 for _ in range(3000)]
    c = counts_of(lengths)
    seq_len = 512
    for mb in (1, 4, 16):
        draws = [max(min(rng.choice(lengths), seq_len) for _ in range(mb)) for _ in range(20000)]
        assert tokenstats.padded_length(c, mb, seq_len) == pytest.approx(sum(draws) / len(draws), rel=0.03)
    assert tokenstats.padded_length(counts_of([7] * 50), 8, 64) == pytest.approx(7)  # nothing to pad


def test_skewed_lengths_cost_more_than_uniform_ones_of_the_same_mean(tmp_path):
    # Same total tokens; one long row in eight makes every micro-batch that draws it pad to it.
    uniform = counts_of([100] * 800)
    skewed = counts_of([30] * 700 + [590] * 100)
    assert uniform.mean_tokens() == skewed.mean_tokens()
    costs = {}
    for name, c in (("uniform", uniform), ("skewed", skewed)):
        data = {"name": name, "path": "x", "format": "text", "n_samples": 800, "tokens_per_sample": 100,
                "max_tokens": 590, "packing": False, "token_counts": c}  # fmt: skip
        job = make_job(model="llama-3-8b", data=data, cluster="cloud", micro_batch=8, seq_len=1024)
        costs[name] = choose(job).chosen
    assert costs["skewed"].cost.hours > costs["uniform"].cost.hours
    assert costs["skewed"].cost.tokens_total == pytest.approx(costs["uniform"].cost.tokens_total)


def test_packing_processes_full_rows_of_seq_len():
    c = counts_of([100] * 1000)
    data = {"name": "p", "path": "x", "format": "text", "n_samples": 1000, "tokens_per_sample": 100,
            "max_tokens": 100, "packing": True, "token_counts": c}  # fmt: skip
    job = make_job(model="llama-3-8b", data=data, cluster="cloud", seq_len=1024)
    wl = workload.of(job, "sft")
    assert wl.rows == 98  # ceil(100_000 / 1024)
    assert wl.rows * wl.tokens_per_row == pytest.approx(100_000)
    assert wl.speed(4)[0] == 1024


def test_counts_are_cached_and_invalidated_by_file_or_tokenizer_changes(tok_dir, tmp_path):
    f = write_jsonl(tmp_path / "d.jsonl", [{"text": "what is 12+30?"}, {"text": "the answer"}])
    first = tokens.count_file(f, "text", tok_dir)
    assert tokens.cached(f, "text", tok_dir).seqs == first.seqs
    assert tokens.cached(f, "alpaca", tok_dir) is None  # the format is part of the key
    write_jsonl(f, [{"text": "what is 12+30? " * 5}])
    assert tokens.cached(f, "text", tok_dir) is None
    again = tokens.count_file(f, "text", tok_dir)
    assert again.n_rows == 1 and again.seqs[0][0] > first.seqs[0][0]
    (tok_dir / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<pad>"}))
    assert tokens.cached(f, "text", tok_dir) is None


def test_chat_rows_render_the_template(tok_dir, tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "what is 1+1?"}, {"role": "assistant", "content": "2"}]}
    ]
    f = write_jsonl(tmp_path / "m.jsonl", rows)
    c = tokens.count_file(f, "messages", tok_dir)
    from tokenizers import Tokenizer

    text = "<|user|>\nwhat is 1+1?</s>\n<|assistant|>\n2</s>\n"
    expected = len(
        Tokenizer.from_file(str(tok_dir / "tokenizer.json")).encode(text, add_special_tokens=False)
    )
    assert c.seqs[0][0] == expected


def test_launch_counts_tokens_for_a_model_folder_and_says_so(tok_dir, tmp_path):
    rows = [{"instruction": f"what is 1+{i}?", "output": f"the answer is {i + 1}. " * (1 + i % 7)}
            for i in range(300)]  # fmt: skip
    f = write_jsonl(tmp_path / "train.jsonl", rows)
    env = {"FTLAUNCH_CACHE": os.environ["FTLAUNCH_CACHE"]}
    args = ("data=jsonl", f"data.path={f}", "data.format=alpaca", "+budget=5", "dry_run=true")
    r = run_launch(f"model.path={tok_dir}", *args, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "counted: mean" in r.stdout and "truncated at seq_len" in r.stdout
    (plan_path,) = tmp_path.glob("runs/*/plan.json")
    plan = read_plan(plan_path)
    tok = plan.extra["data_tokens"]
    counts = tokens.count_file(f, "alpaca", tok_dir)
    assert tok["source"] == "counted" and tok["max"] == max(counts.totals)
    assert plan.training.seq_len == counts.max_sequence()  # default seq_len: the longest counted row
    assert plan.forecast.tokens_total == pytest.approx(sum(counts.totals))

    other = tmp_path / "estimated"
    other.mkdir()
    r = run_launch(*args, cwd=other, env=env)  # the builtin model has no tokenizer folder to count with
    assert r.returncode == 0, r.stderr
    assert "estimated:" in r.stdout


def test_counting_keeps_the_login_side_torch_free(tok_dir, tmp_path):
    f = write_jsonl(tmp_path / "t.jsonl", [{"text": "what is 2+2?"}] * 10)
    code = (
        f"import sys; sys.argv=['launch','model.path={tok_dir}','data=jsonl','data.path={f}',"
        "'data.format=text','+budget=5','dry_run=true'];"
        "from ftlaunch.cli.launch import main\n"
        "try:\n main()\nexcept SystemExit as e:\n assert e.code == 0, e.code\n"
        "heavy={'torch','transformers','peft','trl','bitsandbytes','deepspeed','mlflow'} & set(sys.modules)\n"
        "assert not heavy, heavy\nassert 'tokenizers' in sys.modules\nprint('clean')"
    )
    env = {**os.environ}
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "clean" in r.stdout, r.stderr


def test_chunked_encoding_gives_the_same_counts(tok_dir, tmp_path, monkeypatch):
    rows = [
        {"prompt": f"what is {i}+1?", "chosen": str(i + 1), "rejected": f"the answer {i}"} for i in range(7)
    ]
    tok = tokens._Tok(tok_dir)
    whole = tokens.count_rows(rows, "preference", tok)
    monkeypatch.setattr(tokens, "CHUNK", 3)  # chunk boundaries inside the rows
    assert tokens.count_rows(rows, "preference", tok) == whole
    assert all(len(r) == 3 and r[0] <= min(r[1:]) for r in whole)


def test_chat_rows_without_a_chat_template_exit_2_with_one_line(tok_dir, tmp_path):
    (tok_dir / "chat_template.jinja").unlink()
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "2"}]}]
    f = write_jsonl(tmp_path / "m.jsonl", rows)
    r = run_launch(f"model.path={tok_dir}", "data=jsonl", f"data.path={f}", "data.format=messages",
                   "+budget=5", "dry_run=true", cwd=tmp_path, env={"FTLAUNCH_CACHE": os.environ["FTLAUNCH_CACHE"]})  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "no chat template" in r.stderr and "data.tokens_per_sample" in r.stderr
    assert not (tmp_path / "runs").exists()


def test_packing_keeps_long_prompt_rows_and_cuts_them_at_seq_len():
    c = counts_of([200, 50, 30], prompt=[100, 5, 5])  # TRL drops the first row only when not packing
    data = {"name": "p", "path": "x", "format": "alpaca", "n_samples": 3, "tokens_per_sample": 93,
            "max_tokens": 200, "packing": True, "token_counts": c}  # fmt: skip
    job = make_job(model="llama-3-8b", data=data, cluster="cloud", seq_len=64)
    wl = workload.of(job, "sft")
    assert wl.rows * wl.tokens_per_row == pytest.approx(64 + 50 + 30) and wl.rows == 3
    unpacked = workload.of(make_job(model="llama-3-8b", data={**data, "packing": False}, cluster="cloud",
                                    seq_len=64), "sft")  # fmt: skip
    assert unpacked.rows == 2 and unpacked.tokens_per_row == pytest.approx(40)


def test_templates_with_generation_blocks_render_their_body():
    # Assistant-mask templates (Qwen, SmolLM, ...) wrap replies in {% generation %}: same text either way.
    plain = tokens._compile(TEMPLATE)
    marked = tokens._compile(
        TEMPLATE.replace("{{ m['content'] }}", "{% generation %}{{ m['content'] }}{% endgeneration %}")
    )
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "4"}]
    kw = dict(messages=msgs, eos_token="</s>", add_generation_prompt=False)
    assert marked.render(**kw) == plain.render(**kw) == "<|user|>\nhi</s>\n<|assistant|>\n4</s>\n"


def test_a_file_given_on_the_default_data_config_is_read_not_planned_as_the_sample(tok_dir, tmp_path):
    """`data.path=mine.jsonl` without `data=jsonl`: the sample's 512 rows of 24 tokens describe the built-in
    set, so they must not be planned for the user's file; the job is named after the file."""
    rows = [{"instruction": f"what is 2+{i}?", "output": f"it is {i + 2}. " * (1 + i % 5)} for i in range(77)]
    f = write_jsonl(tmp_path / "mine.jsonl", rows)
    env = {"FTLAUNCH_CACHE": os.environ["FTLAUNCH_CACHE"]}
    r = run_launch(
        f"model.path={tok_dir}", f"data.path={f}", "+budget=5", "dry_run=true", cwd=tmp_path, env=env
    )
    assert r.returncode == 0, r.stderr
    (plan_path,) = tmp_path.glob("runs/*/plan.json")
    plan = read_plan(plan_path)
    counts = tokens.count_file(f, "alpaca", tok_dir)
    assert plan.data.n_samples == 77 and plan.data.name == "mine"
    assert plan.forecast.tokens_total == pytest.approx(sum(counts.totals))
    assert plan_path.parent.name.startswith("model-mine")
