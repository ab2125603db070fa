"""Export a trained run as one plain HF model folder: LoRA/QLoRA adapters merged into the base weights.

    python -m ftlaunch.recipes.export --run-dir RUN --out OUT [--dtype bf16|fp32]

Takes RUN/final (written when training completed), else the newest complete checkpoint. The base model is
reloaded unquantized (a QLoRA adapter merges into bf16/fp32 weights, not into nf4), merged with
merge_and_unload, and saved with save_pretrained together with the tokenizer.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ftlaunch.recipes import assets, checkpoints


def source_dir(run_dir: Path) -> Path:
    final = run_dir / "final"
    if (final / "adapter_config.json").is_file() or (final / "config.json").is_file():
        return final
    ckpt = checkpoints.latest_complete(run_dir / "checkpoints")
    if ckpt is None:
        raise FileNotFoundError(f"{run_dir}: no final/ and no complete checkpoint to export")
    print(f"no {final}; exporting the newest complete checkpoint {ckpt}", file=sys.stderr)
    return ckpt


def base_model_path(run_dir: Path, adapter_dir: Path) -> str:
    """The plan's model (resolving builtin:), else what the adapter recorded."""
    plan = run_dir / "plan.json"
    if plan.is_file():
        return assets.resolve_model(json.loads(plan.read_text())["model"]["path"])
    return json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"]


def base_model_type(run_dir: Path) -> str | None:
    plan = run_dir / "plan.json"
    return json.loads(plan.read_text())["model"]["arch"].get("model_type") if plan.is_file() else None


def export(run_dir: Path, out: Path, dtype: str = "fp32") -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    src = source_dir(run_dir)
    if (src / "adapter_config.json").is_file():
        from peft import PeftModel

        cls, extra = assets.causal_lm_class(base_model_type(run_dir))
        base = cls.from_pretrained(base_model_path(run_dir, src), dtype=torch_dtype, **extra)
        model = PeftModel.from_pretrained(base, src).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(src, dtype=torch_dtype)
    tokenizer = AutoTokenizer.from_pretrained(src)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32")
    args = ap.parse_args(argv)
    try:
        out = export(args.run_dir, args.out, args.dtype)
    except (FileNotFoundError, ValueError) as e:
        print(str(e), file=sys.stderr)
        return 2
    print(f"exported {args.run_dir} -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
