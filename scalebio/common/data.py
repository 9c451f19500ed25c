"""Training/validation data: reading sources, chat formatting and response-only masking.

A *source* is one JSONL file (its name is the file stem); a *data folder* holds
``sources/<name>.jsonl``, ``validation.jsonl`` and optionally ``test.jsonl``. Accepted record shapes
(normalised to a list of ``{"role", "content"}`` messages):

- ``{"messages": [{"role": "user"|"assistant"|"system", "content": ...}, ...]}`` (HF chat)
- ``{"conversations"|"items": [{"from": "human"|"gpt"|"system", "value": ...}, ...]}`` (ShareGPT)
- ``{"prompt": ..., "response": ...}``
- ``{"instruction": ..., "input": ..., "output": ...}`` (Alpaca)

Every record has an ``id`` (its line number if the file has none). Tokenisation uses the
tokenizer's own chat template; the loss covers assistant turns only: the reply (``loss_span="response"``,
every stage's default) or the whole turn with its role header (``"assistant_turn"``, the official ScaleBiO code).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from scalebio.common.model_settings import fold_system
from scalebio.common.paths import inside
from scalebio.common.runtime import DataError, atomic_dir, atomic_write_json, json_object, write_jsonl

log = logging.getLogger(__name__)
IGNORE_INDEX = -100
"""Label of tokens that carry no loss (prompt, padding): PyTorch's and Hugging Face's convention."""

SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
}


def read_jsonl(
    path: str | os.PathLike,
    required: tuple[str, ...] = (),
    what: str = "",
    add_ids: bool = True,
    unique_ids: bool = True,
    line_numbers: list[int] | None = None,
) -> list[dict]:
    """Rows of a JSONL file (UTF-8); errors name the file and line. ``required`` fields must be present.

    With ``add_ids`` (data records) every row gets a string ``id`` (its 0-based line index if the file has
    none), and with ``unique_ids`` the ids must be unique: a selection names examples by id, so a repeated id in
    a source would make one of them unreachable. (An SFT set mixes sources and may repeat examples: not unique.)
    ``line_numbers``, if given, receives each row's 1-based line number (for messages about a row).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file '{path}' does not exist")
    rows, seen = [], {}
    with open(path, "rb") as f:
        for i, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}:{i}: not UTF-8 ({e.reason} at byte {e.start}); re-encode the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            row = json_object(line, f"{path}:{i}")
            missing = [k for k in required if k not in row]
            if missing:
                raise DataError(f"{path}:{i}: {what or 'row'} lacks field(s) {missing} (has {sorted(row)})")
            if add_ids:
                row["id"] = str(row.get("id", i - 1))
                if unique_ids and row["id"] in seen:
                    raise DataError(
                        f"{path}:{i}: id '{row['id']}' already used on line {seen[row['id']]}; ids must be unique in a file"
                    )
                seen[row["id"]] = i
            rows.append(row)
            if line_numbers is not None:
                line_numbers.append(i)
    return rows


def to_messages(record: dict, where: str = "") -> list[dict]:
    """Normalise one record to chat messages whose contents are strings; raise a DataError naming ``where`` (file,
    line, id) if impossible."""
    if "messages" in record:
        turns = record["messages"]
        if not isinstance(turns, list) or not all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in turns):
            raise DataError(f"{where}: 'messages' must be a list of {{role, content}} objects")
        msgs = [{"role": m["role"], "content": m["content"]} for m in turns]
    elif "conversations" in record or "items" in record:
        turns = record.get("conversations", record.get("items"))
        try:
            msgs = [{"role": SHAREGPT_ROLES[t["from"]], "content": t["value"]} for t in turns]
        except (KeyError, TypeError) as e:
            raise DataError(f"{where}: unknown ShareGPT field or role {e}") from None
    elif "prompt" in record and "response" in record:
        msgs = [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["response"]}]
    elif "instruction" in record and "output" in record:
        if not isinstance(record["instruction"], str):
            raise DataError(
                f"{where}: 'instruction' is {record['instruction']!r}, not a string; every turn must be text"
            )
        prompt = record["instruction"] + (f"\n\n{record['input']}" if record.get("input") else "")
        msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]
    else:
        raise DataError(
            f"{where}: record has none of the fields messages / conversations / prompt+response / "
            f"instruction+output (keys: {sorted(record)})"
        )
    for m in msgs:
        if not isinstance(m["content"], str):
            raise DataError(f"{where}: the {m['role']} turn is {m['content']!r}, not a string; every turn must be text")
    if not any(m["role"] == "assistant" for m in msgs):
        raise DataError(f"{where}: record has no assistant turn, so it has no response to learn")
    return msgs


def prompt_messages(record: dict) -> list[dict]:
    """The messages before the first assistant turn (what a model is asked at evaluation time)."""
    msgs = to_messages(record)
    first = next(i for i, m in enumerate(msgs) if m["role"] == "assistant")
    return msgs[:first]


def render_chat(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    """``messages`` rendered by the tokenizer's chat template; where the template refuses system turns (Gemma's raises
    "System role not supported"), they are folded into the next user turn (``model_settings.fold_system``) and the
    conversation is rendered again, so an official source with a system prompt still trains and evaluates."""
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
    except Exception as e:  # the template's own raise_exception: jinja2's TemplateError
        if "system" not in str(e).lower() or not any(m["role"] == "system" for m in messages):
            raise
    return tokenizer.apply_chat_template(
        fold_system(messages), tokenize=False, add_generation_prompt=add_generation_prompt
    )


LOSS_SPANS = ("response", "assistant_turn")
"""Which tokens of an assistant turn carry the loss (METHOD.md §3.4)."""


def tokenize_chat(tokenizer, messages: list[dict], max_length: int, loss_span: str = "response") -> dict:
    """Token ids and labels with the loss on assistant turns only (METHOD.md §3.4).

    Spans come from the tokenizer's own chat template, by text: for each assistant turn, ``before`` renders
    the conversation up to it, ``prompt`` the same with the generation prompt (the role header), ``full``
    the same including the turn. ``loss_span="response"`` labels ``full − prompt`` (the reply and its
    end-of-turn marker); ``"assistant_turn"`` labels ``full − before``, role header included, as the official
    code does. Everything else gets -100. Rendering through the template avoids the official code's
    off-by-one BOS masking (METHOD.md §14 #13).
    """
    if loss_span not in LOSS_SPANS:
        raise DataError(f"loss_span must be one of {LOSS_SPANS}, got '{loss_span}'")
    ids: list[int] = []
    labels: list[int] = []
    rendered = ""

    def add(text: str, learn: bool) -> None:
        if text:
            t = tokenizer(text, add_special_tokens=False)["input_ids"]
            ids.extend(t)
            labels.extend(t if learn else [IGNORE_INDEX] * len(t))

    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = render_chat(tokenizer, messages[:i]) if i else rendered
        prompt = render_chat(tokenizer, messages[:i], add_generation_prompt=True)
        full = render_chat(tokenizer, messages[: i + 1])
        if not (before.startswith(rendered) and prompt.startswith(before) and full.startswith(prompt)):
            raise DataError("chat template is not prefix-consistent; cannot mask responses")
        start = prompt if loss_span == "response" else before
        add(start[len(rendered) :], learn=False)
        add(full[len(start) :], learn=True)
        rendered = full
    return {"input_ids": ids[:max_length], "labels": labels[:max_length]}


@dataclass
class Source:
    """One training source: a JSONL file, its records and (after ``tokenize``) their token ids."""

    name: str
    path: str
    records: list[dict]
    examples: list[dict] = field(default_factory=list)
    dropped: int = 0
    """Records left out of ``examples`` because truncation left them no response token."""

    def __len__(self) -> int:
        return len(self.records)


RESERVED_SOURCE_NAMES = ("validation", "test")
"""Source names that mean something else downstream (the SFT set tags appended validation records "validation")."""


def list_sources(data_dir: str | os.PathLike) -> dict[str, str]:
    """``{name: path}`` of ``data_dir/sources/*.jsonl``, sorted by name (not glob order: METHOD.md §14 #3)."""
    src_dir = Path(data_dir) / "sources"
    files = sorted(src_dir.glob("*.jsonl"))
    if not files:
        raise DataError(f"no sources: '{src_dir}' has no *.jsonl files")
    reserved = [f.name for f in files if f.stem in RESERVED_SOURCE_NAMES]
    if reserved:
        raise DataError(
            f"'{src_dir}': source file(s) {reserved} use a reserved name {RESERVED_SOURCE_NAMES}; rename them"
        )
    return {f.stem: str(f) for f in files}


class DataFolder:
    """A data folder being written (``write_data_folder``): ``sources/<name>.jsonl``, the splits, ``card.json``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def source(self, name: str, rows: list[dict], what: str | None = None) -> Path:
        """``sources/<name>.jsonl`` (a name that would leave the folder is refused: ``paths.inside``)."""
        path = inside(self.root, "sources", f"{name}.jsonl", what=what or f"source '{name}'")
        write_jsonl(path, rows)
        return path

    def split(self, name: str, rows: list[dict], what: str = "path") -> Path:
        """``<name>.jsonl`` at the top: ``validation``, ``test`` or ``tune``."""
        path = inside(self.root, f"{name}.jsonl", what=what)
        write_jsonl(path, rows)
        return path

    def copy_split(self, name: str, other: Path) -> None:
        """``<name>.jsonl`` copied byte for byte from another data folder, if it has one."""
        if (Path(other) / f"{name}.jsonl").exists():
            (self.root / f"{name}.jsonl").write_bytes((Path(other) / f"{name}.jsonl").read_bytes())

    def card(self, card: dict) -> None:
        """``card.json``: what the folder holds and where it came from (the report reads it)."""
        atomic_write_json(self.root / "card.json", card)


@contextlib.contextmanager
def write_data_folder(out_dir: str | os.PathLike) -> Iterator[DataFolder]:
    """The one writer of data folders (embedded builders, files specs, clusters): everything goes into a temporary
    sibling that replaces ``out_dir`` only when the block succeeds, so a failed build leaves nothing Snakemake would
    take as done."""
    with atomic_dir(out_dir) as tmp:
        yield DataFolder(tmp)


def load_source(name: str, path: str, tokenizer=None, max_length: int = 1024, loss_span: str = "response") -> Source:
    records = read_jsonl(path)
    if not records:
        raise DataError(f"source '{name}' ({path}) is empty")
    src = Source(name=name, path=str(path), records=records)
    if tokenizer is not None:
        src.examples = tokenize_records(records, tokenizer, max_length, f"source '{name}' ({path})", loss_span)
        src.dropped = len(records) - len(src.examples)
    return src


def tokenize_records(
    records: list[dict], tokenizer, max_length: int, where: str, loss_span: str = "response"
) -> list[dict]:
    """Tokenised examples; those that truncation leaves without a response token are dropped (one warning line
    with the count): kept, they would enter every loss as 0 and dilute it."""
    out = []
    for r in records:
        ex = tokenize_chat(tokenizer, to_messages(r, f"{where}, id {r['id']}"), max_length, loss_span)
        ex["id"] = r["id"]
        if any(lab != IGNORE_INDEX for lab in ex["labels"]):
            out.append(ex)
    if not out:
        raise DataError(
            f"{where}: no example has response tokens within max_length={max_length}; "
            "raise max_length or check the records' assistant turns"
        )
    if len(out) < len(records):
        log.warning(
            "%s: %d of %d examples have no response token within max_length=%d and are left out",
            where, len(records) - len(out), len(records), max_length,
        )  # fmt: skip
    return out


def load_sources(data_dir_or_map, tokenizer=None, max_length: int = 1024, loss_span: str = "response") -> list[Source]:
    spec = data_dir_or_map if isinstance(data_dir_or_map, dict) else list_sources(data_dir_or_map)
    return [load_source(n, spec[n], tokenizer, max_length, loss_span) for n in sorted(spec)]


def load_split(
    path: str | os.PathLike,
    tokenizer,
    max_length: int = 1024,
    what: str = "validation set",
    loss_span: str = "response",
) -> list[dict]:
    if not Path(path).exists():
        raise DataError(f"{what} '{path}' does not exist")
    records = read_jsonl(path)
    if not records:
        raise DataError(f"{what} '{path}' is empty")
    return tokenize_records(records, tokenizer, max_length, f"{what} '{path}'", loss_span)


def collate(examples: list[dict], pad_id: int, pad_to_multiple_of: int = 8) -> dict:
    """Right-pad ids (``pad_id``) and labels (-100) to a multiple of 8, as the official code does.

    Hand-written because the examples carry non-tensor fields (``source``, ``id``) that
    ``DataCollatorForSeq2Seq`` would try to tensorise; this is its padding rule and nothing more.
    """
    import torch  # on use: reading and masking data (the SFT-set builder, the report) needs no torch

    longest = max(len(e["input_ids"]) for e in examples)
    T = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    ids = torch.full((len(examples), T), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), T), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(examples), T), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        mask[i, :n] = 1
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if "source" in examples[0]:
        batch["source"] = torch.tensor([e["source"] for e in examples], dtype=torch.long)
    return batch
