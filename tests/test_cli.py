"""`launch` as a user runs it: the installed console script, in a fresh folder."""

import json
import subprocess
import sys

import pytest

from ftlaunch.contract.plan import PLAN_SCHEMA, read_plan
from tests.conftest import run_launch


def plans(root):
    return sorted(root.glob("runs/*/plan.json"))


def test_dry_run_prints_and_writes_versioned_plan(workdir):
    r = run_launch("+budget=500", "dry_run=true", cwd=workdir)
    assert r.returncode == 0, r.stderr
    assert "ftlaunch plan" in r.stdout and "cost" in r.stdout and "best alternatives" in r.stdout
    (path,) = plans(workdir)
    d = json.loads(path.read_text())
    assert d["schema"] == PLAN_SCHEMA and d["budget_usd"] == 500
    p = read_plan(path)
    assert p.forecast.cost_usd <= 500 and p.training.max_steps >= 1
    assert (path.parent / "config.yaml").exists()
    assert not (workdir / "outputs").exists()  # Hydra's own output folders are off


def test_real_model_plan_with_pins(workdir):
    r = run_launch("model=llama-3-8b", "data=alpaca", "cluster=cloud", "gpu=a100-80gb", "n_gpus=2", "zero=2",
                   "micro_batch=2", "grad_ckpt=true", "method=full", "+budget=2000", "dry_run=true", cwd=workdir)  # fmt: skip
    assert r.returncode == 0, r.stderr
    p = read_plan(plans(workdir)[0])
    assert (p.resources.gpu, p.resources.n_gpus, p.resources.zero_stage) == ("a100-80gb", 2, 2)
    assert (p.training.method, p.training.micro_batch, p.training.grad_ckpt) == ("full", 2, True)
    assert p.model.n_params == 8_030_261_248


def test_multirun_sweeps_budgets(workdir):
    r = run_launch("-m", "model=llama-3-8b", "cluster=cloud", "data=alpaca", "+budget=100,500,2000",
                   "dry_run=true", cwd=workdir)  # fmt: skip
    assert r.returncode == 0, r.stderr
    budgets = sorted(read_plan(p).budget_usd for p in plans(workdir))
    assert budgets == [100, 500, 2000]


BAD = [
    (["model=llama-9b"], "unknown model 'llama-9b'"),
    (["gpu=b200"], "unknown gpu 'b200'"),
    (["method=rlhf"], "unknown method 'rlhf'"),
    (["cluster=nowhere"], "unknown cluster"),
    (["data=missing"], "unknown data"),
    (["budget=500"], "+budget=500"),
    (["+budget=-5"], "budget"),
    (["+budget=0"], "positive"),
    (["+budget=lots"], "not a number"),
    (["budgett=5"], "unknown setting 'budgett'"),
    (["seq_len=999999"], "context"),
    (["zero=7"], "zero"),
    (["offload=disk"], "offload"),
    (["micro_batch=0"], "micro_batch"),
    (["grad_ckpt=maybe"], "grad_ckpt"),
    (["n_gpus=4"], "exceeds"),
    (["model=llama-3-70b", "method=full", "cluster=local"], "nothing fits in memory"),
    (["model=llama-3-8b", "cluster=cloud", "data=alpaca", "+budget=0.01"], "cheapest feasible plan"),
    (["goal.domain_shift=huge"], "domain_shift"),
    (["epochs=-1"], "epochs"),
    (["cluster.gpus=[]"], "cluster.gpus"),
    (["cluster=cloud", "+cluster.prices.h100-sxm=-3"], "non-negative"),
    (["cluster.prices.h100-sxm=3"], "+cluster.prices.h100-sxm=3"),
    (["seq_len=[1,2"], "override_grammar"),
    (["attention=flash"], "attention='flash' is not sdpa or eager"),
    (["cost_cap=-1"], "cost_cap"),
    (["method.lora_targets=c_attn"], "lora_targets"),
    (["model.hidden_size=-1"], "hidden_size"),
    # pins the README advertises but that leave nothing to plan (used to crash in min())
    (["zero=3"], "zero=3 cannot be planned: the CPU device runs without DeepSpeed"),
    (["method=qlora", "zero=2"], "zero=2 method=qlora cannot be planned"),
    (["method=lora", "offload=optimizer"], "offload=optimizer method=lora cannot be planned"),
    (["method=qlora", "zero=2", "cluster=cloud"], "qlora's optimizer state is tiny"),
    (["micro_batch=64"], "micro_batch=64 x 1 GPU(s) exceeds global_batch=32"),
    (["cluster=slurm-a100", "cluster.gpu_flag=bogus"], "gpu_flag"),
]


@pytest.mark.parametrize("args,needle", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_one_line_exit_2_nothing_written(workdir, args, needle):
    r = run_launch(*args, "dry_run=true", cwd=workdir)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert needle in lines[0]
    assert "Traceback" not in r.stderr + r.stdout
    assert plans(workdir) == [] and not list(workdir.glob("runs/*"))


def test_unusable_output_root(workdir):
    # a file where the folder should be: fails for root too (root ignores permission bits)
    (workdir / "blocker").write_text("x")
    r = run_launch("+budget=5", "dry_run=true", "output_root=blocker/runs", cwd=workdir)
    assert r.returncode == 2 and "output_root" in r.stderr and r.stderr.count("\n") == 1


def test_planning_never_imports_the_torch_stack(workdir):
    code = (
        "import sys; sys.argv=['launch','model=llama-3-70b','cluster=cloud','+budget=900','dry_run=true'];"
        "from ftlaunch.cli.launch import main\n"
        "try:\n main()\nexcept SystemExit as e:\n assert e.code == 0, e.code\n"
        "heavy={'torch','transformers','peft','trl','bitsandbytes','deepspeed','mlflow'} & set(sys.modules)\n"
        "assert not heavy, heavy\nprint('clean')"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "clean" in r.stdout, r.stderr


DATA_BAD = [
    ("missing.jsonl", None, "alpaca", "does not exist"),
    ("empty.jsonl", "", "alpaca", "no rows"),
    ("notjson.jsonl", '{"instruction": "a", "output": "b"}\n{oops\n', "alpaca", "line 2: not valid JSON"),
    ("noout.jsonl", '{"instruction": "a"}\n', "alpaca", "line 1: alpaca row has no 'output'"),
    ("pref.jsonl", '{"prompt": "p", "chosen": "a"}\n', "preference", "no 'rejected'"),
    ("msgs.jsonl", '{"messages": [{"role": "wizard", "content": "x"}]}\n', "messages", "role 'wizard'"),
    ("latin1.jsonl", b'{"text": "caf\xe9"}\n', "text", "UTF-8"),
    # 2 of 10 pairs tied (20% > 5%): no preference signal, named by the first such line
    (
        "tied.jsonl",
        "".join(
            json.dumps({"prompt": f"q{i}", "chosen": "a", "rejected": "a" if i in (2, 7) else "b"}) + "\n"
            for i in range(10)
        ),
        "preference",
        "line 3: chosen equals rejected",
    ),  # fmt: skip
]


@pytest.mark.parametrize("name,content,fmt,needle", DATA_BAD, ids=[d[0] for d in DATA_BAD])
def test_bad_data_file_one_line_exit_2(workdir, name, content, fmt, needle):
    f = workdir / name
    if isinstance(content, bytes):
        f.write_bytes(content)
    elif content is not None:
        f.write_text(content)
    r = run_launch("data=jsonl", f"data.path={f}", f"data.format={fmt}", "dry_run=true", cwd=workdir)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not (workdir / "runs").exists()


def test_local_file_is_counted_and_measured(workdir):
    f = workdir / "train.jsonl"
    f.write_text("".join(f'{{"instruction": "add {i} and 1", "output": "{i + 1}"}}\n' for i in range(40)))
    r = run_launch("data=jsonl", f"data.path={f}", "+budget=1", "dry_run=true", cwd=workdir)
    assert r.returncode == 0, r.stderr
    p = read_plan(plans(workdir)[0])
    assert p.data.n_samples == 40 and 5 < p.data.tokens_per_sample < 15


def test_plan_carries_the_resolved_data_path_the_recipe_accepts(workdir):
    """`~/train.jsonl` and `./train.jsonl` used to pass the login check and fail on the node (other HOME or
    working directory): plan.json now holds the absolute path, and the recipe's own check accepts it."""
    from ftlaunch.recipes import data

    home = workdir / "home"
    home.mkdir()
    (home / "train.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n')
    (workdir / "local.jsonl").write_text('{"text": "three"}\n')
    for arg, want in (("'~/train.jsonl'", home / "train.jsonl"), ("./local.jsonl", workdir / "local.jsonl")):
        r = run_launch("data=jsonl", f"data.path={arg}", "data.format=text", "+budget=1", "dry_run=true",
                       cwd=workdir, env={"HOME": str(home)})  # fmt: skip
        assert r.returncode == 0, r.stderr
        p = read_plan(max(plans(workdir), key=lambda f: f.stat().st_mtime_ns))
        assert p.data.path == str(want)
        source = data.resolve(
            p.data.path, p.data.format
        )  # what ftlaunch/recipes/train.py check() does on the node
        assert data.is_local(source) and data.validate_file(source, "text") == p.data.n_samples


def test_slurm_unreachable_or_wrong_partition_writes_nothing(workdir):
    # no sbatch on PATH at all
    r = run_launch("+budget=5", "executor=slurm", cwd=workdir, env={"PATH": "/nonexistent"})
    assert r.returncode == 2 and "sbatch not found" in r.stderr
    assert not (workdir / "runs").exists()
