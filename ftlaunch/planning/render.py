"""The plan as a person reads it: a rich panel for the choice, a table for the alternatives."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ftlaunch.contract.plan import Plan
from ftlaunch.planning.planner import METHOD_NAMES, PlanResult, usd


def _gib(x: float) -> str:
    return f"{x:.1f} GiB" if x >= 1 else f"{x * 1024:.0f} MiB"


def _hours(h: float) -> str:
    return f"{h * 60:.1f} min" if h < 1 else f"{h:.2f} h"


def _tokens(d: dict) -> str:
    """The data's token lengths: counted with the model's tokenizer, or the config's estimate."""
    if d["source"] == "counted":
        txt = (
            f"counted: mean {d['mean']:,.0f}, p95 {d['p95']:,}, max {d['max']:,} per row; "
            f"{d['rows_truncated']:,} truncated at seq_len {d['seq_len']:,}"
        )
        if d.get("rows_dropped"):
            txt += f", {d['rows_dropped']:,} dropped (prompt fills seq_len)"
    else:
        txt = (
            f"estimated: {d['tokens_per_row']:,.0f} per row (counting needs a local data file and "
            "tokenizer.json in model.path)"
        )
    if d.get("packing"):
        return txt + f"; packed into {d['rows']:,} rows of {d['seq_len']:,}"
    if d["source"] == "counted":
        txt += f"; micro-batches padded to ~{d['padded_len']:,.0f} ({d['padding_share']:.0%} padding)"
    return txt


def render(result: PlanResult, plan: Plan | None, budget: float | None, show: int, console: Console) -> None:
    c = result.chosen
    title = f"ftlaunch plan: {plan.job_name}" if plan else "ftlaunch plan: no feasible plan"
    t = Table(title=title, show_header=False, title_justify="left", box=None, pad_edge=False)
    t.add_column(style="bold cyan", no_wrap=True)
    t.add_column()
    if c is not None and plan is not None:
        s, tr, r, f = c.setup, plan.training, plan.resources, plan.forecast
        method = ("DPO on " if s.objective == "dpo" else "") + METHOD_NAMES[s.method]
        t.add_row("method", f"{method}  ({plan.reason})")
        n = plan.model.n_params
        size = f"{n / 1e9:.2f} B" if n >= 1e8 else f"{n / 1e6:.2f} M"
        t.add_row("model", f"{plan.model.name}  ({size} params)")
        t.add_row(
            "data",
            f"{plan.data.name}: {plan.data.n_samples:,} samples x {tr.epochs:g} epochs, seq_len {tr.seq_len}",
        )
        tok = plan.extra.get("data_tokens")
        if tok:
            t.add_row("tokens", _tokens(tok))
        t.add_row("GPUs", f"{r.n_gpus} x {c.gpu.label}  ({r.nodes} node{'s' if r.nodes > 1 else ''})")
        off = "optimizer+params" if r.offload_params else "optimizer" if r.offload_optimizer else "none"
        t.add_row(
            "DeepSpeed",
            f"ZeRO-{r.zero_stage}, offload {off}" if r.zero_stage else "off (DDP / single device)",
        )
        t.add_row(
            "batch",
            f"micro {tr.micro_batch} x accum {tr.grad_accum} x {r.n_gpus} GPU = {tr.global_batch}; "
            f"grad checkpointing {'on' if tr.grad_ckpt else 'off'}",
        )
        t.add_row("steps", f"{tr.max_steps:,} optimizer steps, checkpoint every {tr.checkpoint_every}")
        mem = ", ".join(f"{k} {_gib(v)}" for k, v in f.mem_breakdown_gib.items() if abs(v) >= 0.01)
        t.add_row("memory", f"{_gib(f.peak_mem_gib)} of {c.gpu.memory_gib:g} GiB per GPU  [{mem}]")
        t.add_row("speed", f"{f.tokens_per_s_per_gpu:,.0f} tokens/s per GPU, {f.tokens_total:,.0f} tokens")
        budget_txt = f" of {usd(budget)} budget" if budget is not None else ""
        t.add_row(
            "cost",
            f"[bold]{usd(f.cost_usd)}[/bold]{budget_txt}: {_hours(f.hours)} x {r.n_gpus} GPU x "
            f"{usd(r.price_per_gpu_hour)}/GPU-h{' (calibrated)' if f.calibrated else ''}",
        )
    else:
        t.add_row("result", f"[bold red]{result.reason}[/bold red]")
    console.print(t)

    if show <= 0 or not result.rejected:
        return
    alt = Table(title="best alternatives", title_justify="left")
    for col in ("plan", "peak GiB", "tok/s/GPU", "hours", "cost", "why not"):
        alt.add_column(col, justify="right" if col in ("peak GiB", "tok/s/GPU", "hours", "cost") else "left")
    for rj in result.rejected[:show]:
        a = rj.candidate
        alt.add_row(
            a.label(),
            f"{a.peak_gib:.1f}",
            f"{a.tokens_per_s_per_gpu:,.0f}" if a.fits else "-",
            _hours(a.cost.hours) if a.cost else "-",
            usd(a.cost.usd) if a.cost else "-",
            rj.reason,
        )
    console.print(alt)
    console.print(f"[dim]{result.n_evaluated:,} configurations evaluated[/dim]")
