"""A user's own model: config.json -> facts -> exact counts, as transformers builds it and PEFT adapts it.

Every supported family is built on the meta device from its real-size config (no weights, no download) and
the planner's parameter count must equal sum(numel); its LoRA count must equal what get_peft_model creates
for the recipe's targets. Tiny random models of each family are saved with save_pretrained and trained on
CPU through from_pretrained (ftlaunch/recipes/train.py).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from ftlaunch.config.build import model_spec
from ftlaunch.config.modelconfig import facts, read_config, resolve_model_dir, rewrite_args
from ftlaunch.contract.errors import ConfigError
from ftlaunch.forecast.params import count_params, lora_uses_parameter_targets
from tests.conftest import load, make_job, run_launch
from tests.model_configs import REAL, TINY

R = 8
# a tiny SigLIP tower for multimodal Gemma-3 checkpoints (the recipe trains the text model only)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32,
              patch_size=8)  # fmt: skip


def hf_config(model_type: str, kw: dict):
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, **kw)


def spec_of(directory: Path, name: str = "m"):
    """The planner's facts of a folder holding config.json (the tokenizer check is tested on its own below)."""
    return model_spec({"name": name, "path": str(directory), **facts(read_config(directory))})


def meta_counts(cfg, targets="all-linear", r=R) -> tuple[int, int]:
    """(sum of numel, PEFT trainable numel) of the model transformers builds from cfg, on the meta device.
    A multimodal Gemma-3 config: its text model, which is what ftlaunch/recipes/train.py loads (Gemma3ForCausalLM)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    cfg = cfg.text_config if cfg.model_type == "gemma3" else cfg
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = AutoModelForCausalLM.from_config(cfg)
        total = sum(p.numel() for p in model.parameters())
        t = targets if targets == "all-linear" else [x.strip() for x in targets.split(",")]
        peft = get_peft_model(
            model, LoraConfig(r=r, lora_alpha=2 * r, target_modules=t, task_type="CAUSAL_LM")
        )
        lora = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    return total, lora


@pytest.mark.parametrize("key", sorted(REAL))
def test_real_size_family_is_counted_exactly(key, tmp_path):
    model_type, kw = REAL[key]
    cfg = hf_config(model_type, kw)
    cfg.save_pretrained(tmp_path)
    m = spec_of(tmp_path, key)
    p = count_params(m, lora_r=R)
    total, lora = meta_counts(cfg)
    assert (p.total, p.lora) == (total, lora)
    # the catalog entry states the same facts as the config.json
    catalog = model_spec(load("model", key))
    assert replace(catalog, path=m.path, name=m.name, head_dim=catalog.hd) == replace(m, head_dim=m.hd)
    if m.is_moe:  # every expert is resident, a token runs through top-k of them
        assert p.active < p.linear + p.experts


@pytest.mark.parametrize("model_type", sorted(TINY))
def test_tiny_family_is_counted_exactly(model_type, tmp_path):
    cfg = hf_config(model_type, TINY[model_type])
    cfg.save_pretrained(tmp_path)
    p = count_params(spec_of(tmp_path), lora_r=R)
    assert (p.total, p.lora) == meta_counts(cfg)


@pytest.mark.parametrize(
    ("model_type", "targets"),
    [
        ("qwen3_moe", "q_proj,v_proj"),
        ("qwen3_moe", "q_proj,gate_proj,up_proj"),  # experts' gate_up tensor only (rank 2r)
        ("qwen3_moe", "down_proj,gate"),
        ("mixtral", "w1,w3,w2"),
        ("qwen2_moe", "q_proj,down_proj,shared_expert_gate"),
        ("phi3", "qkv_proj,down_proj"),
    ],
)
def test_lora_target_lists_match_peft(model_type, targets, tmp_path):
    cfg = hf_config(model_type, TINY[model_type])
    cfg.save_pretrained(tmp_path)
    assert count_params(spec_of(tmp_path), lora_r=R, targets=targets).lora == meta_counts(cfg, targets)[1]


def test_peft_fused_experts_need_both_halves_and_no_dropout(tmp_path):
    hf_config("qwen3_moe", TINY["qwen3_moe"]).save_pretrained(tmp_path)
    m = spec_of(tmp_path)
    with pytest.raises(ConfigError, match="gate_proj and up_proj"):
        count_params(m, targets="gate_proj")
    assert lora_uses_parameter_targets(m, "all-linear") and not lora_uses_parameter_targets(m, "q_proj")
    save_tokenizer(tmp_path)
    job = make_job(model={"name": "moe", "path": str(tmp_path)}, data="sample", cluster="local")
    assert job.method.lora_dropout == 0.0  # PEFT's ParamWrapper refuses dropout on expert tensors


def test_gemma3_multimodal_plans_its_text_model(tmp_path):
    cfg = hf_config("gemma3", {"text_config": dict(TINY["gemma3_text"]), "vision_config": VISION})
    cfg.save_pretrained(tmp_path)
    m = spec_of(tmp_path)
    assert m.model_type == "gemma3" and m.qk_norm == "head" and m.tie_word_embeddings
    from transformers import Gemma3ForConditionalGeneration

    from_text = meta_counts(hf_config("gemma3_text", TINY["gemma3_text"]))
    assert (count_params(m, lora_r=R).total, count_params(m, lora_r=R).lora) == from_text == meta_counts(cfg)
    assert (
        "gemma3" in Gemma3ForConditionalGeneration.config_class.model_type
    )  # the class the vision tower needs


# ------------------------------------------------------------------------------------ resolving and refusing


def fake_hub_cache(root: Path, repo_id: str, config: dict | None) -> Path:
    """The HF hub cache layout huggingface_hub writes: models--Org--Name/{refs/main, snapshots/<rev>/}."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snap = repo / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    if config is not None:
        (snap / "config.json").write_text(json.dumps(config))
    return snap


def test_resolve_model_dir_finds_cache_snapshots_and_folders(tmp_path, monkeypatch):
    snap = fake_hub_cache(tmp_path / "hub", "Org/Name", {"model_type": "llama"})
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert resolve_model_dir("hf:Org/Name") == snap
    assert resolve_model_dir("Org/Name") == snap  # a catalog id that happens to be cached
    assert resolve_model_dir("hf:Org/Missing") is None
    assert resolve_model_dir(str(snap)) == snap.resolve()
    assert resolve_model_dir(str(tmp_path / "nope")) is None
    assert resolve_model_dir("builtin:tiny-llama") is None
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # HF_HOME/hub
    assert resolve_model_dir("hf:Org/Name") == snap


def test_command_line_sugar():
    assert rewrite_args(["model=hf:Qwen/Qwen3-8B", "+budget=5"]) == [
        "model.path=hf:Qwen/Qwen3-8B",
        "+budget=5",
        "model.name=qwen3-8b",
    ]
    assert rewrite_args(["model.path=/x/My-Model", "model.name=m"]) == [
        "model.path=/x/My-Model",
        "model.name=m",
    ]
    assert rewrite_args(["model=llama-3-8b"]) == ["model=llama-3-8b"]
    assert rewrite_args(["model.path=Org/Name"]) == ["model.path=hf:Org/Name", "model.name=name"]
    assert rewrite_args(["model.path=builtin:tiny-llama"]) == ["model.path=builtin:tiny-llama"]


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ({"model_type": "bert", "hidden_size": 8}, "'bert' is an encoder model; supported model_type: llama"),
        ({"model_type": "llava"}, "'llava' is a vision/multimodal model; supported"),
        ({"model_type": "mamba"}, "'mamba' is not a decoder-only causal LM ftlaunch knows; supported"),
        ({}, "'(none)'"),
        ({"model_type": "llama", "hidden_size": 64}, "intermediate_size is missing"),
    ],
)
def test_unsupported_configs_say_what_is_wrong(config, says):
    with pytest.raises(ConfigError) as e:
        facts(config)
    assert says in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "case", ["missing", "empty", "no-config", "not-cached", "encoder", "bad-json", "no-tokenizer"]
)
def test_bad_model_exits_2_with_one_line_and_writes_nothing(case, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    d = tmp_path / "model"
    d.mkdir()
    env = {"HF_HUB_CACHE": str(tmp_path / "empty-hub")}
    arg = f"model.path={d}"
    if case == "missing":
        arg, says = f"model.path={tmp_path / 'nonexistent'}", "does not exist"
    elif case == "empty":
        arg, says = "model.path=", "model.path is empty"
    elif case == "no-config":
        says = "has no config.json"
    elif case == "not-cached":
        arg, says = "model=hf:Org/NotHere", "not in the local Hugging Face cache"
    elif case == "no-tokenizer":
        (d / "config.json").write_text(json.dumps({"model_type": REAL["qwen3-8b"][0], **REAL["qwen3-8b"][1]}))
        says = "has no tokenizer (tokenizer.json, tokenizer.model, tokenizer_config.json)"
    elif case == "encoder":
        (d / "config.json").write_text(json.dumps({"model_type": "bert"}))
        says = "supported model_type: llama"
    else:
        (d / "config.json").write_text("{not json")
        says = "is not valid JSON"
    r = run_launch(arg, "+budget=5", "dry_run=true", cwd=work, env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], r.stderr
    assert list(work.iterdir()) == []  # no runs/, no mlflow.db


def test_catalog_names_still_refused_when_unknown(tmp_path):
    r = run_launch("model=no-such-model", "+budget=5", "dry_run=true", cwd=tmp_path)
    assert r.returncode == 2 and "model=hf:Org/Name" in r.stderr and r.stderr.count("\n") == 1


# ------------------------------------------------------------------------------------ tiny models that train


def build_tiny(model_type: str, out: Path) -> Path:
    """A random tiny model of the family + the project's tokenizer, saved as a user's model folder would be."""
    import torch
    from transformers import AutoModelForCausalLM, Gemma3ForConditionalGeneration

    from ftlaunch.recipes.assets import build_tokenizer

    tok = build_tokenizer()
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if model_type == "gemma3":
            text = dict(TINY["gemma3_text"], **ids)
            cfg = hf_config(
                "gemma3", {"text_config": text, "vision_config": VISION, "mm_tokens_per_image": 4, **ids}
            )
            model = Gemma3ForConditionalGeneration(cfg)
        else:
            model = AutoModelForCausalLM.from_config(hf_config(model_type, {**TINY[model_type], **ids}))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


TRAIN_ARGS = (
    "data=sample",
    "+budget=5",
    "global_batch=4",
    "data.n_samples=16",
    "seq_len=64",
    "tracking.enabled=false",
)


@pytest.mark.parametrize("model_type", ["qwen3_moe"])
def test_tiny_moe_trains_through_launch(model_type, tmp_path):
    """`launch model.path=<dir>`: planned from config.json (LoRA on the experts as PEFT makes it), trained on CPU
    by the recipe through from_pretrained(<dir>)."""
    d = build_tiny(model_type, tmp_path / f"My-{model_type}")
    work = tmp_path / "work"
    work.mkdir()
    r = run_launch(f"model.path={d}", "method=lora", *TRAIN_ARGS, cwd=work, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (plan_file,) = work.glob("runs/*/plan.json")
    plan = json.loads(plan_file.read_text())
    assert plan["model"]["path"] == str(d) and plan["model"]["name"] == f"my-{model_type}"
    assert plan["model"]["arch"]["num_experts"] == 4 and plan["training"]["lora_dropout"] == 0.0
    actuals = json.loads((plan_file.parent / "actuals.json").read_text())
    p = count_params(spec_of(d), lora_r=plan["training"]["lora_r"])
    # the adapter the recipe trained is the one the planner counted (experts included)
    assert actuals["precision"]["stored_params"]["trainable"] == {"float32": p.lora}, actuals["precision"]


TRAIN = [
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma2",
    "gemma3_text",
    "gemma3",
    "phi3",
    "mixtral",
    "qwen2_moe",
    "olmoe",
]


@pytest.mark.parametrize("model_type", TRAIN)
def test_tiny_family_trains_from_its_folder(model_type, tmp_path):
    """Each family the recipe must load: planned from its folder, then the recipe's own main() trains it."""
    from ftlaunch.contract.plan import write_plan
    from ftlaunch.planning.assemble import to_plan
    from ftlaunch.planning.planner import choose
    from ftlaunch.recipes import train

    d = build_tiny(model_type, tmp_path / "model")
    job = make_job(model={"name": model_type, "path": str(d)}, data="sample", cluster="local", budget=5.0,
                   method="lora", global_batch=4, seq_len=64)  # fmt: skip
    job = replace(job, data=replace(job.data, n_samples=8))
    result = choose(job)
    assert result.chosen is not None, result.reason
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    plan = to_plan(job, result, str(run_dir))
    write_plan(plan, run_dir / "plan.json")
    assert train.main(["--plan", str(run_dir / "plan.json")]) == 0
    actuals = json.loads((run_dir / "actuals.json").read_text())
    assert actuals["precision"]["stored_params"]["trainable"] == {"float32": result.params.lora}


# ------------------------------------------------------------------------------------ planning a user's model


def save_tokenizer(d: Path) -> None:
    from ftlaunch.recipes.assets import build_tokenizer

    build_tokenizer().save_pretrained(d)


def hub_config_json(d: Path, key: str) -> Path:
    """A config.json as the Hub serves it (model_type + the family's keys), written by hand, and a tokenizer."""
    model_type, kw = REAL[key]
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"model_type": model_type, **kw}))
    save_tokenizer(d)
    return d


def test_launch_plans_a_local_folder_and_a_cached_hub_id_without_torch(tmp_path):
    snap = hub_config_json(fake_hub_cache(tmp_path / "hub", "Qwen/Qwen3-30B-A3B", None), "qwen3-30b-a3b")
    own = hub_config_json(tmp_path / "My-Mixtral", "mixtral-8x7b")
    code = (
        "import sys; from ftlaunch.cli.launch import main\n"
        "for arg in sys.argv[1:]:\n"
        " sys.argv=['launch', arg, 'cluster=cloud', 'data=alpaca', '+budget=5000', 'dry_run=true']\n"
        " try:\n  main()\n except SystemExit as e:\n  assert e.code == 0, e.code\n"
        "heavy={'torch','transformers','peft','trl','bitsandbytes','deepspeed','mlflow'} & set(sys.modules)\n"
        "assert not heavy, heavy\nprint('clean')"
    )
    work = tmp_path / "work"
    work.mkdir()
    env = {**__import__("os").environ, "HF_HUB_CACHE": str(tmp_path / "hub")}
    r = __import__("subprocess").run(
        [__import__("sys").executable, "-c", code, "model=hf:Qwen/Qwen3-30B-A3B", f"model.path={own}"],
        cwd=work, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert r.returncode == 0 and "clean" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    plans = {
        json.loads(p.read_text())["model"]["name"]: json.loads(p.read_text())
        for p in work.glob("runs/*/plan.json")
    }
    assert set(plans) == {"qwen3-30b-a3b", "my-mixtral"}
    assert plans["qwen3-30b-a3b"]["model"]["path"] == str(snap)  # the recipe loads the same folder
    assert plans["qwen3-30b-a3b"]["model"]["n_params"] == 30_532_122_624
    assert plans["my-mixtral"]["model"]["n_params"] == 46_702_792_704


def test_moe_memory_holds_every_expert_and_flops_count_the_active_ones():
    from ftlaunch.forecast.memory import _activation_bytes, peak_memory
    from ftlaunch.forecast.setup import Setup
    from ftlaunch.forecast.throughput import forward_flops_per_token

    m = model_spec(load("model", "mixtral-8x7b"))
    p = count_params(m)
    dense_twin = replace(m, num_experts=0, experts_per_token=0)  # same layer, one expert's MLP
    full = dict(method="full", objective="sft", offload_optimizer=False, offload_params=False, micro_batch=1,
                seq_len=1024, grad_ckpt=True)  # fmt: skip
    one = peak_memory(m, p, Setup(n_gpus=8, zero=2, **full))
    sharded = peak_memory(m, p, Setup(n_gpus=8, zero=3, **full))
    assert one.weights == 2.0 * p.total  # bf16 copy of all 8 experts on every GPU (ZeRO-2 keeps params whole)
    assert sharded.weights == 2.0 * p.total / 8  # ZeRO-3 shards experts like any parameter
    # a token runs through 2 of 8 experts: 2 FLOPs per active parameter (Mixtral's published 12.9B active)
    mm, _ = forward_flops_per_token(m, p, 1024)
    assert mm == 2.0 * p.matmul and 12.8e9 < p.matmul + p.embed < 13.0e9  # (published count includes embed)
    # activations: router logits (2E bf16 + 4E fp32 softmax) and k routed copies of the expert MLP
    h, i, e, k = m.hidden_size, m.intermediate_size, m.num_experts, m.experts_per_token
    moe, _ = _activation_bytes(m, "lora", 0.0, "all-linear")
    dense, _ = _activation_bytes(dense_twin, "lora", 0.0, "all-linear")
    # (a frozen-weight expert MLP keeps 6I: gate out, silu out, up out, as the measured dense MLP does; the dense
    # twin's LoRA also keeps a 4-byte fp32 copy of gate/up/down's inputs, which the stacked experts do not have)
    assert moe - dense == 6 * e + k * 4 * h + (k - 1) * 6 * i - 4 * (2 * h + i)


def test_qlora_leaves_stacked_experts_bf16(tmp_path):
    """bitsandbytes quantizes nn.Linear only: the experts and router stay bf16, as memory.py counts them."""
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    d = build_tiny("qwen3_moe", tmp_path / "m")
    q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
                           bnb_4bit_quant_storage=torch.bfloat16)  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(d, quantization_config=q, dtype=torch.bfloat16)
    kinds = {n: type(p).__name__ for n, p in model.named_parameters()}
    p = count_params(spec_of(d))
    stacked = sum(v.numel() for n, v in model.named_parameters() if kinds[n] == "Parameter" and v.dim() >= 2
                  and "embed" not in n and "lm_head" not in n)  # fmt: skip
    assert stacked == p.experts and p.experts > 0
    assert all(kinds[n] == "Params4bit" for n in kinds if n.endswith("_proj.weight"))


SLIDING = [(k, *REAL[k]) for k in sorted(REAL)] + [
    ("mistral v0.1 (no key: 4096)", "mistral", {k: v for k, v in REAL["mistral-7b"][1].items() if k != "sliding_window"}),
    ("qwen2 windowed", "qwen2", dict(REAL["qwen2.5-7b"][1], use_sliding_window=True, sliding_window=4096, max_window_layers=20)),
    ("qwen3_moe windowed", "qwen3_moe", dict(REAL["qwen3-30b-a3b"][1], use_sliding_window=True, sliding_window=2048)),
    ("gemma3 pattern 4", "gemma3_text", dict(REAL["gemma-3-12b"][1]["text_config"], sliding_window_pattern=4)),
    ("mixtral windowed", "mixtral", dict(REAL["mixtral-8x7b"][1], sliding_window=4096)),
]  # fmt: skip


@pytest.mark.parametrize(("what", "model_type", "kw"), SLIDING, ids=[s[0] for s in SLIDING])
def test_sliding_window_layers_are_the_ones_transformers_builds(what, model_type, kw):
    """From a Hub-style config.json (no layer_types written), the planner's sliding window and count of sliding
    layers equal transformers' config: its layer_types where the family has them, else every layer when
    sliding_window is set (mistral, mixtral, phi3, qwen3_moe mask every layer with it)."""
    cfg = hf_config(model_type, kw)
    cfg = cfg.text_config if model_type == "gemma3" else cfg
    types = getattr(cfg, "layer_types", None)
    window = getattr(cfg, "sliding_window", None) or 0
    if types is not None:
        want = sum(t == "sliding_attention" for t in types)
    else:
        want = cfg.num_hidden_layers if window else 0
    f = facts({"model_type": model_type, **kw})
    assert (f.get("sliding_layers", 0), f.get("sliding_window", 0)) == (want, window if want else 0)


def test_a_bare_hub_id_plans_the_cached_model_else_the_catalog_entry_else_says_how(tmp_path):
    """`launch model=Qwen/Qwen2.5-7B`, as from_pretrained or Axolotl's base_model take it: the cached
    snapshot's own config.json when the HF cache has it, else the catalog entry with that Hub id, else one line
    and exit 2 with nothing written."""
    snap = hub_config_json(fake_hub_cache(tmp_path / "hub", "Qwen/Qwen3-30B-A3B", None), "qwen3-30b-a3b")
    env = {"HF_HUB_CACHE": str(tmp_path / "hub")}
    args = ("cluster=cloud", "+budget=5000", "dry_run=true")
    for model, name, path in [
        ("Qwen/Qwen3-30B-A3B", "qwen3-30b-a3b", str(snap)),  # cached: its folder
        ("Qwen/Qwen2.5-7B", "qwen2.5-7b", "Qwen/Qwen2.5-7B"),  # not cached: the catalog entry
    ]:
        work = tmp_path / name
        work.mkdir()
        r = run_launch(f"model={model}", *args, cwd=work, env=env)
        assert r.returncode == 0, r.stderr
        (plan,) = [json.loads(p.read_text()) for p in work.glob("runs/*/plan.json")]
        assert (plan["model"]["name"], plan["model"]["path"]) == (name, path)
    work = tmp_path / "missing"
    work.mkdir()
    r = run_launch("model=Qwen/NotDownloaded-9B", *args, cwd=work, env=env)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "huggingface-cli download Qwen/NotDownloaded-9B" in r.stderr and not list(work.iterdir())


def test_a_model_sweep_takes_hub_ids_of_catalog_entries(tmp_path):
    """`launch -m model=Qwen/Qwen2.5-7B,llama-3-8b`: each Hub id in the sweep becomes its catalog entry; one
    with no entry is refused before any plan is written."""
    args = ("cluster=cloud", "+budget=500", "dry_run=true")
    ok = tmp_path / "ok"
    ok.mkdir()
    r = run_launch("-m", "model=Qwen/Qwen2.5-7B,llama-3-8b", *args, cwd=ok, timeout=120)
    assert r.returncode == 0, r.stderr
    names = sorted(json.loads(p.read_text())["model"]["name"] for p in ok.rglob("plan.json"))
    assert names == ["llama-3-8b", "qwen2.5-7b"]
    bad = tmp_path / "bad"
    bad.mkdir()
    r = run_launch("-m", "model=Qwen/NotInTheCatalog-7B,llama-3-8b", *args, cwd=bad)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "in a sweep" in r.stderr, r.stderr
    assert not list(bad.iterdir())
