"""A user's own model, planned from its files: local folder or `hf:Org/Name` -> folder -> config.json facts.

Plain json and the Hugging Face cache layout only (no torch, no transformers, no huggingface_hub import), so
it runs on the login node. The facts land in the same dict shape as ftlaunch/conf/model/*.yaml (ftlaunch/config/build.py
model_spec reads both).

Cache layout (huggingface_hub docs, "Manage the cache"): $HF_HUB_CACHE, else $HF_HOME/hub, else
$XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub; a repo lives in models--Org--Name/ with
refs/main holding the commit hash of snapshots/<hash>/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ftlaunch.contract.errors import ConfigError

HF_PREFIX = "hf:"
# What AutoTokenizer.from_pretrained reads: a fast tokenizer, a sentencepiece model, or a slow tokenizer's config.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")


def hub_cache() -> Path:
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def _snapshot(repo_id: str) -> Path | None:
    """The cached snapshot folder of a Hub repo id (refs/main, else the only/newest snapshot), or None."""
    repo = hub_cache() / ("models--" + repo_id.replace("/", "--"))
    ref = repo / "refs" / "main"
    if ref.is_file():
        snap = repo / "snapshots" / ref.read_text().strip()
        return snap if snap.is_dir() else None
    snaps = [p for p in (repo / "snapshots").glob("*") if p.is_dir()] if (repo / "snapshots").is_dir() else []
    return max(snaps, key=lambda p: p.stat().st_mtime) if snaps else None


def is_local(path: str) -> bool:
    """A filesystem path the user means (absolute, relative with ./ or ../, or ~), not a Hub id."""
    return path.startswith(("/", "./", "../", "~"))


def resolve_model_dir(path_or_hf_id: str) -> Path | None:
    """model.path -> the local folder holding its config.json and tokenizer, or None when there is none.

    "/abs/dir", "./dir", "~/dir": that folder if it exists. "hf:Org/Name" or a plain "Org/Name" (the catalog's
    ids): its snapshot in the local HF cache, if downloaded. "builtin:..." (made by ftlaunch/recipes/assets.py): None.
    """
    p = str(path_or_hf_id)
    if p.startswith("builtin:"):
        return None
    if is_local(p):
        d = Path(p).expanduser()
        return d.resolve() if d.is_dir() else None
    repo_id = p.removeprefix(HF_PREFIX)
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        return None
    return _snapshot(repo_id)


# model_type -> what it is; every family here is a decoder-only causal LM that ftlaunch/recipes/train.py loads with
# AutoModelForCausalLM and params.py counts exactly (tests/test_modelconfig.py).
DENSE = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3_text", "gemma3", "phi3")
MOE = ("mixtral", "qwen2_moe", "qwen3_moe", "olmoe")
SUPPORTED = DENSE + MOE
# Families we know and refuse, with the reason named in the error.
_REFUSED = {
    "encoder": ("bert", "roberta", "deberta", "deberta-v2", "distilbert", "electra", "xlm-roberta", "modernbert",
                "t5", "mt5", "bart", "mbart", "umt5"),
    "vision/multimodal": ("llava", "llava_next", "qwen2_vl", "qwen2_5_vl", "qwen3_vl", "idefics3", "mllama",
                          "paligemma", "clip", "siglip", "vit", "pixtral", "mistral3", "llama4", "gemma3n"),
}  # fmt: skip
# Families transformers 5 runs with eager attention only (Gemma2ForCausalLM._supports_sdpa is False: its attention
# logit soft-capping has no SDPA kernel), so the plan and the recipe use eager (s x s scores in memory).
EAGER_ONLY = ("gemma2",)
SUPPORTED_LINE = f"supported model_type: {', '.join(SUPPORTED)}"


def _src(directory: Path) -> str:
    return str(directory / "config.json")


def read_config(directory: Path) -> dict[str, Any]:
    f = directory / "config.json"
    if not f.is_file():
        raise ConfigError(
            f"{directory} has no config.json: give a Hugging Face model folder (config.json + tokenizer)"
        )
    try:
        cfg = json.loads(f.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"{f} is not valid JSON ({str(e).splitlines()[0]}): fix or re-download it"
        ) from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{f} is not a JSON object: fix or re-download it")
    return cfg


def facts(cfg: dict[str, Any], where: str = "config.json") -> dict[str, Any]:
    """A config.json dict -> the model facts in ftlaunch/conf/model/*.yaml shape (without name and path)."""
    mt = str(cfg.get("model_type") or "")
    if mt not in SUPPORTED:
        kind = next((k for k, v in _REFUSED.items() if mt in v), None)
        what = (
            f"{'an' if kind == 'encoder' else 'a'} {kind} model"
            if kind
            else "not a decoder-only causal LM ftlaunch knows"
        )
        raise ConfigError(f"{where}: model_type {mt or '(none)'!r} is {what}; {SUPPORTED_LINE}")
    if mt == "gemma3":  # the multimodal checkpoint: its language model's facts sit under text_config
        text = cfg.get("text_config")
        if not isinstance(text, dict):
            raise ConfigError(f"{where}: gemma3 without text_config: give the text config; {SUPPORTED_LINE}")
        tie = text.get("tie_word_embeddings", cfg.get("tie_word_embeddings", True))
        cfg = {**text, "model_type": "gemma3", "tie_word_embeddings": tie}
    # transformers' defaults for keys a config.json may omit (its config classes; gemma ties by default).
    gemma = mt.startswith("gemma")

    def get(key: str, default: Any = None) -> Any:
        v = cfg.get(key)
        return default if v is None else v

    heads = get("num_attention_heads")
    out: dict[str, Any] = {
        "model_type": mt,
        "hidden_size": get("hidden_size"),
        "intermediate_size": get("intermediate_size"),
        "num_hidden_layers": get("num_hidden_layers"),
        "num_attention_heads": heads,
        "num_key_value_heads": get("num_key_value_heads", heads),
        "vocab_size": get("vocab_size"),
        "max_position_embeddings": get("max_position_embeddings"),
        "tie_word_embeddings": bool(get("tie_word_embeddings", gemma)),
        "attention_bias": bool(get("attention_bias", mt in ("qwen2", "qwen2_moe"))),
    }
    missing = [k for k, v in out.items() if v is None]
    if missing:
        raise ConfigError(
            f"{where}: {missing[0]} is missing: a {mt} config.json names it; re-download the model"
        )
    if get("head_dim"):
        out["head_dim"] = int(get("head_dim"))
    if mt == "llama":
        out["attention_out_bias"] = out["attention_bias"]
        out["mlp_bias"] = bool(get("mlp_bias", False))
    if mt in ("qwen2", "qwen2_moe"):
        out["attention_bias"] = True  # transformers' Qwen2 attention: q, k, v always carry biases
    if gemma:
        out["norms_per_layer"] = 4  # Gemma-2/3 add post-attention and post-feedforward RMSNorms
    if mt in ("qwen3", "qwen3_moe", "gemma3_text", "gemma3"):
        out["qk_norm"] = "head"
    if mt == "olmoe":
        out["qk_norm"] = "full"
    if mt == "phi3":
        out["fused_projections"] = True
    out.update(_sliding(mt, cfg, out["num_hidden_layers"]))
    if mt in MOE:
        # transformers 5 names it num_local_experts everywhere (attribute_map keeps num_experts as an alias);
        # Hub config.json files of the Qwen/OLMoE families say num_experts.
        default_e, default_k = {
            "mixtral": (8, 2),
            "qwen2_moe": (60, 4),
            "qwen3_moe": (128, 8),
            "olmoe": (64, 8),
        }[mt]
        out["num_experts"] = int(get("num_experts", get("num_local_experts", default_e)))
        out["experts_per_token"] = int(get("num_experts_per_tok", default_k))
    if mt in ("qwen2_moe", "qwen3_moe"):
        out["moe_intermediate_size"] = get("moe_intermediate_size")
        step = int(get("decoder_sparse_step", 1))
        only = set(get("mlp_only_layers", []))
        # transformers' Qwen2/3-MoE decoder layer: sparse iff not in mlp_only_layers and (idx + 1) % step == 0
        dense = [i for i in range(out["num_hidden_layers"]) if i in only or (i + 1) % step]
        if dense:
            out["dense_layers"] = dense
    if mt == "qwen2_moe":
        out["shared_expert_intermediate_size"] = get("shared_expert_intermediate_size", 0)
        out["shared_expert_gate"] = bool(out["shared_expert_intermediate_size"])
    return out


def _sliding(mt: str, cfg: dict[str, Any], layers: int) -> dict[str, int]:
    """Sliding-window attention as transformers 5 builds it from this config (its configuration_*.py defaults):
    the window and how many layers use it. An explicit `layer_types` list wins; otherwise gemma2 alternates
    (even layers local), gemma3 is local except every `sliding_window_pattern`-th (6), qwen2/qwen3 (and
    qwen2_moe) with use_sliding_window slide from max_window_layers on, qwen3_moe on every layer, and
    mistral/mixtral/phi3 on every layer when sliding_window is set (mistral's default is 4096 when the key is
    absent; an explicit null turns it off). Other families have none. Checked against transformers' own
    configs in tests/test_modelconfig.py."""
    defaults = {"gemma2": 4096, "gemma3_text": 4096, "gemma3": 4096, "mistral": 4096}
    window = cfg["sliding_window"] if "sliding_window" in cfg else defaults.get(mt)
    if mt in ("qwen2", "qwen3", "qwen2_moe", "qwen3_moe") and not cfg.get("use_sliding_window"):
        window = None
    if not window or mt in ("llama", "olmoe"):
        return {}
    types = cfg.get("layer_types")
    if isinstance(types, list) and len(types) == layers:
        n = sum(t == "sliding_attention" for t in types)
    elif mt == "gemma2":
        n = (layers + 1) // 2
    elif mt in ("gemma3", "gemma3_text"):
        k = int(cfg.get("sliding_window_pattern") or 6)
        n = sum(1 for i in range(layers) if (i + 1) % k)
    elif mt in ("qwen2", "qwen3", "qwen2_moe"):
        n = max(0, layers - int(cfg.get("max_window_layers", 28)))
    else:
        n = layers
    return {"sliding_window": int(window), "sliding_layers": n} if n else {}


def with_local_facts(model: dict[str, Any]) -> dict[str, Any]:
    """The model config dict, its architecture facts replaced by those of model.path's config.json when the path
    is a local folder or hf:Org/Name; catalog entries (Hub ids, builtin:) pass through unchanged."""
    path = str(model.get("path") or "")
    if not (is_local(path) or path.startswith(HF_PREFIX)):
        return model
    directory = resolve_model_dir(path)
    if directory is None:
        if path.startswith(HF_PREFIX):
            raise ConfigError(
                f"model={path} is not in the local Hugging Face cache ({hub_cache()}): download it there "
                f"(huggingface-cli download {path.removeprefix(HF_PREFIX)}) or give model.path=/abs/model_dir"
            )
        raise ConfigError(
            f"model.path={path!r} does not exist: give a model folder (config.json + tokenizer) or model=hf:Org/Name"
        )
    f = facts(read_config(directory), _src(directory))
    if not any((directory / t).is_file() for t in TOKENIZER_FILES):
        raise ConfigError(
            f"{directory} has no tokenizer ({', '.join(TOKENIZER_FILES)}): save it beside config.json "
            f"(tokenizer.save_pretrained(dir))"
        )
    keep = {k: v for k, v in model.items() if k in ("name",)}
    return {**keep, **f, "path": str(directory)}


def default_name(path: str) -> str:
    """A short model name for job names and the plan: the folder's or repo's last part."""
    p = path.removeprefix(HF_PREFIX).rstrip("/")
    return (p.rsplit("/", 1)[-1] or "model").lower()


def _is_hub_id(value: str) -> bool:
    from ftlaunch.config.catalog import conf_dir

    if value.count("/") != 1 or "," in value or is_local(value) or value.startswith((HF_PREFIX, "builtin:")):
        return False
    return not conf_dir().joinpath("model", f"{value}.yaml").is_file()


def _catalog_key(repo_id: str) -> str | None:
    """The ftlaunch/conf/model/ entry whose path is this Hub id (case-insensitive), or None."""
    from ftlaunch.config.catalog import conf_dir

    for f in sorted(conf_dir().joinpath("model").iterdir(), key=lambda f: f.name):
        if f.name.endswith(".yaml"):
            for line in f.read_text().splitlines():
                if (
                    line.startswith("path:")
                    and line.split(":", 1)[1].split("#")[0].strip().lower() == repo_id.lower()
                ):
                    return f.name.removesuffix(".yaml")
    return None


def _hub_id_to_model(repo_id: str) -> str:
    """`model=Org/Name` -> hf:Org/Name when the local HF cache has it (the real config.json wins), else the
    catalog entry whose path is that Hub id, else one line saying how to get it."""
    if _snapshot(repo_id) is not None:
        return HF_PREFIX + repo_id
    key = _catalog_key(repo_id)
    if key is None:
        raise ConfigError(
            f"model={repo_id}: not in the local Hugging Face cache ({hub_cache()}) and no catalog entry "
            f"(ftlaunch/conf/model/) has that Hub id: download it (huggingface-cli download {repo_id}) or give "
            "model.path=/abs/model_dir"
        )
    return key


def _sweep_models(value: str) -> str:
    """`-m model=Qwen/Qwen2.5-7B,llama-3-8b`: each Hub id in a model sweep becomes its catalog entry (a sweep
    runs over the model config group; a cached folder is swept with model.path=hf:A/B,hf:C/D)."""
    out = []
    for v in value.split(","):
        if _is_hub_id(v):
            key = _catalog_key(v)
            if key is None:
                raise ConfigError(
                    f"model={v} in a sweep: no catalog entry (ftlaunch/conf/model/) has that Hub id; sweep your own "
                    f"models with model.path=hf:{v},... or a folder per value"
                )
            v = key
        out.append(v)
    return ",".join(out)


def rewrite_args(argv: list[str]) -> list[str]:
    """Command-line sugar: `model=hf:Org/Name` -> `model.path=hf:Org/Name`; a model.path naming the user's own
    model (local folder or hf:) also names the model after it unless model.name is given."""
    out, path = [], None
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key.lstrip("+") == "model" and "," in value:
            value = _sweep_models(value)
            arg = f"{key}={value}"
        if eq and key.lstrip("+") == "model" and _is_hub_id(value):
            value = _hub_id_to_model(
                value
            )  # `model=Org/Name`, as Axolotl's base_model or from_pretrained take it
            arg = f"model={value}"
        if eq and key.lstrip("+") == "model" and value.startswith(HF_PREFIX) and "," not in value:
            arg, key = f"model.path={value}", "model.path"
        bare = not (is_local(value) or value.startswith((HF_PREFIX, "builtin:")) or "," in value)
        if eq and key.lstrip("+") == "model.path" and not value.strip("'\" "):
            raise ConfigError(
                "model.path is empty: give a model folder (model.path=/abs/dir) or a cached hf:Org/Name"
            )
        if eq and key.lstrip("+") == "model.path" and bare:
            # a bare `dir/sub` or `Org/Name` typed by the user: their folder if it exists, else a Hub id to find in
            # the cache (never the catalog entry's facts under a path they do not describe)
            value = str(Path(value).resolve()) if Path(value).is_dir() else HF_PREFIX + value
            arg = f"{key}={value}"
        if eq and key.lstrip("+") == "model.path" and (is_local(value) or value.startswith(HF_PREFIX)):
            path = value if "," not in value else None
        out.append(arg)
    if path and not any(a.partition("=")[0].lstrip("+") == "model.name" for a in out):
        out.append(f"model.name={default_name(path)}")
    return out
