"""MT-Bench: FastChat answer/judgment formats, the log-prob judge, the openai judge over real local HTTP.

Modules: `eval/mtbench.py`, `eval/judges.py`.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from eval.mtbench import main

FAST = {"max_new_tokens": 8, "batch_size": 4}


def run_mtbench(model, data, out, **options):
    return main(
        ["--model", str(model), "--out", str(out), "--data", str(data), "--options", json.dumps({**FAST, **options})]
    )


def read_rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------- log-prob judge


def test_logprob_score_is_expectation_of_model_logits(tiny_model_dir, mtbench_dir):
    """The judge's score equals sum_k k softmax(log p("{k}]]")) computed by one plain forward per k."""
    from eval.judges import LogprobJudge, MatchSingle, judge_messages, load_judge_prompts, make_judges

    judge = LogprobJudge(tiny_model_dir)
    prompts = load_judge_prompts(mtbench_dir / "judge_prompts.jsonl")
    question = {"question_id": 1, "category": "writing", "turns": ["Write a haiku about rain.", "Now one about sun."]}
    answer = {"choices": [{"index": 0, "turns": ["Rain taps on the roof.", "Sun warms the field."]}]}
    for kind, multi in (("default", False), ("default-mt", True)):
        match = MatchSingle(question, "m", answer, make_judges(judge.name, prompts)[kind], multi_turn=multi)
        system, user = judge_messages(match)
        prefix = judge.prefix_text(system, user)
        assert prefix.endswith("<|im_start|>assistant\nRating: [[")
        assert "Rain taps on the roof." in user
        tok, model = judge.tokenizer, judge.model
        logps = []
        with torch.no_grad():
            for k in range(1, 11):
                ids = tok(prefix + f"{k}]]", add_special_tokens=False)["input_ids"]
                n_prefix = len(tok(prefix, add_special_tokens=False)["input_ids"])
                logits = model(input_ids=torch.tensor([ids])).logits[0].double()
                lsm = torch.log_softmax(logits, -1)
                logps.append(sum(lsm[i - 1, ids[i]].item() for i in range(n_prefix, len(ids))))
        probs = torch.softmax(torch.tensor(logps, dtype=torch.float64), 0)
        expected = float((torch.arange(1, 11, dtype=torch.float64) * probs).sum())
        row = judge.judge(match)
        assert row["score"] == pytest.approx(expected, abs=1e-6)
        assert 1.0 <= row["score"] <= 10.0
        assert row["rating_probs"] == pytest.approx(probs.tolist(), abs=1e-5)
        assert row["turn"] == (2 if multi else 1) and row["judge"][1] == match.judge.prompt_template["name"]


def test_fastchat_mirrors_match_fastchat(mtbench_dir):
    """The log-prob path avoids importing FastChat (~5 s); its copies must equal FastChat's own."""
    import dataclasses

    import fastchat.llm_judge.common as fc

    from eval import judges

    for ours, theirs in ((judges.Judge, fc.Judge), (judges.MatchSingle, fc.MatchSingle)):
        assert [(f.name, f.default) for f in dataclasses.fields(ours)] == [
            (f.name, f.default) for f in dataclasses.fields(theirs)
        ]
    assert judges.NEED_REF_CATS == fc.NEED_REF_CATS
    path = str(mtbench_dir / "judge_prompts.jsonl")
    assert judges.load_judge_prompts(path) == fc.load_judge_prompts(path)


# ---------------------------------------------------------------- end to end, offline


def test_mtbench_tiny_formats_summary_and_cache(tiny_model_dir, mtbench_dir, tmp_path):
    import fastchat.llm_judge.common as fc

    out = tmp_path / "mt"
    opts = {
        "categories": ["writing", "math"],
        "per_category": 1,
        "judge_model": str(tiny_model_dir),
        "model_id": "tiny-base",
    }
    summary = run_mtbench(tiny_model_dir, mtbench_dir, out, **opts)

    answers = fc.load_model_answers(str(out / "model_answer"))  # FastChat's own reader
    assert set(answers) == {"tiny-base"} and set(answers["tiny-base"]) == {81, 111}
    row = answers["tiny-base"][111]
    assert set(row) == {"question_id", "answer_id", "model_id", "choices", "tstamp"}
    assert row["choices"][0]["index"] == 0 and len(row["choices"][0]["turns"]) == 2

    jfile = out / "model_judgment" / "logprob-tiny_single.jsonl"
    judged = fc.load_single_model_judgments(str(jfile))  # FastChat's own reader
    assert {j[1] for j in judged} == {
        "single-v1",
        "single-math-v1",
        "single-v1-multi-turn",
        "single-math-v1-multi-turn",
    }
    rows = read_rows(jfile)
    assert len(rows) == 4
    assert {"question_id", "model", "judge", "user_prompt", "judgment", "score", "turn", "tstamp"} <= set(rows[0])
    math_t1 = next(r for r in rows if r["question_id"] == 111 and r["turn"] == 1)
    assert "[The Start of Reference Answer]" in math_t1["user_prompt"]  # reference-based prompt for math

    on_disk = json.loads((out / "summary.json").read_text())
    for key in ("evaluation", "metric", "value", "stderr", "n", "model", "protocol", "judge", "comparable_to_paper"):
        assert key in on_disk
    assert on_disk["n"] == 4 and on_disk["n_unparsed"] == 0 and on_disk["comparable_to_paper"] is False
    assert "NOT comparable" in on_disk["note"] and "logprob" in on_disk["judge"]
    assert set(on_disk["per_category"]) == {"writing", "math"}
    assert on_disk["value"] == pytest.approx(sum(r["score"] for r in rows) / 4)
    assert summary["turn1"] is not None and summary["turn2"] is not None

    # Re-run with one more question: the 4 cached judgments are reused, only the new question is judged.
    run_mtbench(tiny_model_dir, mtbench_dir, out, **{**opts, "categories": ["writing", "math", "stem"]})
    rows2 = read_rows(jfile)
    assert len(rows2) == 6 and rows2[:4] == rows
    assert json.loads((out / "summary.json").read_text())["n"] == 6


def test_question_file_with_missing_fields(tiny_model_dir, mtbench_dir, tmp_path, capsys):
    data = tmp_path / "data"
    (data / "mt_bench" / "reference_answer").mkdir(parents=True)
    (data / "judge_prompts.jsonl").write_text((mtbench_dir / "judge_prompts.jsonl").read_text())
    (data / "mt_bench" / "question.jsonl").write_text(json.dumps({"question_id": 81, "turns": ["a", "b"]}) + "\n")
    with pytest.raises(SystemExit) as exc:
        run_mtbench(tiny_model_dir, data, tmp_path / "out", judge_model=str(tiny_model_dir))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "question.jsonl:1" in err and "category" in err
    assert not (tmp_path / "out" / "summary.json").exists()


# ---------------------------------------------------------------- openai judge over real HTTP


class FakeOpenAI(BaseHTTPRequestHandler):
    """Minimal OpenAI-compatible /v1/chat/completions endpoint recording every request."""

    requests: list = []
    reply = "The answer is helpful and correct. Rating: [[8]]"
    status = 200

    def do_POST(self):  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if type(self).status != 200:  # an error body that echoes the credentials, as some proxies do
            error = {"error": {"message": f"invalid token {self.headers.get('Authorization')}", "type": "auth"}}
            data = json.dumps(error).encode()
            self.send_response(type(self).status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        payload = {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": type(self).reply}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def openai_server(monkeypatch):
    handler = type("Handler", (FakeOpenAI,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    monkeypatch.setenv("OPENAI_API_BASE", handler.base)
    yield handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_openai_judge_request_and_rating(tiny_model_dir, mtbench_dir, tmp_path, openai_server):
    out = tmp_path / "mt"
    opts = {
        "judge": "openai",
        "categories": ["writing", "math"],
        "per_category": 1,
        "api_max_retry": 2,
        "api_retry_sleep": 0.0,
    }
    summary = run_mtbench(tiny_model_dir, mtbench_dir, out, **opts)
    reqs = openai_server.requests
    assert len(reqs) == 4
    first = reqs[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer sk-local-test"
    body = first["body"]
    assert body["model"] == "gpt-4" and body["temperature"] == 0 and body["max_tokens"] == 2048
    prompts = {
        json.loads(line)["name"]: json.loads(line)
        for line in (mtbench_dir / "judge_prompts.jsonl").read_text().splitlines()
    }
    assert body["messages"][0] == {"role": "system", "content": prompts["single-v1"]["system_prompt"]}
    assert body["messages"][1]["role"] == "user" and "[Question]" in body["messages"][1]["content"]
    assert any("[The Start of Reference Answer]" in r["body"]["messages"][1]["content"] for r in reqs)
    # FastChat's request carries exactly the prompt the log-prob judge reads.
    from eval.judges import MatchSingle, judge_messages, load_judge_prompts, make_judges

    question = json.loads((mtbench_dir / "mt_bench" / "question.jsonl").read_text().splitlines()[0])
    answer = read_rows(next((out / "model_answer").glob("*.jsonl")))[0]
    judge = make_judges("gpt-4", load_judge_prompts(mtbench_dir / "judge_prompts.jsonl"))["default"]
    system, user = judge_messages(MatchSingle(question, "m", answer, judge))
    assert body["messages"] == [{"role": "system", "content": system}, {"role": "user", "content": user}]
    assert summary["value"] == 8.0 and summary["n_unparsed"] == 0
    assert summary["judge"].startswith("FastChat single-answer grading by gpt-4")
    rows = read_rows(out / "model_judgment" / "gpt-4_single.jsonl")
    assert all(r["score"] == 8 and r["judge"][0] == "gpt-4" for r in rows)


def test_openai_judge_reply_without_rating_is_retried_not_cached(
    tiny_model_dir, mtbench_dir, tmp_path, openai_server, capsys
):
    """No [[rating]]: asked again (rating_retries), then the run fails with one line and no summary.json; the unrated
    judgments are not reused, so a re-run against a working judge gives a value."""
    openai_server.reply = "I cannot decide."
    out = tmp_path / "mt"
    opts = {"judge": "openai", "question_limit": 1, "api_max_retry": 1, "api_retry_sleep": 0.0, "rating_retries": 2}
    with pytest.raises(SystemExit) as exc:
        run_mtbench(tiny_model_dir, mtbench_dir, out, **opts)
    assert exc.value.code == 2 and "2 of 2 judgments have no [[rating]] after 3 attempts" in capsys.readouterr().err
    assert len(openai_server.requests) == 6 and not (out / "summary.json").exists()
    rows = read_rows(out / "model_judgment" / "gpt-4_single.jsonl")
    assert [r["score"] for r in rows] == [-1, -1] and all(r["unrated"] for r in rows)
    # tolerated when asked for: counted and excluded from the mean, as FastChat's show_result does
    summary = run_mtbench(tiny_model_dir, mtbench_dir, out, **opts, max_unrated_fraction=1.0)
    assert summary["n_unparsed"] == 2 and summary["value"] is None
    openai_server.reply = "Fine. Rating: [[7]]"
    summary = run_mtbench(tiny_model_dir, mtbench_dir, out, **opts)
    assert summary["value"] == 7.0 and summary["n_unparsed"] == 0


def test_openai_judge_writes_no_secret(tiny_model_dir, mtbench_dir, tmp_path, openai_server, monkeypatch, capsys):
    """A fake key and a URL password appear in no file under the output folder and not in the printed log, also
    when the endpoint answers 401 and echoes the Authorization header; the judge id names the host only."""
    key, password = "sk-SECRET-key-123", "hunter2-pw"
    base = openai_server.base.replace("http://", f"http://alice:{password}@")
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.setenv("OPENAI_API_BASE", base)
    out = tmp_path / "mt"
    opts = {"judge": "openai", "question_limit": 1, "api_max_retry": 1, "api_retry_sleep": 0.0}
    summary = run_mtbench(tiny_model_dir, mtbench_dir, out, **opts)
    # requests sends the URL's user:password as Basic auth (base64), so that too must never be written
    assert summary["value"] == 8.0 and openai_server.requests[0]["auth"].startswith(("Bearer ", "Basic "))
    secrets = [key, password, openai_server.requests[0]["auth"].split()[1]]
    openai_server.status = 401  # now every reply is an error that echoes the Authorization header
    with pytest.raises(SystemExit):
        run_mtbench(tiny_model_dir, mtbench_dir, tmp_path / "mt401", **opts)
    printed = capsys.readouterr()
    files = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert files and not [(f, s) for f in files for s in secrets if s in f.read_text(errors="ignore")]
    log = printed.out + printed.err
    assert not [s for s in secrets if s in log]
    assert "invalid token" in log and "***" in log  # the server's echo reached the log, redacted
    assert summary["judge"].endswith(f"via {openai_server.base}")


@pytest.mark.parametrize("status", [401, 403])
def test_openai_judge_authentication_failure_is_one_line_and_not_retried(
    status, tiny_model_dir, mtbench_dir, tmp_path, openai_server, capsys
):
    """A refused key was retried for ~160 s and reported as "gave no reply"; now one request, one line."""
    openai_server.status = status
    out = tmp_path / "mt"
    opts = {"judge": "openai", "question_limit": 1, "api_max_retry": 4, "api_retry_sleep": 60.0}
    t0 = time.time()
    with pytest.raises(SystemExit) as exc:
        run_mtbench(tiny_model_dir, mtbench_dir, out, **opts)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert exc.value.code == 2 and len(lines) == 1, err
    assert f"authentication failed (HTTP {status}: invalid token Bearer ***); check OPENAI_API_KEY" in lines[0]
    assert "sk-local-test" not in err and "gave no reply" not in err
    assert len(openai_server.requests) == 1 and time.time() - t0 < 50  # no retry (one would sleep 60 s)
    assert not (out / "summary.json").exists() and len(read_rows(next((out / "model_answer").glob("*.jsonl")))) == 1


def test_openai_judge_unreachable_keeps_answers(tiny_model_dir, mtbench_dir, tmp_path, monkeypatch, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-local-test")
    monkeypatch.setenv("OPENAI_API_BASE", f"http://127.0.0.1:{port}/v1")
    out = tmp_path / "mt"
    opts = {"judge": "openai", "question_limit": 1, "api_max_retry": 2, "api_retry_sleep": 0.0}
    with pytest.raises(SystemExit) as exc:
        run_mtbench(tiny_model_dir, mtbench_dir, out, **opts)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "gave no reply after 2 attempts" in err and f"127.0.0.1:{port}" in err
    assert not (out / "summary.json").exists()
    answers = read_rows(next((out / "model_answer").glob("*.jsonl")))
    assert len(answers) == 1 and answers[0]["question_id"] == 81


def test_openai_judge_needs_key(tiny_model_dir, mtbench_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(SystemExit):
        run_mtbench(tiny_model_dir, mtbench_dir, tmp_path / "mt", judge="openai", question_limit=1)
    assert "OPENAI_API_KEY" in capsys.readouterr().err


def test_answers_use_fastchats_per_category_temperatures(tiny_model_dir, mtbench_dir):
    """writing (T 0.7 in FastChat's temperature_config) is sampled: another seed gives another answer, the same seed
    the same; math (T 0) stays greedy whatever the seed; sampling: greedy makes writing seed-independent."""
    import logging

    from eval.mtbench import Options, category_temperature, generate_answers, load_questions, select_questions

    assert [category_temperature(c, "fastchat") for c in ("writing", "stem", "math", "new")] == [0.7, 0.1, 0.0, 0.7]
    base = {"categories": ["writing", "math"], "per_category": 1, "max_new_tokens": 12}

    def turns(**kw):
        opts = Options(**base, **kw)
        questions = select_questions(load_questions(mtbench_dir / "mt_bench" / "question.jsonl"), opts)
        rows = generate_answers(str(tiny_model_dir), questions, "t", opts, logging.getLogger())
        return {r["question_id"]: r["choices"][0]["turns"] for r in rows}

    s0, s0_again, s1 = turns(sampling_seed=0), turns(sampling_seed=0), turns(sampling_seed=1)
    assert s0 == s0_again  # seeded
    assert s0[81] != s1[81]  # writing: sampled
    assert s0[111] == s1[111]  # math: greedy
    g0, g1 = turns(sampling="greedy", sampling_seed=0), turns(sampling="greedy", sampling_seed=1)
    assert g0 == g1 and g0[111] == s0[111]
