"""How an alpaca row becomes prompt text: shared by the recipe (ftlaunch/recipes/data.py) and the login-side token
count (ftlaunch/config/tokens.py), so both tokenize the same string. Stdlib only."""

from __future__ import annotations

ALPACA_PROMPT = "### Instruction:\n{instruction}\n\n### Response:\n"
ALPACA_PROMPT_INPUT = "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"


def alpaca_prompt(row: dict) -> str:
    if row.get("input"):
        return ALPACA_PROMPT_INPUT.format(instruction=row["instruction"], input=row["input"])
    return ALPACA_PROMPT.format(instruction=row["instruction"])
