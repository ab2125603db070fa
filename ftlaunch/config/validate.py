"""Type and range of every setting, as one table (dotted key -> rule), and refusal of unknown keys.

Runs on the resolved config before anything is planned or written; each failure is one line that says what
is wrong and how to fix it. Cross-field checks (seq_len vs the model's context, n_gpus vs the cluster) stay
with the builders in ftlaunch/config/build.py. A key added to ftlaunch/conf/ needs a rule here: tests/test_validate.py
enumerates ftlaunch/conf/ and names any key without one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ftlaunch.contract.errors import ConfigError

# Top-level namespaces whose contents ftlaunch never reads but keeps (redacted) in the run's config.yaml,
# e.g. `+auth.api_key=...` for site credentials; everything else appended must be a known setting.
FREE_FORM = ("auth",)
# `+budget=none`: the explicit opt-in to a real run without a budget (no planned cost limit).
NO_BUDGET = "none"
NEEDS_BUDGET = (
    "a real run needs a budget: add +budget=<USD> (e.g. +budget=5), or cost_cap=<USD> to cap only "
    "the running job, or +budget=none to run with no cost limit"
)


@dataclass(frozen=True)
class Rule:
    kind: str  # int | num | bool | str | enum | gpus (GPU names) | ints (layer indices) | prices (name -> USD) | names (name -> name)
    lo: float | None = None  # inclusive unless lo_open
    hi: float | None = None  # inclusive unless hi_open
    lo_open: bool = False
    hi_open: bool = False
    null: bool = False  # null allowed (planned / default)
    choices: tuple[str, ...] = ()
    hint: str = ""  # how to fix, e.g. "e.g. zero=2"

    def check(self, key: str, v: Any) -> None:
        if v is None:
            if not self.null:
                raise ConfigError(f"{key} must be set ({self.describe()}){self._hint()}")
            return
        if isinstance(v, str) and "${" in v:
            return  # an unresolved interpolation is OmegaConf's to report
        if self.kind == "names" and isinstance(v, dict):
            for g, name in v.items():
                if not isinstance(name, str) or not name.strip():
                    raise ConfigError(f"{key}.{g}={name!r} must be a name, e.g. {{a100_40g: a100-40gb}}")
        if self.kind == "prices" and isinstance(v, dict):
            for g, p in v.items():
                if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or p < 0:
                    raise ConfigError(f"{key}.{g}={p!r} must be a non-negative number (USD per GPU-hour)")
        problem = self._problem(key, v)
        if problem:
            raise ConfigError(f"{key}={v!r} {problem}{self._hint()}")

    def _hint(self) -> str:
        return f" ({self.hint})" if self.hint else ""

    def _problem(self, key: str, v: Any) -> str | None:
        k = self.kind
        if k == "bool":
            return None if isinstance(v, bool) else "must be true or false"
        if k == "enum":
            if v in self.choices:
                return None
            c = self.choices
            return f"is not {c[0]} or {c[1]}" if len(c) == 2 else f"is not one of {', '.join(c)}"
        if k == "str":
            if not isinstance(v, str):
                return f"must be text: quote it, {key}='{v}'"
            return None if v.strip() else "must not be empty"
        if k in ("int", "num"):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                return f"is not a number: give {self.describe()}"
            if k == "int" and v != int(v) or not self._in_range(v):
                return f"must be {self.describe()}"
            return None
        if k == "gpus":
            items = [v] if isinstance(v, str) else v
            if not isinstance(items, (list, tuple)) or not items:
                return "must list the GPU types the cluster offers, e.g. [a100-80gb]"
            if not all(isinstance(g, str) and g.strip() for g in items):
                return "must be a list of GPU type names, e.g. [a100-80gb, h100-sxm]"
            return None
        if k == "ints":
            ok = isinstance(v, (list, tuple)) and all(
                isinstance(i, int) and not isinstance(i, bool) for i in v
            )
            return None if ok and all(i >= 0 for i in v) else "must be a list of layer indices, e.g. [0, 1]"
        if k == "names":
            return None if isinstance(v, dict) else "must map names to names, e.g. {a100_40g: a100-40gb}"
        if k == "prices":
            ok = isinstance(v, dict)
            return None if ok else "must map GPU types to USD per GPU-hour, e.g. {a10g: 1.01}"
        raise AssertionError(f"unknown rule kind {k!r}")

    def _in_range(self, v: float) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return not (self.hi is not None and (v >= self.hi if self.hi_open else v > self.hi))

    def describe(self) -> str:
        k = self.kind
        if k in ("int", "num"):
            return _describe_number(self) + (" or null" if self.null else "")
        if k == "enum":
            return "one of " + ", ".join(self.choices) + (" or null" if self.null else "")
        return {"bool": "true or false", "str": "text"}.get(k, k)

    def bad_values(self) -> list[str]:
        """Override texts this rule refuses (for the table-driven test): out of range, then wrong type."""
        k = self.kind
        if k in ("int", "num"):
            out = []
            if self.lo is not None:
                out.append(_n(self.lo) if self.lo_open else _n(self.lo - 1))
            if self.hi is not None:
                out.append(_n(self.hi) if self.hi_open else _n(self.hi + 1))
            return [*out, "lots"] + (["1.5"] if k == "int" else []) + ([] if self.null else ["null"])
        return ([] if self.null else ["null"]) + {
            "bool": ["maybe", "2"],
            "enum": ["nosuchvalue"],
            "str": ["''", "5"],
            "gpus": ["[]"],
            "ints": ["[-1]", "x"],
            "prices": ["a10g=-1"],  # appended entry: +cluster.prices.a10g=-1
            "names": ["a100=5"],  # appended entry: +cluster.gres_map.a100=5
        }[k]


def _n(x: float) -> str:
    return str(int(x)) if x == int(x) else f"{x:g}"


def _describe_number(r: Rule) -> str:
    what = "whole number" if r.kind == "int" else "number"
    lo, hi = r.lo, r.hi
    if hi is None:
        if lo == 0:
            return f"a {'positive' if r.lo_open else 'non-negative'} {what}"
        return f"a {what}" + ("" if lo is None else f" {'>' if r.lo_open else '>='} {_n(lo)}")
    if r.kind == "int" and lo is not None and not (r.lo_open or r.hi_open):
        return f"a whole number {_n(lo)}..{_n(hi)}"
    left = "any" if lo is None else f"{'(' if r.lo_open else '['}{_n(lo)}"
    return f"a {what} in {left}, {_n(hi)}{')' if r.hi_open else ']'}"


def _int(lo: float | None = None, hi: float | None = None, null: bool = False, hint: str = "") -> Rule:
    return Rule("int", lo=lo, hi=hi, null=null, hint=hint)


def _pos(kind: str = "num", null: bool = False, hint: str = "") -> Rule:
    return Rule(kind, lo=0, lo_open=True, null=null, hint=hint)


def _enum(*choices: str, null: bool = False) -> Rule:
    return Rule("enum", choices=choices, null=null)


BOOL, TEXT, OPT_TEXT = Rule("bool"), Rule("str"), Rule("str", null=True)

RULES: dict[str, Rule] = {
    # ftlaunch/conf/config.yaml
    "job_name": TEXT,
    "goal.domain_shift": _enum("small", "large"),
    "goal.optimize": _enum("cost", "time"),
    "seq_len": _int(1, null=True, hint="tokens per sample; null: the data's longest"),
    "epochs": Rule("num", lo=0, lo_open=True, hi=1000, hint="passes over the data, e.g. epochs=1"),
    "global_batch": _int(1, hint="samples per optimizer step, e.g. global_batch=32"),
    "n_gpus": _int(1, null=True),  # null: planned
    "zero": _int(0, 3, null=True, hint="DeepSpeed ZeRO stage"),
    "offload": _enum("none", "optimizer", "all", null=True),
    "micro_batch": _int(1, null=True),
    "grad_ckpt": Rule("bool", null=True),
    "attention": _enum("sdpa", "eager"),
    "checkpoint_every": _int(1, null=True, hint="optimizer steps; null: about every 30 minutes"),
    "seed": _int(0, 2**32 - 1),  # numpy's seed range (transformers.set_seed seeds numpy too)
    "dry_run": BOOL,
    "cost_cap": _pos(null=True, hint="USD the running job may spend, e.g. cost_cap=20"),
    "calibrate": BOOL,
    "executor": _enum("auto", "local", "slurm"),
    "output_root": Rule("str", hint="a folder for the run folders, e.g. output_root=runs"),
    "show": _int(0, 100, hint="how many rejected alternatives to print, e.g. show=6"),
    "tracking.enabled": BOOL,
    "tracking.uri": OPT_TEXT,
    "tracking.experiment": Rule("str", hint="an MLflow experiment name, e.g. tracking.experiment=ftlaunch"),
    # appended on the command line (+budget=500); `none` opts out, see check()
    "budget": _pos(null=True, hint="dollars, e.g. +budget=500, or +budget=none to run without one"),
    # ftlaunch/conf/model/*.yaml: HF config.json facts
    "model.name": TEXT,
    "model.path": TEXT,
    "model.hidden_size": _int(1),
    "model.intermediate_size": _int(1),
    "model.num_hidden_layers": _int(1),
    "model.num_attention_heads": _int(1),
    "model.num_key_value_heads": _int(1),
    "model.vocab_size": _int(1),
    "model.max_position_embeddings": _int(1),
    "model.tie_word_embeddings": BOOL,
    "model.attention_bias": BOOL,
    "model.head_dim": _int(1, null=True),
    "model.norms_per_layer": _int(0, 16),
    "model.mlp": _enum("gated", "standard"),
    "model.model_type": TEXT,  # the supported families are checked in ftlaunch/config/build.py (modelconfig.SUPPORTED)
    "model.qk_norm": _enum("none", "head", "full"),
    "model.fused_projections": BOOL,
    "model.attention_out_bias": BOOL,
    "model.mlp_bias": BOOL,
    "model.num_experts": _int(0),  # 0: dense
    "model.sliding_window": _int(0),  # 0: no sliding-window layers
    "model.sliding_layers": _int(0),
    "model.experts_per_token": _int(0),
    "model.moe_intermediate_size": _int(0),
    "model.shared_expert_intermediate_size": _int(0),
    "model.shared_expert_gate": BOOL,
    "model.dense_layers": Rule("ints", null=True),
    # ftlaunch/conf/data/*.yaml (nulls are measured from a local file)
    "data.name": TEXT,
    "data.path": TEXT,
    "data.format": _enum("alpaca", "messages", "preference", "text"),
    "data.split": TEXT,
    "data.n_samples": _int(1, null=True),
    "data.tokens_per_sample": _pos(null=True),
    "data.max_tokens": _int(1, null=True),
    "data.packing": BOOL,
    # ftlaunch/conf/method/*.yaml
    "method.name": _enum("auto", "lora", "qlora", "full", "dpo"),
    "method.adapter": _enum("auto", "lora", "qlora", "full"),
    "method.lora_r": _int(1, 4096),
    "method.lora_alpha": _int(1),
    "method.lora_dropout": Rule("num", lo=0, hi=1, hi_open=True),
    "method.lora_targets": TEXT,
    "method.learning_rate": Rule("num", lo=0, lo_open=True, hi=1, null=True, hint="e.g. 2e-4"),
    "method.dpo_beta": _pos(),
    "method.dpo_reference": _enum("auto", "adapter", "model", "precomputed"),
    # ftlaunch/conf/gpu/*.yaml
    "gpu.name": TEXT,
    "gpu.label": TEXT,
    "gpu.memory_gib": _pos(),
    "gpu.bf16_tflops": _pos(),
    "gpu.mem_bandwidth_gb_s": _pos(),
    "gpu.price_per_gpu_hour": Rule("num", lo=0, null=True, hint="USD per GPU-hour, or null (unpriced)"),
    "gpu.intra_node_gb_s": _pos(),
    "gpu.mfu": Rule("num", lo=0, lo_open=True, hi=1, null=True),
    # measured max achievable bf16 matmul TFLOP/s (ftlaunch/forecast/throughput.py efficiency_for), at most the peak
    "gpu.matmul_tflops": Rule(
        "num", lo=0, lo_open=True, null=True, hint="measured bf16 matmul TFLOP/s, or null"
    ),
    # ftlaunch/conf/cluster/*.yaml
    "cluster.name": TEXT,
    "cluster.executor": _enum("local", "slurm"),
    "cluster.gpus": Rule("gpus"),
    "cluster.gpus_per_node": _int(1),
    "cluster.max_nodes": _int(1),
    "cluster.inter_node_gb_s": Rule("num", lo=0),
    "cluster.partition": OPT_TEXT,
    "cluster.account": OPT_TEXT,
    "cluster.qos": OPT_TEXT,
    "cluster.cpus_per_gpu": _int(1),
    "cluster.mem_per_gpu_gib": _pos(),
    "cluster.prices": Rule("prices", null=True),
    "cluster.gpu_flag": _enum("gres", "gpus-per-node"),
    # Slurm-discovered clusters (ftlaunch/cluster/clusterconf.py: ftlaunch/conf/cluster/auto.yaml, `launch-cluster` output)
    "cluster.gres_map": Rule("names", null=True),  # gres type -> GPU type, for types the catalog lacks
    "cluster.gres": Rule("names", null=True),  # GPU type -> gres type
    "cluster.max_time_min": _int(1, null=True, hint="the partition's MaxTime in minutes, null: no limit"),
    "budget_unit": _enum("usd", "gpu_hours"),
}
# Settings no conf file ships: given with a leading + (`+budget=500`).
APPENDED = ("budget",)
# Settings whose value is a mapping with free keys (checked by their rule as a whole).
MAPS = tuple(k for k, r in RULES.items() if r.kind in ("prices", "names"))


def check(cfg: dict[str, Any]) -> dict[str, Any]:
    """Every known setting in the resolved config against its rule; returns cfg with budget normalised
    (`+budget=none` -> None). A real run needs a budget, a cost_cap or the explicit `+budget=none`."""
    for key, v in _flatten(cfg):
        rule = RULES.get(key)
        if rule is not None and not (key == "budget" and v == NO_BUDGET):
            rule.check(key, v)
    if "budget" in cfg and cfg["budget"] in (None, NO_BUDGET):
        cfg = {**cfg, "budget": None}
    elif "budget" not in cfg and not cfg.get("dry_run") and cfg.get("cost_cap") is None:
        raise ConfigError(NEEDS_BUDGET)
    return cfg


def _flatten(d: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key not in MAPS:
            yield from _flatten(v, key + ".")
        else:
            yield key, v


def check_key(key: str, appended: bool) -> None:
    """A key from the command line (`+key=...` when appended) must be a known setting; a near miss gets a
    suggestion. Keys below a known mapping (cluster.prices.<gpu>) and free-form namespaces are left alone."""
    key = key.lstrip("+~")
    if key.startswith("hydra") or key.split(".")[0] in FREE_FORM or key in RULES:
        return
    if any(key.startswith(m + ".") for m in MAPS):
        return
    if not appended and "." not in key:
        return  # a plain top-level key: ftlaunch/cli/launch.py's check_overrides explains those
    prefix = key.rsplit(".", 1)[0] + "." if "." in key else ""
    near = suggest(key)
    plus = "+" if appended or key in APPENDED else ""
    if near:
        fix = did_you_mean(near)
    elif prefix and any(k.startswith(prefix) for k in RULES):
        fix = "known are " + ", ".join(k for k in RULES if k.startswith(prefix))
    else:
        fix = "known top-level settings are " + ", ".join(sorted({k.split(".")[0] for k in RULES}))
    raise ConfigError(f"unknown setting {plus}{key}: {fix}")


def did_you_mean(key: str) -> str:
    return f"did you mean {'+' if key in APPENDED else ''}{key}?"


def suggest(key: str) -> str | None:
    """The closest known setting: by the whole dotted key, else by its last part (optimise -> goal.optimize)."""
    import difflib

    near = difflib.get_close_matches(key, list(RULES), n=1, cutoff=0.75)
    if near:
        return near[0]
    leaf = key.rsplit(".", 1)[-1]
    leaves: dict[str, str] = {}
    for k in RULES:
        leaves.setdefault(k.rsplit(".", 1)[-1], k)
    near = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.75)
    return leaves[near[0]] if near else None


def check_sweep(argv: list[str]) -> None:
    """A -m sweep runs its plans one after another: refuse a bad value in any of them before the first
    writes anything. Values are parsed with Hydra's own override parser (lists, ranges, quoting)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        overrides = OverridesParser.create().parse_overrides([a for a in argv if not a.startswith("-")])
    except HydraException:
        return  # Hydra reports its own syntax errors
    given: dict[str, list[Any]] = {}
    for o in overrides:
        rule = RULES.get(o.key_or_group)
        if rule is None or o.is_delete():
            continue
        try:
            values = list(o.sweep_iterator()) if o.is_sweep_override() else [o.value()]
        except HydraException:
            continue  # interval sweeps have no values to list
        given[o.key_or_group] = values
        for v in values:
            if not (o.key_or_group == "budget" and v == NO_BUDGET):
                rule.check(o.key_or_group, v)
    if "budget" not in given:  # some job would be a real run without a cost limit: refuse them all now
        import yaml

        from ftlaunch.config.catalog import conf_dir

        top = yaml.safe_load(conf_dir().joinpath("config.yaml").read_text())
        real = not all(given.get("dry_run", [top.get("dry_run")]))
        if real and None in given.get("cost_cap", [top.get("cost_cap")]):
            raise ConfigError(NEEDS_BUDGET)
