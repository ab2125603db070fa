"""Training data: resolve plan.data.path, check every row before training, shape rows for TRL.

Formats (plan.data.format):
  alpaca      {"instruction", "input"?, "output"}      -> prompt/completion (loss on the completion)
  messages    {"messages": [{"role", "content"}, ...]}  -> conversational (tokenizer chat template)
  preference  {"prompt", "chosen", "rejected"}          -> DPO pairs (SFT trains on prompt + chosen)
  text        {"text"}                                  -> plain language modelling

The row checks (ftlaunch/contract/datarows.py, shared with the login side) read local JSONL/JSON line by line with no
torch or datasets import, so a bad row fails in about a second with "FILE line N: what is wrong" and nothing in the run dir touched.
"""

from __future__ import annotations

# Formats, row checks and path resolution are shared with the login side (torch-free, ftlaunch/contract/datarows.py).
from ftlaunch.contract.datarows import (  # noqa: F401 - re-exported for the recipe
    FORMATS,
    ROLES,
    DataError,
    check_objective,
    check_row,
    local_path,
    validate_file,
    validate_rows,
)
from ftlaunch.contract.prompts import alpaca_prompt
from ftlaunch.recipes import assets

BUILTIN = {
    "builtin:arith": None,  # the format picks the file
    "builtin:arith-alpaca": "alpaca",
    "builtin:arith-messages": "messages",
    "builtin:arith-pref": "preference",
    "builtin:arith-text": "text",
}


def resolve(path: str, fmt: str) -> str:
    """plan.data.path -> an absolute local file/folder path or a load_dataset() name."""
    if fmt not in FORMATS:
        raise DataError(f"data format {fmt!r} is not one of {', '.join(FORMATS)}")
    if path in BUILTIN:
        builtin_fmt = BUILTIN[path] or fmt
        if builtin_fmt != fmt:
            raise DataError(f"{path} holds {builtin_fmt} rows but plan.data.format is {fmt!r}")
        return str(assets.arith_file(fmt))
    if path.startswith("builtin:"):
        raise DataError(f"unknown builtin dataset {path!r}; known: {', '.join(BUILTIN)}")
    local = local_path(path)
    return str(local) if local is not None else path


def is_local(path: str) -> bool:
    """A local file (read with the json loader); folders and dataset names go to load_dataset(path)."""
    local = local_path(path)
    return local is not None and not local.is_dir()


# ---------------------------------------------------------------- loading and shaping for TRL


def to_trl(row: dict, fmt: str, objective: str) -> dict:
    """One validated row -> the column layout TRL's SFT/DPO trainers expect."""
    if objective == "dpo":
        return {"prompt": row["prompt"], "chosen": row["chosen"], "rejected": row["rejected"]}
    if fmt == "alpaca":
        return {"prompt": alpaca_prompt(row), "completion": row["output"]}
    if fmt == "messages":
        return {"messages": [{"role": t["role"], "content": t["content"]} for t in row["messages"]]}
    if fmt == "preference":
        return {"prompt": row["prompt"], "completion": row["chosen"]}
    return {"text": row["text"]}


def load(source: str, fmt: str, split: str, objective: str):
    """A datasets.Dataset in TRL layout. `source` comes from resolve(); local files were validated already."""
    from datasets import load_dataset

    if is_local(source):
        # A local file has one split, "train"; keep any slice the plan asked for ("train[:100]").
        ds = load_dataset(
            "json", data_files=source, split="train" + split[split.find("[") :] if "[" in split else "train"
        )
    else:
        ds = load_dataset(source, split=split)
        validate_rows(ds, source, fmt)
    return ds.map(lambda r: to_trl(r, fmt, objective), remove_columns=ds.column_names)
