"""Real token counts for a local data file: the model's own tokenizer, the row shaped as the recipe shapes it.

Login side: the Rust `tokenizers` library and jinja2 only (no transformers, no torch). Each row is turned
into the exact text TRL 1.16 tokenizes for it (ftlaunch/recipes/data.py to_trl, then the trainer's dataset
preparation):

  alpaca      prompt + completion + eos, tokenized with the tokenizer's special tokens
              (SFTTrainer._prepare_dataset: add_eos, then `processing_class(text=...)`)
  text        text + eos, the same way
  messages    the chat template rendered (no generation prompt), tokenized without special tokens
              (transformers apply_chat_template(tokenize=True) passes add_special_tokens=False)
  preference  prompt + chosen + eos and prompt + rejected + eos (DPOTrainer: add_eos, _tokenize); lists of
              turns go through the chat template like messages

Per row we keep the prompt length too: TRL drops a prompt/completion row whose prompt alone fills
max_length (nothing left to learn from), and truncates the rest to max_length (keep_start).

Counts are cached (FTLAUNCH_CACHE or ~/.cache/ftlaunch/tokens/) keyed by the file (path, size, mtime),
the format and a hash of the tokenizer files, so a second plan of the same data reads them back.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ftlaunch.forecast.tokenstats import TokenCounts

# Bump when the counting rules change: old cache entries are then ignored.
COUNT_VERSION = 1
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "special_tokens_map.json",
)
CHUNK = 2000  # rows per encode_batch call
SPECIAL_KEYS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def tokenizer_dir(model_path: str | None) -> Path | None:
    """The folder holding the model's tokenizer.json, or None (then lengths stay an estimate)."""
    if not model_path or model_path.startswith("builtin:"):
        return None
    p = Path(model_path).expanduser()
    return p if (p / "tokenizer.json").is_file() else None


# ---------------------------------------------------------------- the tokenizer, as transformers loads it


def _token_text(v: Any) -> str | None:
    if isinstance(v, dict):  # AddedToken serialized as {"content": ...}
        v = v.get("content")
    return v if isinstance(v, str) else None


def _chat_template(d: Path, cfg: dict) -> str | None:
    # transformers 5 writes chat_template.jinja; older saves keep it in tokenizer_config.json, as a string
    # or a list of named templates of which "default" is the one apply_chat_template uses.
    f = d / "chat_template.jinja"
    if f.is_file():
        return f.read_text(encoding="utf-8")
    t = cfg.get("chat_template")
    if isinstance(t, list):
        t = {x.get("name"): x.get("template") for x in t if isinstance(x, dict)}.get("default")
    return t if isinstance(t, str) else None


def tokenizer_hash(d: Path) -> str:
    h = hashlib.sha256()
    for name in TOKENIZER_FILES:
        f = d / name
        if f.is_file():
            h.update(name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _generation_extension():
    """Stand-in for transformers' AssistantTracker: `{% generation %}...{% endgeneration %}` renders its body."""
    from jinja2 import nodes
    from jinja2.ext import Extension

    class Generation(Extension):
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

        def _render(self, caller):
            return caller()

    return Generation


def _compile(template: str):
    """The environment transformers renders chat templates in (utils/chat_template_utils.py)."""
    from datetime import datetime

    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_generation_extension(), jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: (
        json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    )
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)


class _Tok:
    def __init__(self, d: Path):
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(d / "tokenizer.json"))
        cfg_file = d / "tokenizer_config.json"
        cfg = json.loads(cfg_file.read_text(encoding="utf-8")) if cfg_file.is_file() else {}
        smap_file = d / "special_tokens_map.json"
        smap = json.loads(smap_file.read_text(encoding="utf-8")) if smap_file.is_file() else {}
        self.special = {}
        for k in SPECIAL_KEYS:
            v = _token_text(cfg.get(k)) or _token_text(smap.get(k))
            if v is not None:
                self.special[k] = v
        # ftlaunch/recipes/train.py: a tokenizer without a pad token pads with eos
        if "pad_token" not in self.special and "eos_token" in self.special:
            self.special["pad_token"] = self.special["eos_token"]
        self.eos = self.special.get("eos_token", "")
        t = _chat_template(d, cfg)
        self.template = _compile(t) if t else None
        # what Template.render merges into every call's context: the globals, the special tokens (see render)
        self._base = {**self.template.globals, "tools": None, "documents": None, **self.special} if t else {}

    def render(self, messages: list[dict], add_generation_prompt: bool) -> str:
        """Template.render(messages=..., ...) without its per-call cost: the globals and special tokens are
        merged into one dict once (self._base) and each row's context shares a copy of it, which is what
        Template.render builds itself (jinja2 Template.new_context with shared=False merges them per call:
        ~60% of the render time on 50k rows). The rendered string is the same."""
        if self.template is None:
            raise ValueError("the tokenizer has no chat template for conversational rows")
        t = self.template
        msgs = [{k: v for k, v in m.items() if v is not None} for m in messages]
        ctx = t.new_context(
            {**self._base, "messages": msgs, "add_generation_prompt": add_generation_prompt}, shared=True
        )
        try:
            return t.environment.concat(t.root_render_func(ctx))
        except Exception:
            t.environment.handle_exception()

    def count(self, prompts: list[str] | None, seqs: list[list[str]], special: bool) -> list[tuple[int, ...]]:
        """Per row (prompt tokens kept as prompt, length of each sequence). The prompt part is where the
        prompt's tokens and each sequence's stop agreeing (trl.data_utils.common_prefix_length; DPO takes
        the smaller of chosen's and rejected's). Encoded in chunks: one batch of all rows allocates every
        Encoding at once and ran ~3x slower here."""
        enc = self.tok.encode_batch_fast
        out: list[tuple[int, ...]] = []
        for lo in range(0, len(seqs[0]), CHUNK):
            cols = [enc(s[lo : lo + CHUNK], add_special_tokens=special) for s in seqs]
            if prompts is None:
                out.extend((0, *map(len, row)) for row in zip(*cols, strict=True))
                continue
            ps = enc(prompts[lo : lo + CHUNK], add_special_tokens=special)
            for p, *row in zip(ps, *cols, strict=True):
                pid = p.ids
                out.append((min(_prefix(pid, e.ids) for e in row), *map(len, row)))
        return out


def _prefix(a: list[int], b: list[int]) -> int:
    # trl.data_utils.common_prefix_length: the completion starts where the two tokenizations diverge
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _with_eos(s: str, eos: str) -> str:
    return s if not eos or s.endswith(eos) else s + eos


def count_rows(rows: list[dict], fmt: str, tok: _Tok) -> list[tuple[int, ...]]:
    """(prompt tokens, sequence lengths...) per row, as TRL's SFT/DPO dataset preparation makes them."""
    eos = tok.eos
    if fmt == "text":
        return tok.count(None, [[_with_eos(r["text"], eos) for r in rows]], special=True)
    if fmt == "messages":
        return tok.count(None, [[tok.render(r["messages"], False) for r in rows]], special=False)
    if fmt == "alpaca":
        from ftlaunch.contract.prompts import alpaca_prompt

        prompts = [alpaca_prompt(r) for r in rows]
        full = [p + _with_eos(r["output"], eos) for p, r in zip(prompts, rows, strict=True)]
        return tok.count(prompts, [full], special=True)
    if fmt == "preference":
        # Plain-text pairs and chat pairs (lists of turns) take different paths, as in DPOTrainer.
        res: dict[int, tuple[int, ...]] = {}
        plain = [r for r in rows if not isinstance(r["prompt"], list)]
        chat = [r for r in rows if isinstance(r["prompt"], list)]
        if plain:
            pc = [r["prompt"] + _with_eos(r["chosen"], eos) for r in plain]
            pr = [r["prompt"] + _with_eos(r["rejected"], eos) for r in plain]
            counted = tok.count([r["prompt"] for r in plain], [pc, pr], special=True)
            res.update((id(r), c) for r, c in zip(plain, counted, strict=True))
        if chat:
            pc = [tok.render(r["prompt"] + r["chosen"], False) for r in chat]
            pr = [tok.render(r["prompt"] + r["rejected"], False) for r in chat]
            counted = tok.count([tok.render(r["prompt"], True) for r in chat], [pc, pr], special=False)
            res.update((id(r), c) for r, c in zip(chat, counted, strict=True))
        return [res[id(r)] for r in rows]
    raise ValueError(f"data format {fmt!r} has no token counting rule")


# ---------------------------------------------------------------- file -> counts, with a cache


def read_rows(path: Path) -> list[dict]:
    """A JSON-lines file, or a JSON array file (rows were validated before this is called)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json" and text.lstrip().startswith("["):
        return json.loads(text)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def cache_root() -> Path:
    return Path(os.environ.get("FTLAUNCH_CACHE") or Path.home() / ".cache" / "ftlaunch") / "tokens"


def _cache_file(path: Path, fmt: str, tok_hash: str) -> Path:
    st = path.stat()
    key = f"{COUNT_VERSION}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{fmt}|{tok_hash}"
    return cache_root() / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def _columns(rows: list[tuple[int, ...]] | list[list[int]], tok_dir: Path) -> TokenCounts:
    cols = list(zip(*rows, strict=True))
    return TokenCounts(prompt=tuple(cols[0]), seqs=tuple(tuple(c) for c in cols[1:]), tokenizer=str(tok_dir))


def cached(path: str | Path, fmt: str, tok_dir: Path) -> TokenCounts | None:
    """The counts of an unchanged file with an unchanged tokenizer, or None. A file only gets counted after
    its rows were checked, so a hit also means the file passed the row checks for this format."""
    try:
        d = json.loads(_cache_file(Path(path).expanduser(), fmt, tokenizer_hash(tok_dir)).read_text())
        return TokenCounts(
            prompt=tuple(d["prompt"]), seqs=tuple(tuple(c) for c in d["seqs"]), tokenizer=str(tok_dir)
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def count_file(path: str | Path, fmt: str, tok_dir: Path, rows: list[dict] | None = None) -> TokenCounts:
    """Token counts of every row of a validated local file, from the cache when file and tokenizer are
    unchanged. The cache is an optimisation: an unreadable or unwritable one is ignored."""
    path = Path(path).expanduser()
    hit = cached(path, fmt, tok_dir)
    if hit is not None:
        return hit
    rows = read_rows(path) if rows is None else rows  # the caller's already-checked rows: no second parse
    counts = _columns(count_rows(rows, fmt, _Tok(tok_dir)), tok_dir)
    try:
        cf = _cache_file(path, fmt, tokenizer_hash(tok_dir))
        cf.parent.mkdir(parents=True, exist_ok=True)
        tmp = cf.with_name(f".{cf.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"prompt": counts.prompt, "seqs": counts.seqs}, separators=(",", ":")))
        os.replace(tmp, cf)
    except OSError:
        pass
    return counts
