"""Sources found automatically (``data.clusters``): a pool's examples clustered into sources.

    python -m scalebio clusters results/x/pool results/x/data --model resources/models/tiny --options '{"k": 5}'

For a pool without source labels: every example of every source of the pool folder is embedded with the base
model as the mean of its last hidden states (``layer``) over the response tokens (the tokens the SFT loss covers:
``scalebio.common.data`` formats and masks them, ``scalebio.common.modeling`` loads the model), the embeddings
are L2-normalised and clustered with scikit-learn's k-means, and each cluster becomes a source
``sources/cluster<j>.jsonl`` (clusters numbered by decreasing size). Validation and test are copied unchanged,
so every method runs on the result as on any data folder. The pool's own source labels are never used for
clustering; they are kept in each record (``pool_source``, ``pool_id``) and scored in ``card.json``:

- ``purity`` against the pool's sources and, if ``label`` names a record field (e.g. ``corrupted``), against it:
  Σ_clusters (largest label count) / examples;
- ``composition``: pool sources per cluster;
- ``noise`` (a cluster's share of examples with a true ``label``, else the mean noise rate of its examples' pool
  sources) and ``targets``/``harmful`` (clusters whose majority comes from such sources) when the pool's card has
  them, so the report's checks (Spearman of noise and weight) read the clustered folder as any other.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from scalebio.common.config import as_dict, from_dict, parse_json_object
from scalebio.common.data import write_data_folder
from scalebio.common.runtime import ConfigError, check_seed, main_guard


@dataclass
class ClustersConfig:
    """``experiments.<e>.data.clusters``: the pool's examples clustered into sources (``scalebio/assets/clusters.py``)."""

    k: int = 5
    """Number of clusters, i.e. of sources of the data folder."""
    model: str = ""
    """Key of ``models:`` whose base model embeds the examples (the workflow passes its folder)."""
    label: str | None = None
    """A record field to score the clusters against (``corrupted`` in the denoising pool); purity against the
    pool's sources is always recorded."""
    layer: int = -1
    """Hidden state whose response-token mean embeds an example: -1 the last (the default), 0 the input token
    embeddings (a bag of the response's tokens). Measured on the denoising pool merged into one source (k=2,
    purity against ``corrupted``): SmolLM2-135M-Instruct 1.0 at -1, 15 and 0; the random-initialised tiny model
    0.51 at -1, 1.0 at 0 (its random blocks mix the context into every position)."""
    max_length: int = 256
    """Tokens per example when embedding (responses cut off entirely are left out, and counted in the card)."""
    batch_size: int = 16
    """Examples per forward pass."""
    n_init: int = 10
    """k-means restarts (scikit-learn ``n_init``); the best inertia wins."""

    def validate(self, prefix: str = "data.clusters.") -> None:
        for name in ("k", "max_length", "batch_size", "n_init"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{prefix}{name} must be positive, got {getattr(self, name)}")
        if self.k < 2:
            raise ConfigError(f"{prefix}k must be at least 2 (one cluster is the pool itself), got {self.k}")


def embed(model, tokenizer, examples: list[dict], batch_size: int, layer: int = -1):
    """Mean hidden state (``layer``, -1 the last) over each example's response tokens ([n, hidden] numpy)."""
    import torch

    from scalebio.common.data import IGNORE_INDEX, collate

    out = []
    device = next(model.parameters()).device
    with torch.no_grad():
        for i in range(0, len(examples), batch_size):
            batch = {k: v.to(device) for k, v in collate(examples[i : i + batch_size], tokenizer.pad_token_id).items()}
            hidden = model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True
            ).hidden_states[layer]
            mask = (batch["labels"] != IGNORE_INDEX).unsqueeze(-1).to(hidden.dtype)
            out.append(((hidden * mask).sum(1) / mask.sum(1)).float().cpu())
    return torch.cat(out).numpy()


def kmeans(x, k: int, seed: int, n_init: int):
    """Cluster of each row (k-means on L2-normalised rows), renumbered by decreasing cluster size."""
    import numpy as np
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import normalize

    if len(x) < k:
        raise ConfigError(f"data.clusters.k={k} is larger than the pool ({len(x)} examples)")
    raw = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(normalize(x))
    order = sorted(range(k), key=lambda c: (-int((raw == c).sum()), int(np.argmax(raw == c))))
    return np.array([order.index(c) for c in raw])


def purity(clusters, labels) -> float:
    """Σ over clusters of the count of its most common label, over the number of examples."""
    groups: dict[int, Counter] = {}
    for c, lab in zip(clusters, labels):
        groups.setdefault(int(c), Counter())[lab] += 1
    return sum(max(g.values()) for g in groups.values()) / len(labels)


def card_checks(pool_card: dict, members: dict[str, list[dict]], label: str | None) -> dict:
    """The pool card's ``noise``/``targets``/``harmful`` translated to clusters (what the report reads).

    A cluster's noise rate is the share of its examples whose ``label`` is true when a label is given (the
    denoising pool's ``corrupted``), else the mean rate of its examples' pool sources.
    """
    out = {}
    noise = pool_card.get("noise") or {}
    rows_of = members.items()
    if noise and label:
        out["noise"] = {c: sum(float(bool(r.get(label))) for r in rows) / len(rows) for c, rows in rows_of}
    elif noise and all(r["pool_source"] in noise for _, rows in rows_of for r in rows):
        out["noise"] = {c: sum(noise[r["pool_source"]] for r in rows) / len(rows) for c, rows in rows_of}
    for key in ("targets", "harmful"):
        named = set(pool_card.get(key) or [])
        if named:
            out[key] = [c for c, rows in rows_of if sum(r["pool_source"] in named for r in rows) * 2 > len(rows)]
    return out


def build_clusters(pool_dir, out_dir, model_path, cfg: ClustersConfig, seed: int = 0) -> dict:
    """Write the clustered data folder ``out_dir`` from ``pool_dir``; returns its card."""
    from scalebio.common.data import load_sources
    from scalebio.common.modeling import load_model, load_tokenizer
    from scalebio.common.runtime import seed_everything

    pool_dir = Path(pool_dir)
    seed_everything(seed)
    tokenizer = load_tokenizer(model_path)
    sources = load_sources(pool_dir, tokenizer, cfg.max_length)
    by_id = {(s.name, r["id"]): r for s in sources for r in s.records}
    keys = [(s.name, e["id"]) for s in sources for e in s.examples]
    examples = [e for s in sources for e in s.examples]
    model = load_model(model_path).eval()
    n = model.config.num_hidden_layers
    if not -(n + 1) <= cfg.layer <= n:
        raise ConfigError(f"data.clusters.layer={cfg.layer}: model '{model_path}' has hidden states -{n + 1}..{n}")
    clusters = kmeans(embed(model, tokenizer, examples, cfg.batch_size, cfg.layer), cfg.k, seed, cfg.n_init)

    names = [f"cluster{c}" for c in range(cfg.k)]
    members: dict[str, list[dict]] = {n: [] for n in names}
    for (src, rid), c in zip(keys, clusters):
        row = {k: v for k, v in by_id[(src, rid)].items() if k != "id"}
        members[names[c]].append({**row, "pool_source": src, "pool_id": rid})
    pool_card_path = pool_dir / "card.json"
    pool_card = json.loads(pool_card_path.read_text()) if pool_card_path.exists() else {}
    scores = {"source": purity(clusters, [k[0] for k in keys])}
    if cfg.label:
        labels = [by_id[k].get(cfg.label) for k in keys]
        if all(v is None for v in labels):
            raise ConfigError(f"data.clusters.label: no record of '{pool_dir}' has the field '{cfg.label}'")
        scores[cfg.label] = purity(clusters, [json.dumps(v) for v in labels])
    card = {
        "kind": "clusters",
        "clusters": as_dict(cfg),
        "model": str(model_path),
        "seed": seed,
        "pool": {"dir": str(pool_dir), "card": pool_card},
        "embedding": f"mean of hidden state {cfg.layer} over response tokens, L2-normalised; k-means (scikit-learn)",
        "expected": pool_card.get("expected"),
        "sources": {n: len(rows) for n, rows in members.items()},
        "dropped": sum(s.dropped for s in sources),
        "purity": scores,
        "composition": {
            n: dict(sorted(Counter(r["pool_source"] for r in rows).items())) for n, rows in members.items()
        },
        **card_checks(pool_card, members, cfg.label),
    }
    with write_data_folder(out_dir) as folder:
        for n, rows in members.items():
            folder.source(n, [dict(r, id=f"{n}-{i}") for i, r in enumerate(rows)], what="path")
        for split in ("validation", "test", "tune"):  # the pool's one held-out split
            folder.copy_split(split, pool_dir)
        folder.card(card)
    return card


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m scalebio clusters", description=__doc__.split("\n\n")[0])
    ap.add_argument("pool", help="a data folder (sources/*.jsonl, validation.jsonl, test.jsonl)")
    ap.add_argument("out", help="the clustered data folder to write")
    ap.add_argument("--model", required=True, help="base model folder that embeds the examples")
    ap.add_argument("--options", default="{}", help="data.clusters options as a JSON object (k, label, ...)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    check_seed(a.seed)
    cfg = from_dict(ClustersConfig, parse_json_object(a.options), prefix="data.clusters.")
    card = build_clusters(a.pool, a.out, a.model, cfg, a.seed)
    print(json.dumps({"sources": card["sources"], "purity": card["purity"]}))


if __name__ == "__main__":
    main()
