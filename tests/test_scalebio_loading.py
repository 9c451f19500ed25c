"""FSDP loading without a full copy per rank (scalebio/loading.py): 2 gloo processes build the tiny model on the meta
device, shard it, and fill their shards from the safetensors file; each counts the real parameter storage it held."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# One worker per rank: build on meta, shard (FSDP2, one unit per block), materialise; then gather the full state and
# compare it with an ordinary load_model, and write what this rank held.
WORKER = textwrap.dedent(
    """
    import json, os, sys
    import torch, torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from scalebio.common.modeling import decoder_layers, load_model
    from scalebio.distributed import wrap_fsdp
    from scalebio.loading import build_empty, materialise

    model_dir, out = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = build_empty(model_dir, "float32")
    on_meta = all(p.is_meta for p in model.parameters())
    block = sum(p.numel() * p.element_size() for p in decoder_layers(model)[0].parameters())
    wrap_fsdp(model, torch.device("cpu"))
    stats = materialise(model, model_dir, torch.device("cpu"), slice_bytes=2**16)  # small: the tiny model's rows
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    ref = load_model(model_dir, "float32", "cpu").state_dict()
    same = all(torch.equal(full[k], ref[k]) for k in full) and set(full) <= set(ref)
    x = torch.tensor([[5, 6, 7, 8]])
    logits_equal = torch.equal(model(input_ids=x).logits, load_model(model_dir, "float32", "cpu")(input_ids=x).logits)
    rank = dist.get_rank()
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump(dict(vars(stats), on_meta=on_meta, block=block, same=same, logits_equal=logits_equal), f)
    dist.destroy_process_group()
    """
)


@pytest.mark.slow
def test_two_ranks_hold_their_shard_plus_one_slice_never_the_model(tiny_model_dir, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(tiny_model_dir), str(tmp_path)]  # fmt: skip
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1)]
    for s in ranks:
        assert s["on_meta"] and s["real_before"] == 0  # built and sharded without parameter storage
        assert s["same"] and s["logits_equal"]  # the shards hold exactly the checkpoint's values
        # real storage ever held: the shard plus the slice being copied; at most half the model plus one block
        assert s["local"] + s["largest_slice"] <= s["full"] / 2 + s["block"], s
        assert s["local"] < 0.6 * s["full"], s
    assert abs(ranks[0]["local"] + ranks[1]["local"] - ranks[0]["full"]) <= ranks[0]["full"] * 0.01


def test_shard_rows_follow_torch_chunk():
    """The rows a rank reads are the rows FSDP2 gives it (``torch.chunk`` on dim 0: ceil sizes, short or empty tail)."""
    import torch

    from scalebio.loading import _rows

    for n, world in [(10, 3), (7, 8), (4096, 2), (1, 2)]:
        chunks = torch.arange(n).chunk(world)
        for r in range(world):
            start, stop = _rows(torch.Size([n, 3]), r, world)
            expected = chunks[r].tolist() if r < len(chunks) else []
            assert list(range(start, stop)) == expected, (n, world, r)


def test_a_folder_without_safetensors_is_a_clear_error(tmp_path):
    from scalebio.common.runtime import AssetError
    from scalebio.loading import weight_files

    with pytest.raises(AssetError, match="no safetensors weights"):
        weight_files(tmp_path)
