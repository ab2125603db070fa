"""What a data file's token counts mean for training at a seq_len: rows kept, truncated, dropped, and the
length a micro-batch is padded to. Pure arithmetic on the counts ftlaunch/config/tokens.py measures with the
model's own tokenizer.

Per row the prompt length is kept too: TRL drops a prompt/completion row whose prompt alone fills
max_length (nothing left to learn from), and truncates the rest to max_length (keep_start).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True, eq=False)
class TokenCounts:
    """Token counts per row, in file order, before truncation: the prompt (0 where the whole row is
    trained on) and each trained sequence (one for SFT; prompt+chosen and prompt+rejected for DPO)."""

    prompt: tuple[int, ...]
    seqs: tuple[tuple[int, ...], ...]  # one column per trained sequence
    tokenizer: str  # the folder the tokenizer came from
    _memo: dict = field(default_factory=dict, repr=False)

    @property
    def n_rows(self) -> int:
        return len(self.prompt)

    def _per_row(self, key: str, combine) -> list[int]:
        """combine() of each row's sequence lengths, computed once (one sequence per row: the lengths)."""
        if key not in self._memo:
            cols = self.seqs
            self._memo[key] = (
                list(cols[0]) if len(cols) == 1 else [combine(t) for t in zip(*cols, strict=True)]
            )
        return self._memo[key]

    @property
    def longest(self) -> list[int]:
        """Per row, its longest sequence: what a micro-batch pads to and what seq_len truncates."""
        return self._per_row("longest", max)

    @property
    def totals(self) -> list[int]:
        """Per row, every sequence's tokens together (a DPO pair counts chosen and rejected)."""
        return self._per_row("totals", sum)

    def mean_tokens(self) -> float:
        return sum(self.totals) / max(1, self.n_rows)

    def max_sequence(self) -> int:
        """The longest single sequence (sets the default seq_len)."""
        return max(self.longest)


@dataclass(frozen=True)
class TokenStats:
    """What the plan shows about the data at the planned seq_len; tokens per row count every sequence."""

    n_rows: int  # rows the trainer keeps
    n_dropped: int  # rows whose prompt alone fills seq_len (TRL drops them)
    n_truncated: int  # kept rows with a sequence longer than seq_len
    mean: float  # tokens per row, before truncation
    p95: int
    max: int
    mean_trained: float  # tokens per row the recipe trains on (after truncation)
    seq_len: int


# ---------------------------------------------------------------- the tokenizer, as transformers loads it


# ---------------------------------------------------------------- file -> counts, with a cache


def _kept(counts: TokenCounts, seq_len: int) -> list[int] | None:
    """Indices of the rows TRL keeps at max_length=seq_len (it drops a row whose prompt fills it, SFT
    prompt/completion and DPO with keep_start); None when it keeps them all."""
    if max(counts.prompt) < seq_len:
        return None
    return [i for i, p in enumerate(counts.prompt) if p < seq_len]


def stats(counts: TokenCounts, seq_len: int) -> TokenStats:
    key = ("stats", seq_len)
    if key in counts._memo:
        return counts._memo[key]
    kept = _kept(counts, seq_len)
    totals, longest, cols = counts.totals, counts.longest, counts.seqs
    if kept is not None:
        totals, longest = [totals[i] for i in kept], [longest[i] for i in kept]
        cols = tuple([c[i] for i in kept] for c in cols)
    n = len(totals)
    full = sorted(totals) or [0]
    trained = sum(sum(x if x < seq_len else seq_len for x in c) for c in cols)
    out = TokenStats(
        n_rows=n,
        n_dropped=counts.n_rows - n,
        n_truncated=sum(1 for x in longest if x > seq_len),
        mean=sum(full) / len(full),
        p95=full[min(len(full) - 1, max(0, math.ceil(0.95 * len(full)) - 1))],
        max=full[-1],
        mean_trained=trained / max(1, n),
        seq_len=seq_len,
    )
    counts._memo[key] = out
    return out


def length_cdf(counts: TokenCounts, seq_len: int) -> tuple[list[int], list[float]]:
    """Sorted distinct (truncated) longest-sequence lengths of the kept rows and their cumulative shares."""
    key = ("cdf", seq_len)
    if key not in counts._memo:
        kept = _kept(counts, seq_len)
        longest = counts.longest if kept is None else [counts.longest[i] for i in kept]
        hist = Counter(x if x < seq_len else seq_len for x in longest)
        n, below, xs, cdf = len(longest), 0, [], []
        for x in sorted(hist):
            below += hist[x]
            xs.append(x)
            cdf.append(below / n)
        counts._memo[key] = (xs, cdf)
    return counts._memo[key]


def padded_length(counts: TokenCounts, micro_batch: int, seq_len: int) -> float:
    """Expected length every sequence of a micro-batch is padded to: the longest (truncated) sequence among
    `micro_batch` rows. The HF Trainer draws training rows with a RandomSampler (trl does not change it; its
    shuffle_dataset defaults to off), and the collator pads to the batch's longest row (trl
    DataCollatorForLanguageModeling / DataCollatorForPreference, padding_side right). For a DPO pair both
    sequences share the padding. E[max of k draws] from the empirical distribution, with replacement:
    sum over sorted values x_i of x_i * (F(x_i)^k - F(x_(i-1))^k)."""
    xs, cdf = length_cdf(counts, seq_len)
    if not xs:
        return float(seq_len)
    k, prev, e = max(1, micro_batch), 0.0, 0.0
    for x, f in zip(xs, cdf, strict=True):
        fk = f**k
        e += x * (fk - prev)
        prev = fk
    return e
