"""A local data file, checked and measured on the login node before anything is planned or submitted.

Row checks and path resolution are the ones the recipe runs (ftlaunch/contract/datarows.py, shared by both sides), so
a malformed row is caught here with its line number instead of after the job has waited in the queue, and
the path written into plan.json is absolute (no `~` or working directory left for the node to interpret).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# ~4 characters per token for English text with BPE tokenizers (OpenAI's tokenizer guide rule of thumb);
from ftlaunch.config.tokens import cached, count_file, tokenizer_dir
from ftlaunch.contract.datarows import DataError, local_path, read_valid_rows
from ftlaunch.contract.errors import ConfigError
from ftlaunch.forecast.tokenstats import TokenCounts

# ~4 characters per token for English text with BPE tokenizers (OpenAI's tokenizer guide rule of thumb);
# an estimate only, used when data.tokens_per_sample is not given.
CHARS_PER_TOKEN = 4.0


def inspect(d: dict[str, Any], model_path: str | None = None) -> dict[str, Any]:
    """data config -> the same with the path made absolute and n_samples / tokens_per_sample / max_tokens
    filled from the file: counted with the model's tokenizer when model_path has one (ftlaunch/config/tokens.py),
    else estimated from characters."""
    path = str(d.get("path") or "")
    p = local_path(path)
    if p is None:
        return d
    if p.is_dir():
        return {**d, "path": str(p)}  # a dataset folder: load_dataset reads it and the recipe checks its rows
    if not p.is_file():
        raise ConfigError(
            f"data.path={path!r} does not exist: give an existing JSONL/JSON file or a dataset name"
        )
    d = _not_the_sample(d, p)
    fmt, tok = str(d.get("format")), tokenizer_dir(model_path)
    if d.get("tokens_per_sample") is not None and d.get("max_tokens") is not None:
        tok = None  # both lengths given: nothing to count
    counts = cached(p, fmt, tok) if tok else None  # a hit: this file passed the row checks already
    if counts is None:
        try:
            parsed = read_valid_rows(p, fmt)
        except DataError as e:
            raise ConfigError(str(e)) from None
        except UnicodeDecodeError:
            raise ConfigError(f"{p} is not UTF-8 text: save it as UTF-8 JSONL") from None
        rows = len(parsed)
        counts = _count(p, fmt, tok, parsed) if tok else None
    out = {**d, "path": str(p)}
    if out.get("n_samples") is None:
        out["n_samples"] = counts.n_rows if counts else rows
    if counts is not None:
        out["token_counts"] = counts
        if out.get("tokens_per_sample") is None:
            out["tokens_per_sample"] = max(1.0, counts.mean_tokens())
        if out.get("max_tokens") is None:
            out["max_tokens"] = counts.max_sequence()
    if out.get("tokens_per_sample") is None or out.get("max_tokens") is None:
        lengths = [len(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
        if out.get("tokens_per_sample") is None:
            out["tokens_per_sample"] = max(1.0, sum(lengths) / len(lengths) / CHARS_PER_TOKEN)
        if out.get("max_tokens") is None:
            out["max_tokens"] = max(1, int(max(lengths) / CHARS_PER_TOKEN))
    return out


def _not_the_sample(d: dict[str, Any], p: Path) -> dict[str, Any]:
    """`data.path=your.jsonl` on the default data config: the sizes in ftlaunch/conf/data/sample.yaml describe the
    built-in arithmetic set, not the user's file, so the ones still at the sample's values are read from the
    file instead (as `data=jsonl` does), and the run is named after the file rather than "sample"."""
    if d.get("name") != "sample":
        return d
    from ftlaunch.config.catalog import load

    sample = load("data", "sample")
    sizes = ("n_samples", "tokens_per_sample", "max_tokens")
    return {**d, "name": p.stem, **{k: None for k in sizes if d.get(k) == sample.get(k)}}


def _count(path: Path, fmt: str, tok: Path, rows: list) -> TokenCounts:
    try:
        return count_file(path, fmt, tok, rows)
    except Exception as e:  # a tokenizer or chat template we cannot reproduce: say which, and the way out
        raise ConfigError(
            f"cannot count tokens of {path} with the tokenizer in {tok} ({type(e).__name__}: {e}); "
            "set data.tokens_per_sample and data.max_tokens to plan without counting"
        ) from None
