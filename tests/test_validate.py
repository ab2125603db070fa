"""Every setting in ftlaunch/conf/ has a type/range rule (ftlaunch/config/validate.py), and a bad value of each is refused
by `launch` with one line, exit 2 and nothing written. The keys come from the conf files themselves, so a
key added later without a rule fails test_every_conf_key_has_a_rule by name."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from ftlaunch.cli import launch as cli
from ftlaunch.config.catalog import conf_dir
from ftlaunch.config.validate import RULES, check, check_key
from ftlaunch.contract.errors import ConfigError
from tests.conftest import run_launch

GROUPS = ("model", "data", "method", "gpu", "cluster")
DEFAULTS = {"model": "tiny", "data": "sample", "method": "auto", "gpu": "auto", "cluster": "local"}


def conf_keys() -> dict[str, tuple[str, str] | None]:
    """Dotted key -> (group, option whose yaml defines it) for every key in ftlaunch/conf/; None for config.yaml's."""
    root = conf_dir()
    out: dict[str, tuple[str, str] | None] = {}
    top = yaml.safe_load(root.joinpath("config.yaml").read_text())
    for k, v in top.items():
        if k in ("defaults", "hydra"):
            continue
        for sub in v if isinstance(v, dict) else [None]:
            out[f"{k}.{sub}" if sub else k] = None
    for g in GROUPS:
        files = sorted(f for f in root.joinpath(g).iterdir() if f.name.endswith(".yaml"))
        files.sort(key=lambda f: f.name != f"{DEFAULTS[g]}.yaml")  # the default option first
        for f in files:
            for k in yaml.safe_load(f.read_text()) or {}:
                out.setdefault(f"{g}.{k}", (g, f.name[:-5]))
    return out


KEYS = conf_keys()


def test_every_conf_key_has_a_rule():
    missing = sorted(k for k in KEYS if k not in RULES)
    assert not missing, f"no rule in ftlaunch/config/validate.py RULES for: {', '.join(missing)}"


def _cases():
    for key in sorted(set(KEYS) | set(RULES)):  # RULES also holds keys read but not shipped (budget, mlp)
        rule = RULES.get(key)
        if rule is None:
            continue  # reported by test_every_conf_key_has_a_rule
        for bad in rule.bad_values():
            yield key, bad


CASES = list(_cases())


def launch_here(args: list[str], tmp_path, monkeypatch, capsys) -> tuple[int, list[str], str]:
    """`launch ARGS` in this process (the same main() the console script runs), in tmp_path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["launch", *args])
    monkeypatch.setattr(cli, "_exit_code", 0)
    monkeypatch.setattr(cli, "_printed", set())
    monkeypatch.setattr(cli, "_task_started", False)
    with pytest.raises(SystemExit) as e:
        cli.main()
    out = capsys.readouterr()
    return e.value.code, [ln for ln in out.err.splitlines() if ln.strip()], out.out


@pytest.mark.parametrize("key,bad", CASES, ids=[f"{k}={b}" for k, b in CASES])
def test_bad_value_of_every_setting_is_refused(key, bad, tmp_path, monkeypatch, capsys):
    where = KEYS.get(key)
    args = ["dry_run=true"] + ([f"{where[0]}={where[1]}"] if where else [])  # the bad value comes last
    if RULES[key].kind in ("prices", "names"):  # a mapping: its entries are appended one by one
        args.append(f"+{key}.{bad}")
    else:
        args.append(f"{'' if key in KEYS else '+'}{key}={bad}")  # + appends keys no yaml ships
    code, err, _ = launch_here(args, tmp_path, monkeypatch, capsys)
    assert code == 2, (args, err)
    # model.path is resolved (local folder / HF cache, ftlaunch/config/modelconfig.py rewrite_args) before the
    # table sees it: refused there, in its own words
    named = err[0].startswith(f"error: {key}") or (key == "model.path" and err[0].startswith("error: "))
    assert len(err) == 1 and named, (args, err)
    assert not list(tmp_path.iterdir()), list(tmp_path.iterdir())  # no run folder, no mlflow.db


def test_good_values_pass():
    cfg = {"show": 0, "seed": 2**32 - 1, "epochs": 0.5, "zero": 3, "offload": None, "dry_run": True,
           "model": {"mlp": "standard", "head_dim": None}, "cluster": {"prices": {"a10g": 1.01}, "gpus": "l4"},
           "method": {"lora_dropout": 0.0, "learning_rate": 1e-5}, "gpu": {"mfu": 1}}  # fmt: skip
    assert check(cfg) == cfg


# The cases, through the installed console script: single plan and -m sweep.
TYPOS = [
    ("+bugdet=500", "did you mean +budget?"),
    ("+model.hiden_size=1", "did you mean model.hidden_size?"),
    ("+goal.optimise=time", "did you mean goal.optimize?"),
    ("data.fromat=x", "did you mean data.format?"),
    ("+optimize=time", "did you mean goal.optimize?"),
    ("+model.wizardry=1", "known are model.name, model.path"),
]


@pytest.mark.parametrize("sweep", [False, True], ids=["single", "sweep"])
@pytest.mark.parametrize("arg,needle", TYPOS, ids=[t[0] for t in TYPOS])
def test_unknown_key_gets_a_suggestion(arg, needle, sweep, workdir):
    args = ["-m", arg, "+budget=1,2"] if sweep else [arg, "+budget=5"]
    r = run_launch(*args, "dry_run=true", cwd=workdir)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr
    assert not list(workdir.iterdir())


def test_sweep_refuses_a_bad_value_before_any_plan_is_written(workdir):
    r = run_launch("-m", "+budget=1,2", "show=3,-1", "dry_run=true", cwd=workdir)
    assert r.returncode == 2 and r.stderr.startswith("error: show=-1 must be"), r.stderr
    assert r.stderr.count("\n") == 1 and not list(workdir.iterdir())


@pytest.mark.parametrize("sweep", [[], ["-m", "seed=1,2"]], ids=["single", "sweep"])
def test_real_run_without_budget_is_refused_and_writes_nothing(workdir, sweep):
    r = run_launch(*sweep, cwd=workdir)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "a real run needs a budget" in r.stderr and "+budget=none" in r.stderr
    assert not list(workdir.iterdir())  # no run folder, no mlflow.db, nothing trained


def test_dry_run_and_explicit_opt_out_plan_without_budget(workdir):
    assert run_launch("dry_run=true", cwd=workdir).returncode == 0
    r = run_launch("+budget=none", "dry_run=true", "output_root=none", cwd=workdir)
    assert r.returncode == 0, r.stderr
    (plan,) = workdir.glob("none/*/plan.json")
    assert json.loads(plan.read_text())["budget_usd"] is None


def test_budget_opt_in_rule():
    real = {"dry_run": False}
    with pytest.raises(ConfigError, match="needs a budget"):
        check(real)
    assert check({**real, "budget": "none"})["budget"] is None  # +budget=none
    assert check({**real, "budget": None})["budget"] is None  # +budget=null
    assert "budget" not in check({**real, "cost_cap": 20})  # a runtime cap alone is enough
    assert check({**real, "budget": 5})["budget"] == 5


def test_check_key_leaves_maps_free_form_and_hydra_alone():
    for key in ("cluster.prices.h100-sxm", "auth.api_key", "hydra.verbose", "budget", "model.mlp"):
        check_key(key, appended=True)
    with pytest.raises(ConfigError, match=r"unknown setting \+cluster.gpu_typo"):
        check_key("cluster.gpu_typo", appended=True)


def test_top_level_settings_from_the_table_match_config_yaml():
    top = yaml.safe_load(conf_dir().joinpath("config.yaml").read_text())
    assert cli._top_level_keys() == set(top) - {"defaults", "hydra"}


def test_a_matmul_rate_above_the_datasheet_peak_is_refused(workdir):
    r = run_launch("gpu=h100-sxm", "gpu.matmul_tflops=5000", "cluster=cloud", "+budget=50", "dry_run=true",
                   cwd=workdir)  # fmt: skip
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "matmul_tflops=5000 is above bf16_tflops" in r.stderr and not list(workdir.iterdir())
