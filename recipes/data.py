"""Training data: resolve plan.data.path, check every row before training, shape rows for TRL.

Formats (plan.data.format):
  alpaca      {"instruction", "input"?, "output"}      -> prompt/completion (loss on the completion)
  messages    {"messages": [{"role", "content"}, ...]}  -> conversational (tokenizer chat template)
  preference  {"prompt", "chosen", "rejected"}          -> DPO pairs (SFT trains on prompt + chosen)
  text        {"text"}                                  -> plain language modelling

validate() reads local JSONL/JSON itself, line by line, with no torch or datasets import, so a bad row fails
in about a second with "FILE line N: what is wrong" and nothing in the run dir touched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from launcher.prompts import alpaca_prompt
from recipes import assets

FORMATS = ("alpaca", "messages", "preference", "text")
ROLES = ("system", "user", "assistant", "tool")
BUILTIN = {
    "builtin:arith": None,  # the format picks the file
    "builtin:arith-alpaca": "alpaca",
    "builtin:arith-messages": "messages",
    "builtin:arith-pref": "preference",
    "builtin:arith-text": "text",
}


class DataError(ValueError):
    """A data problem the user must fix; str() is the whole one-line message."""


def resolve(path: str, fmt: str) -> str:
    """plan.data.path -> a local file path or a load_dataset() name."""
    if fmt not in FORMATS:
        raise DataError(f"data format {fmt!r} is not one of {', '.join(FORMATS)}")
    if path in BUILTIN:
        builtin_fmt = BUILTIN[path] or fmt
        if builtin_fmt != fmt:
            raise DataError(f"{path} holds {builtin_fmt} rows but plan.data.format is {fmt!r}")
        return str(assets.arith_file(fmt))
    if path.startswith("builtin:"):
        raise DataError(f"unknown builtin dataset {path!r}; known: {', '.join(BUILTIN)}")
    return path


def is_local(path: str) -> bool:
    return path.endswith((".jsonl", ".json")) or Path(path).is_file()


# ---------------------------------------------------------------- row checks


def _text(row: dict, key: str, what: str, fmt: str, need: str) -> str | None:
    if key not in row:
        return f"{what} row has no '{key}' field; each row needs {need}"
    if not isinstance(row[key], str):
        return f"'{key}' must be a string, got {type(row[key]).__name__}"
    return None


def _turns(turns: Any, key: str) -> str | None:
    if not isinstance(turns, list) or not turns:
        return f"'{key}' must be a non-empty list of {{role, content}} objects"
    for i, t in enumerate(turns):
        if not isinstance(t, dict) or "role" not in t or "content" not in t:
            return f"'{key}'[{i}] must be an object with 'role' and 'content'"
        if t["role"] not in ROLES:
            return f"'{key}'[{i}] has role {t['role']!r}; expected one of {', '.join(ROLES)}"
        if not isinstance(t["content"], str):
            return f"'{key}'[{i}].content must be a string, got {type(t['content']).__name__}"
    return None


def check_row(row: Any, fmt: str) -> str | None:
    """What is wrong with one row, or None."""
    if not isinstance(row, dict):
        return f"row must be a JSON object, got {type(row).__name__}"
    if fmt == "alpaca":
        need = "instruction, output (input optional)"
        err = _text(row, "instruction", "alpaca", fmt, need) or _text(row, "output", "alpaca", fmt, need)
        if err is None and row.get("input") is not None and not isinstance(row["input"], str):
            err = f"'input' must be a string, got {type(row['input']).__name__}"
        return err
    if fmt == "messages":
        if "messages" not in row:
            return "messages row has no 'messages' field; each row needs messages: [{role, content}, ...]"
        err = _turns(row["messages"], "messages")
        if err is None and not any(t["role"] == "assistant" for t in row["messages"]):
            err = "'messages' has no assistant turn to learn from"
        return err
    if fmt == "preference":
        need = "prompt, chosen, rejected"
        for key in ("prompt", "chosen", "rejected"):
            if key not in row:
                return f"preference row has no '{key}' field; each row needs {need}"
            v = row[key]
            if not isinstance(v, str) and _turns(v, key) is not None:
                return f"'{key}' must be a string or a list of {{role, content}} objects"
        return None
    if fmt == "text":
        return _text(row, "text", "text", fmt, "text")
    raise DataError(f"data format {fmt!r} is not one of {', '.join(FORMATS)}")


def _rows(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, parsed row) for a JSON array file or a JSON-lines file; raises DataError on bad JSON."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} line {e.lineno}: not valid JSON ({e.msg})") from None
        for i, item in enumerate(items, 1):
            yield f"{path} item {i}", item
        return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} line {n}: not valid JSON ({e.msg} at column {e.colno})") from None
        yield f"{path} line {n}", row


def validate_file(path: str | Path, fmt: str) -> int:
    """Check every row of a local JSONL/JSON file. Returns the row count; raises DataError naming the line."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: data file not found")
    return _check_all(_rows(p), fmt, str(p))


def validate_rows(rows, name: str, fmt: str) -> int:
    """The same checks for a dataset that only load_dataset can read (hub name, folder)."""
    return _check_all(((f"{name} row {i}", row) for i, row in enumerate(rows, 1)), fmt, name)


def _check_all(items, fmt: str, name: str) -> int:
    """(where, row) pairs -> row count; the first bad row raises DataError naming where it is."""
    n = 0
    for where, row in items:
        err = check_row(row, fmt)
        if err:
            raise DataError(f"{where}: {err}")
        n += 1
    if n == 0:
        raise DataError(f"{name}: no rows")
    return n


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


def check_objective(fmt: str, objective: str) -> None:
    if objective == "dpo" and fmt != "preference":
        raise DataError(
            f"objective dpo needs preference data (prompt, chosen, rejected); plan.data.format is {fmt!r}"
        )
    if objective not in ("sft", "dpo"):
        raise DataError(f"objective {objective!r} is not sft or dpo")


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
