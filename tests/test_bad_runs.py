"""Bad inputs and faults that only a job meets: names that would leave their folder, records that are not
conversations, negative seeds on the command line. Each gets one `error: ...` line, exit
status 2, and leaves no file outside its folder and no output Snakemake would take as done (tests/README.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scalebio.common.runtime import DataError

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
