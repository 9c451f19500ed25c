"""The cost benchmark runs end to end and writes its JSON and Markdown (tiny shape, CPU)."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_benchmark_tiny_writes_table(tmp_path):
    from scalebio.tools.benchmark import main

    main(
        ["--model", "tiny", "--steps", "1", "--warmup", "1", "--seq-len", "32", "--batch", "2", "--out", str(tmp_path)]
    )
    result = json.loads((tmp_path / "tiny-cpu.json").read_text())
    rows = {r["mode"]: r for r in result["rows"]}
    assert set(rows) == {"sft", "scalebio", "scalebio_lisa"} and not any("error" in r for r in rows.values())
    # two model copies and two optimizers: ScaleBiO holds twice SFT's weights and optimizer state
    assert rows["scalebio"]["weights_mib"] == pytest.approx(2 * rows["sft"]["weights_mib"])
    assert rows["scalebio"]["optimizer_mib"] == pytest.approx(2 * rows["sft"]["optimizer_mib"], rel=0.01)
    # LISA (2 of 4 blocks): fewer gradients and less optimizer state than full ScaleBiO
    assert rows["scalebio_lisa"]["grads_mib"] < rows["scalebio"]["grads_mib"]
    assert rows["scalebio_lisa"]["optimizer_mib"] < rows["scalebio"]["optimizer_mib"]
    assert {"scalebio_time_vs_sft", "scalebio_lisa_memory_vs_sft"} <= set(result["ratios"])
    assert "| scalebio_lisa |" in (tmp_path / "tiny-cpu.md").read_text()
