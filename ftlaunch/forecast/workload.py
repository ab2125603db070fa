"""The work the recipe will really do: rows it iterates, tokens it trains on, and the length it pads to.

Hours come from the tokens the GPUs process, not from the mean row length: without packing every sequence
of a micro-batch is padded to the batch's longest one (ftlaunch/config/tokens.py padded_length), with packing TRL
fills rows of seq_len (SFTTrainer packing) so ceil(tokens / seq_len) rows of seq_len are processed.
The planner prices a micro-step at the processed length (matmuls and attention alike, so the attention
cost grows with the padded length, not with seq_len) and reports tokens/s as trained (non-padding)
tokens, the figure the recipe measures (include_num_input_tokens_seen="non_padding", ftlaunch/recipes/train.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ftlaunch.forecast.specs import Job
from ftlaunch.forecast.tokenstats import TokenCounts, TokenStats, length_cdf, padded_length, stats


@dataclass(frozen=True)
class Workload:
    rows: int  # rows per epoch the trainer iterates (packed rows with packing)
    tokens_per_row: float  # trained (non-padding) tokens per row, every sequence of a DPO pair counted
    seq_len: int
    sequences: int  # sequences per row: 2 for a DPO pair
    packing: bool
    counted: bool  # lengths counted with the model's tokenizer (else data.tokens_per_sample, an estimate)
    stats: TokenStats | None = None
    counts: TokenCounts | None = field(default=None, repr=False, compare=False)
    _pad: dict = field(default_factory=dict, repr=False, compare=False)

    def speed(self, micro_batch: int) -> tuple[float, float]:
        """(length each sequence is processed at, trained tokens / processed tokens) for a micro-batch."""
        if self.packing:
            return float(self.seq_len), self.tokens_per_row / (self.sequences * self.seq_len)
        if self.counts is None:
            # Estimated lengths have no distribution: price a micro-step at seq_len, as before counting
            # existed (an upper bound on padding), and count the mean tokens as trained.
            return float(self.seq_len), 1.0
        if micro_batch not in self._pad:
            self._pad[micro_batch] = padded_length(self.counts, micro_batch, self.seq_len)
        pad = self._pad[micro_batch]
        return pad, self.tokens_per_row / (self.sequences * pad)

    def padded(self, micro_batch: int) -> bool:
        """Does a micro-step carry padding (an attention mask)? Not when packing (TRL passes position_ids and
        no mask) nor for one unpaired sequence; a DPO pair is one padded batch of chosen and rejected. With
        counted lengths, only when the rows' (truncated) lengths differ; estimated lengths are assumed to."""
        if self.packing or self.sequences * micro_batch <= 1:
            return False
        if self.counts is None:
            return True
        xs, _ = length_cdf(self.counts, self.seq_len)
        return len(xs) > 1 or self.sequences > 1


def of(job: Job, objective: str) -> Workload:
    d = job.data
    seqs = 2 if objective == "dpo" else 1
    packing = d.packing and objective == "sft"  # ftlaunch/recipes/train.py: only SFTConfig gets packing
    counts = d.counts
    st = stats(counts, job.seq_len) if counts is not None else None
    if st is not None:
        # Rows TRL drops (prompt fills seq_len) leave the epoch; data.n_samples may be a user's subset.
        rows = max(1, round(d.n_samples * st.n_rows / counts.n_rows))
        per_row = st.mean_trained
    else:
        rows, per_row = d.n_samples, d.tokens_per_sample
    if packing:
        # TRL packs the rows, each cut at seq_len (bfd truncates overflow; nothing is dropped when packing),
        # into rows of seq_len: ceil(total / seq_len) of them.
        total = rows * per_row
        if counts is not None:
            cut = sum(x if x < job.seq_len else job.seq_len for x in counts.totals)
            total = d.n_samples * cut / counts.n_rows
        rows = max(1, math.ceil(total / job.seq_len))
        per_row = total / rows
    return Workload(rows, per_row, job.seq_len, seqs, packing, st is not None, st, counts)


def describe(wl: Workload, micro_batch: int) -> dict:
    """plan.json extra.data_tokens: where the lengths came from and what they are at the planned seq_len."""
    out: dict = {"source": "counted" if wl.counted else "estimated", "rows": wl.rows, "seq_len": wl.seq_len}
    pad, useful = wl.speed(micro_batch)
    out.update(tokens_per_row=round(wl.tokens_per_row, 1), packing=wl.packing, padded_len=round(pad, 1))
    out["padding_share"] = max(
        0.0, round(1 - useful, 4)
    )  # of processed tokens, padding (or unfilled packed rows)
    if wl.stats is not None:
        s = wl.stats
        out.update(
            tokenizer=wl.counts.tokenizer if wl.counts else None,
            mean=round(s.mean, 1),
            p95=s.p95,
            max=s.max,
            rows_truncated=s.n_truncated,
            rows_dropped=s.n_dropped,
        )
    return out
