"""A user's own model, planned from its files: local folder or `hf:Org/Name` -> folder -> config.json facts.

Plain json and the Hugging Face cache layout only (no torch, no transformers, no huggingface_hub import), so
it runs on the login node. The facts land in the same dict shape as conf/model/*.yaml (launcher/specs.py
model_spec reads both).

Cache layout (huggingface_hub docs, "Manage the cache"): $HF_HUB_CACHE, else $HF_HOME/hub, else
$XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub; a repo lives in models--Org--Name/ with
refs/main holding the commit hash of snapshots/<hash>/.
"""

from __future__ import annotations

import os
from pathlib import Path

HF_PREFIX = "hf:"


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
    ids): its snapshot in the local HF cache, if downloaded. "builtin:..." (made by recipes/assets.py): None.
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
