"""Bad inputs and faults that only a job meets: names that would leave their folder, records that are not
conversations, negative seeds on the command line, a disk that fills up. Each gets one `error: ...` line, exit
status 2, and leaves no file outside its folder and no output Snakemake would take as done (tests/README.md).

Modules: `scalebio/common/paths.py` (`inside`), `scalebio/common/runtime.py` (failed writes).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from scalebio.common.runtime import DataError, write_failure

ROOT = Path(__file__).resolve().parents[1]
GOOD = {"prompt": "1+1?", "response": "2"}


def _jsonl(path: Path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _data_job(spec: dict, out: Path, capsys, *extra: str) -> tuple[int, str]:
    from scalebio.assets.folders import main

    with pytest.raises(SystemExit) as exc:
        main([str(out), "--spec", json.dumps(spec), *extra])
    return exc.value.code, capsys.readouterr().err.strip()


# ---- names ---------------------------------------------------------------------------------------------------------
def test_a_traversal_source_name_writes_nothing_outside_the_results_folder(tmp_path, capsys):
    """`sources: {"../../../../x/evil": a.jsonl, b: b.jsonl}` wrote evil.jsonl outside the data folder and kept only b
    in the pool; now the data job stops with one line before writing anything."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    spec = {
        "sources": {"../../../../x/evil": _jsonl(inputs / "a.jsonl", [GOOD]), "b": _jsonl(inputs / "b.jsonl", [GOOD])},
        "validation": _jsonl(inputs / "v.jsonl", [GOOD]),
    }
    before = _files(tmp_path)
    code, err = _data_job(spec, tmp_path / "results" / "default" / "exp" / "data", capsys)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "error: data.sources: source name '../../../../x/evil' is not a plain name: use only letters" in err
    assert _files(tmp_path) == before  # nothing written: not outside results/, not inside it


def test_inside_refuses_paths_that_leave_their_folder(tmp_path):
    from scalebio.common.paths import inside

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path)  # a link inside that points outside
    assert inside(tmp_path / "out", "sources", "a.jsonl") == (tmp_path / "out" / "sources" / "a.jsonl").resolve()
    for parts in (("sources", "../../x.jsonl"), ("/etc/passwd",), ("link", "x.jsonl")):
        with pytest.raises(DataError, match="would be written outside"):
            inside(tmp_path / "out", *parts)


# ---- records -------------------------------------------------------------------------------------------------------
RECORDS = [
    (
        "no response",
        {"prompt": "q"},
        "b.jsonl:2, id '1': record has none of the fields messages / conversations / prompt+response",
    ),
    ("null response", {"prompt": "q", "response": None}, "b.jsonl:2, id '1': the assistant turn is None, not a string"),
    ("numeric response", {"prompt": "q", "response": 5}, "b.jsonl:2, id '1': the assistant turn is 5, not a string"),
    (
        "message without content",
        {"messages": [{"role": "user"}]},
        "b.jsonl:2, id '1': 'messages' must be a list of {role, content} objects",
    ),
]


@pytest.mark.parametrize("name, record, message", RECORDS, ids=[r[0] for r in RECORDS])
def test_records_that_are_not_conversations_of_strings_stop_the_data_job(name, record, message, tmp_path, capsys):
    """They passed the data job, `select uniform` and `sft-set` and died in SFT (a 53-line jinja traceback)."""
    spec = {
        "sources": {"a": _jsonl(tmp_path / "a.jsonl", [GOOD]), "b": _jsonl(tmp_path / "b.jsonl", [GOOD, record])},
        "validation": _jsonl(tmp_path / "v.jsonl", [GOOD]),
    }
    code, err = _data_job(spec, tmp_path / "data", capsys)
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
    assert not (tmp_path / "data").exists()


# ---- seeds on the command line -------------------------------------------------------------------------------------
SEED_CLIS = [
    ("select", ["--method", "uniform", "--data", "d", "--model", "m", "--out", "o", "--budget", "4"]),
    ("data", ["out", "--spec", "{}"]),
    ("sft-set", ["--selection", "s.json", "--data", "d", "--out", "o"]),
    ("finetune", ["--train", "t.jsonl", "--model", "m", "--out", "o"]),
]


@pytest.mark.parametrize("command, args", SEED_CLIS, ids=[c[0] for c in SEED_CLIS])
def test_a_negative_seed_is_refused_by_every_command(command, args, capsys):
    """`seed=-1` gave a numpy traceback after the model loaded."""
    from scalebio.cli import main

    with pytest.raises(SystemExit) as exc:
        main([command, *args, "--seed", "-1"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and err == "error: --seed must be >= 0, got -1", err


# ---- disk full -----------------------------------------------------------------------------------------------------
def _limited(args: list[str], cwd: Path, max_bytes: int) -> subprocess.CompletedProcess:
    """``python -m scalebio ARGS`` where no file may grow beyond ``max_bytes`` (RLIMIT_FSIZE: a write past it fails
    with EFBIG, "file too large", as a full disk fails with ENOSPC; Python ignores SIGXFSZ)."""

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, resource.RLIM_INFINITY))

    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "scalebio", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, preexec_fn=limit,
    )  # fmt: skip


def _error_line(r: subprocess.CompletedProcess) -> str:
    lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    return lines[0]


def test_a_full_disk_while_writing_a_data_folder_is_one_line(tmp_path):
    rows = [dict(GOOD, prompt="q" * 200, id=str(i)) for i in range(400)]  # ~90 kB
    spec = {"sources": {"a": _jsonl(tmp_path / "a.jsonl", rows)}, "validation": _jsonl(tmp_path / "v.jsonl", [GOOD])}
    r = _limited(["data", "out", "--spec", json.dumps(spec)], tmp_path, 50_000)
    line = _error_line(r)
    assert "could not write '" in line and "sources/a.jsonl': file too large; free space" in line, line
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.tmp-*"))


def test_a_full_disk_while_checkpointing_is_one_line(denoise_data_dir, tiny_model_dir, tmp_path):
    """It was two torch tracebacks ("unexpected pos ...") and no word of the disk."""
    opts = {"max_steps": 2, "checkpoint_every": 1, "global_batch_size": 4, "micro_batch_size": 4, "max_length": 64}
    args = ["select", "--method", "scalebio", "--data", str(denoise_data_dir), "--model", str(tiny_model_dir)]
    r = _limited([*args, "--out", "run", "--budget", "10", "--options", json.dumps(opts)], tmp_path, 1_000_000)
    line = _error_line(r)
    assert line.startswith("error: could not write checkpoint '") and "step-1': file too large" in line, line
    assert not (tmp_path / "run" / "selection.json").exists() and not list((tmp_path / "run").rglob("state.pt"))


def test_a_full_disk_while_saving_the_fine_tuned_model_is_one_line(denoise_data_dir, tiny_model_dir, tmp_path):
    from scalebio.common.selection import MethodInputs, write_selection
    from scalebio.sft.mixture import build_sft_set

    inputs = MethodInputs(data_dir=str(denoise_data_dir), model="m", out_dir=str(tmp_path / "sel"), budget=16)
    sel = write_selection(inputs, "uniform", weights={n: 0.2 for n in inputs.sources}, wall_time_s=0, tokens=0)
    build_sft_set(sel, denoise_data_dir, tmp_path / "sft", seed=0)
    opts = {"max_steps": 1, "global_batch_size": 4, "micro_batch_size": 4, "max_length": 64}
    args = ["finetune", "--train", str(tmp_path / "sft" / "train.jsonl"), "--model", str(tiny_model_dir)]
    r = _limited([*args, "--out", "model", "--options", json.dumps(opts)], tmp_path, 1_000_000)
    line = _error_line(r)
    assert line.startswith("error: could not write model folder '") and "model': file too large" in line, line
    assert not (tmp_path / "model").exists()


def test_write_failures_are_recognised_through_the_wrappers_of_torch_and_safetensors():
    def chained() -> RuntimeError:
        try:
            try:
                raise OSError(28, "No space left on device")
            except OSError:
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")  # noqa: B904
        except RuntimeError as e:
            return e

    assert str(write_failure(chained(), "checkpoint 'c'")).startswith("could not write checkpoint 'c': no space left")
    rust = RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert "no space left on device" in str(write_failure(rust))
    assert write_failure(RuntimeError("shape mismatch")) is None
    assert write_failure(FileNotFoundError(2, "No such file or directory")) is None  # a read, not a write
