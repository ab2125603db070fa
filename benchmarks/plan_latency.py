"""Cold-process latency of a dry-run plan, as a user sees it on the login node.

    python benchmarks/plan_latency.py [--runs 7]

Targets (issues 3 and 10) on the 2-core machine: <= 0.5 s for the catalog cases; with your own model folder
(model.path with a tokenizer) and a fresh 50k-row JSONL, <= 3 s the first time (every row tokenized) and
<= 0.5 s once the counts are cached. Prints median/max per case, the bare-interpreter baseline and the
search's own CPU time with and without pruning in the same run; writes benchmarks/results/plan_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAUNCH = str(Path(sys.executable).parent / "launch")
CASES = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "quickstart (tiny, local)": [LAUNCH, "+budget=5", "dry_run=true"],
    "llama-3-8b, cloud (8 GPU types)": [LAUNCH, "model=llama-3-8b", "data=alpaca", "cluster=cloud", "+budget=500", "dry_run=true"],
    "llama-3-70b, cloud, full": [LAUNCH, "model=llama-3-70b", "cluster=cloud", "method=full", "+budget=5000", "dry_run=true"],
}  # fmt: skip
OWN_ROWS = 50_000
_TEXT = ("the of and to in is that for it as with was on be by this are or his from at which but have an "
         "they not you had one were her all she there would their we him been has when who will more no if "
         "out so said what up its about into than them can only other new some could time these two may "
         "answer question explain reasoning step first then because example 1 2 3 4 5 6 7 8 9 0 + - = ?")  # fmt: skip
WORDS = _TEXT.split()


def own_model_and_data(d: Path) -> tuple[Path, Path]:
    """A model folder holding a byte-level BPE tokenizer (8k vocabulary, trained here) with a chat template,
    and 50k chat rows whose lengths are log-normal (median ~60, mean ~90 tokens; a long tail)."""
    import random

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    rng = random.Random(0)

    def text(mu: float) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(max(1, int(rng.lognormvariate(mu, 0.8)))))

    rows = [{"messages": [{"role": "user", "content": text(2.6)}, {"role": "assistant", "content": text(3.4)}]}
            for _ in range(OWN_ROWS)]  # fmt: skip
    data = d / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = d / "my-model"
    model.mkdir()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=8000, special_tokens=["<pad>", "<s>", "</s>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)  # fmt: skip
    tok.train_from_iterator((r["messages"][1]["content"] for r in rows[:5000]), trainer=trainer)
    tok.save(str(model / "tokenizer.json"))
    (model / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
    # the planner reads the folder's architecture from config.json: Llama-3-8B's facts (ftlaunch/conf/model/llama-3-8b.yaml)
    import yaml

    arch = yaml.safe_load(
        (Path(__file__).resolve().parent.parent / "ftlaunch/conf/model/llama-3-8b.yaml").read_text()
    )
    arch = {k: v for k, v in arch.items() if k not in ("name", "path")}
    (model / "config.json").write_text(json.dumps({"model_type": "llama", **arch}))
    (model / "chat_template.jinja").write_text(
        "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n"
        "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
    )
    return model, data


def own_cases(d: Path) -> dict[str, tuple[list[str], str]]:
    model, data = own_model_and_data(d)
    cmd = [LAUNCH, "model=llama-3-8b", f"model.path={model}", "cluster=cloud", "data=jsonl",
           f"data.path={data}", "data.format=messages", "+budget=500", "dry_run=true"]  # fmt: skip
    return {
        "own model + fresh 50k-row JSONL, first": (cmd, "fresh"),
        "own model + 50k-row JSONL, cached": (cmd, "shared"),
    }


def search_cpu_s() -> dict[str, float]:
    """CPU seconds of the heaviest catalog case's search, exhaustive vs pruned (same process, same job)."""
    sys.path.insert(0, str(HERE.parent))
    from ftlaunch.planning.planner import choose
    from tests.conftest import make_job

    job = make_job(model="llama-3-8b", data="alpaca", cluster="cloud", budget=500)
    out = {}
    for name, prune in (("exhaustive", False), ("pruned", True)):
        t = time.process_time()
        for _ in range(5):
            r = choose(job, prune=prune)
        out[name] = {"cpu_s": round((time.process_time() - t) / 5, 4), "evaluated": r.n_evaluated,
                     "chosen": r.chosen.label()}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    load = os.getloadavg()[0]  # other work on the machine inflates wall times: recorded beside them
    out = {"machine": f"{platform.machine()} {os.cpu_count()} cores", "load_avg_1min_at_start": round(load, 2),
           "runs": args.runs, "cases": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as d:
        cases = {k: (v, "shared") for k, v in CASES.items()}
        cases.update(own_cases(Path(d)))
        shared = Path(d) / "cache"
        for name, (cmd, cache) in cases.items():
            times, cpus = [], []
            for i in range(args.runs):
                # "fresh": a cache folder never used, so every row is read and tokenized again
                env = {
                    **os.environ,
                    "FTLAUNCH_CACHE": str(Path(d) / f"fresh-{i}" if cache == "fresh" else shared),
                }
                if cache == "shared" and i == 0 and "cached" in name:
                    subprocess.run(cmd, cwd=d, check=True, capture_output=True, env=env)  # warm the cache
                t, ru = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
                subprocess.run(cmd, cwd=d, check=True, capture_output=True, env=env)
                times.append(time.perf_counter() - t)
                ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpus.append(ru2.ru_utime + ru2.ru_stime - ru.ru_utime - ru.ru_stime)
            med, mx, cpu = statistics.median(times), max(times), statistics.median(cpus)
            out["cases"][name] = {
                "median_s": round(med, 3),
                "max_s": round(mx, 3),
                "median_cpu_s": round(cpu, 3),
            }
            print(f"{name:<42} median {med:.3f} s  max {mx:.3f} s  CPU {cpu:.3f} s (user+sys, all threads)")
    out["search_cpu_s"] = search_cpu_s()
    for k, v in out["search_cpu_s"].items():
        print(
            f"search, llama-3-8b cloud, {k:<11} {v['cpu_s']:.4f} CPU s, {v['evaluated']} evaluated: {v['chosen']}"
        )
    for k, v in out["cases"].items():
        if "baseline" in k:
            continue
        target = 3.0 if k.endswith("first") else 0.5
        print(f"{k:<42} {'meets' if v['median_s'] <= target else 'MISSES'} target {target} s")
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "plan_latency.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
