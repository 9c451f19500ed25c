"""MT-Bench single-answer judges on FastChat's own prompts and data structures.

- ``openai``: FastChat's judging code (``fastchat.llm_judge.common.play_a_match_single``), i.e. the
  GPT-4 single-answer grading of the paper, through ``openai==0.28``, which reads ``OPENAI_API_KEY``
  and ``OPENAI_API_BASE`` (any OpenAI-compatible server works). Retry count/sleep are FastChat's
  module constants, set from the options. FastChat returns ``$ERROR$`` after its retries: that is
  turned into a JudgeUnavailable error (answers and earlier judgments stay on disk).
- ``logprob`` (offline default): a local judge model reads the same system + user prompt through its
  chat template with the generation prompt, followed by ``"Rating: [["``; the score is the expected
  rating ``sum_k k * softmax_k(log p("{k}]]"))`` over k = 1..10. One forward pass over the shared
  prefix fills the KV cache; the 10 short continuations are then scored as one batch. Always a valid
  score, but a small judge discriminates poorly: NOT comparable to GPT-4 MT-Bench scores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import json
import os
import re
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import torch

from eval.common import load_eval_model
from scalebio.common.data import render_chat
from scalebio.common.runtime import ConfigError, SuiteError, file_sha256

RATINGS = list(range(1, 11))
RATING_PREFIX = "Rating: [["


class JudgeUnavailable(SuiteError):
    """The judge endpoint could not be reached / gave no reply after all retries."""


class JudgeAuthFailed(JudgeUnavailable):
    """The judge endpoint refused the credentials (HTTP 401 / 403): retrying cannot help."""


def fastchat_common():
    """``fastchat.llm_judge.common`` (imports openai 0.28, anthropic and FastChat's model adapters: ~5 s,
    so only the openai judge imports it)."""
    import fastchat.llm_judge.common as common

    return common


# FastChat's categories judged against a reference answer (fastchat.llm_judge.common.NEED_REF_CATS).
NEED_REF_CATS = ["math", "reasoning", "coding", "arena-hard-200"]


@dataclasses.dataclass
class Judge:
    """Field-for-field copy of ``fastchat.llm_judge.common.Judge`` (the log-prob path avoids importing FastChat)."""

    model_name: str
    prompt_template: dict
    ref_based: bool = False
    multi_turn: bool = False


@dataclasses.dataclass
class MatchSingle:
    """Field-for-field copy of ``fastchat.llm_judge.common.MatchSingle``."""

    question: dict
    model: str
    answer: dict
    judge: Judge
    ref_answer: dict = None
    multi_turn: bool = False


def load_judge_prompts(path: str | os.PathLike) -> dict:
    """FastChat's ``load_judge_prompts``: {prompt name: prompt record}."""
    prompts = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                prompts[row["name"]] = row
    return prompts


def make_judges(judge_name: str, judge_prompts: dict) -> dict:
    """FastChat's ``make_judge_single``: default / math (reference-based) x turn 1 / turn 2."""
    for name in ("single-v1", "single-math-v1", "single-v1-multi-turn", "single-math-v1-multi-turn"):
        if name not in judge_prompts:
            raise ConfigError(f"judge_prompts.jsonl has no prompt '{name}'; rebuild resources/mtbench")
    return {
        "default": Judge(judge_name, judge_prompts["single-v1"]),
        "math": Judge(judge_name, judge_prompts["single-math-v1"], ref_based=True),
        "default-mt": Judge(judge_name, judge_prompts["single-v1-multi-turn"], multi_turn=True),
        "math-mt": Judge(judge_name, judge_prompts["single-math-v1-multi-turn"], ref_based=True, multi_turn=True),
    }


def judge_messages(match) -> tuple[str, str]:
    """(system prompt, user prompt) exactly as FastChat's ``run_judge_single`` builds them."""
    judge, question, answer, ref = match.judge, match.question, match.answer, match.ref_answer
    kwargs = {}
    if ref is not None:
        kwargs["ref_answer_1"] = ref["choices"][0]["turns"][0]
        if match.multi_turn:
            kwargs["ref_answer_2"] = ref["choices"][0]["turns"][1]
    template = judge.prompt_template["prompt_template"]
    if match.multi_turn:
        user = template.format(
            question_1=question["turns"][0],
            question_2=question["turns"][1],
            answer_1=answer["choices"][0]["turns"][0],
            answer_2=answer["choices"][0]["turns"][1],
            **kwargs,
        )
    else:
        user = template.format(question=question["turns"][0], answer=answer["choices"][0]["turns"][0], **kwargs)
    return judge.prompt_template["system_prompt"], user


def _result(match, judge_id: str, user_prompt: str, judgment: str, score: float) -> dict:
    """FastChat's model_judgment row (same keys as ``play_a_match_single``) + the judge id."""
    return {
        "question_id": match.question["question_id"],
        "model": match.model,
        "judge": [match.judge.model_name, match.judge.prompt_template["name"]],
        "user_prompt": user_prompt,
        "judgment": judgment,
        "score": score,
        "turn": 2 if match.multi_turn else 1,
        "tstamp": time.time(),
        "judge_id": judge_id,
    }


class LogprobJudge:
    """Expected rating under a local model's next-token distribution after ``Rating: [[``."""

    kind = "logprob"

    def __init__(self, model_dir: str | os.PathLike, dtype: str = "float32", device=None):
        self.model_dir = Path(model_dir)
        self.model, self.tokenizer = load_eval_model(model_dir, dtype, device)
        weights = sorted(self.model_dir.glob("*.safetensors")) or sorted(self.model_dir.glob("*.bin"))
        digest = file_sha256(weights[0])[:10] if weights else "noweights"
        self.name = f"logprob-{self.model_dir.resolve().name}"
        self.judge_id = f"logprob:{self.model_dir.resolve().name}@{digest}"
        self.max_positions = getattr(self.model.config, "max_position_embeddings", None)

    def prefix_text(self, system: str, user: str) -> str:
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        return render_chat(self.tokenizer, msgs, add_generation_prompt=True) + RATING_PREFIX

    @torch.no_grad()
    def rating_logprobs(self, system: str, user: str) -> tuple[torch.Tensor, bool]:
        """log p(f"{k}]]" | prompt) for k = 1..10 (float64 tensor [10]) and whether the prompt was cut."""
        prefix = self.prefix_text(system, user)
        full = [self.tokenizer(prefix + f"{k}]]", add_special_tokens=False)["input_ids"] for k in RATINGS]
        # Shared prefix = longest common token prefix of the 10 strings (BPE may merge across "[[" + digit).
        shared = 0
        while all(len(f) > shared for f in full) and len({f[shared] for f in full}) == 1:
            shared += 1
        prefix_ids, conts = full[0][:shared], [f[shared:] for f in full]
        truncated = False
        longest = max(len(c) for c in conts)
        if self.max_positions and shared + longest > self.max_positions:
            # Keep the start (instructions) and the end (answer tail + generation prompt); cut the middle.
            keep = self.max_positions - longest
            head = keep // 4
            prefix_ids = prefix_ids[:head] + prefix_ids[-(keep - head) :]
            truncated = True
        device = next(self.model.parameters()).device
        out = self.model(input_ids=torch.tensor([prefix_ids], device=device), use_cache=True)
        first = torch.log_softmax(out.logits[0, -1].double(), -1)
        logp = torch.tensor([first[c[0]].item() for c in conts], dtype=torch.float64)
        if longest > 1:
            # transformers >= 5.2x names the KV cache `cache` (`past_key_values` is deprecated).
            cache_kw = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
            cache = out[cache_kw]
            cache.batch_repeat_interleave(len(conts))
            pad = self.tokenizer.pad_token_id or 0
            batch = torch.tensor([c + [pad] * (longest - len(c)) for c in conts], device=device)
            # Right padding: pads come after every real token, so causal attention never sees them.
            mask = torch.ones((len(conts), len(prefix_ids) + longest), dtype=torch.long, device=device)
            logits = self.model(input_ids=batch, attention_mask=mask, use_cache=True, **{cache_kw: cache}).logits
            lsm = torch.log_softmax(logits.double(), -1)
            for k, c in enumerate(conts):
                logp[k] += sum(lsm[k, j - 1, c[j]].item() for j in range(1, len(c)))
        return logp, truncated

    def judge(self, match) -> dict:
        system, user = judge_messages(match)
        logp, truncated = self.rating_logprobs(system, user)
        probs = torch.softmax(logp, 0)
        score = float(sum(k * p for k, p in zip(RATINGS, probs.tolist())))
        probs_text = ", ".join(f"{k}:{p:.3f}" for k, p in zip(RATINGS, probs.tolist()))
        judgment = (
            f"Rating: [[{score:.2f}]] (expected rating under {self.name}'s next-token distribution after "
            f"'{RATING_PREFIX}'; p = {probs_text})"
        )
        row = _result(match, self.judge_id, user, judgment, score)
        row.update({"rating_probs": [round(p, 6) for p in probs.tolist()], "prompt_truncated": truncated})
        return row


def public_endpoint(url: str) -> str:
    """``url`` without credentials (``http://user:password@host/v1`` -> ``http://host/v1``): what may be written."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact(text: str) -> str:
    """``text`` with the API key and any URL credentials replaced by ``***`` (for logs and files)."""
    key = os.environ.get("OPENAI_API_KEY")
    if key:
        text = text.replace(key, "***")
    text = re.sub(r"(\w+://)[^/\s:@]+(:[^/\s@]*)?@", r"\1***@", text)
    # Authorization headers echoed by a server: a URL password travels base64-encoded as "Basic ..."
    return re.sub(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", r"\1 ***", text)


class OpenAIJudge:
    """FastChat's GPT-4 single-answer grading over the OpenAI API (or any compatible server).

    FastChat prints API errors (which may echo the Authorization header) to stdout: every call runs with
    stdout/stderr captured and re-emitted through ``redact``. A reply without ``[[rating]]`` is asked again up to
    ``rating_retries`` times, then returned with score -1 (``unrated``), which the caller never caches as a score.
    """

    kind = "openai"

    def __init__(
        self, model_name: str = "gpt-4", max_retry: int = 16, retry_sleep: float = 10.0, rating_retries: int = 2
    ):
        fc = fastchat_common()
        if model_name not in fc.OPENAI_MODEL_LIST:
            raise ConfigError(
                f"eval.mtbench.openai_judge_model '{model_name}' is not in FastChat's OPENAI_MODEL_LIST "
                f"(e.g. gpt-4, gpt-4-0613, gpt-4-turbo); FastChat refuses other names"
            )
        key = os.environ.get("OPENAI_API_KEY")
        if not key:
            raise ConfigError(
                "eval.mtbench.judge 'openai' needs OPENAI_API_KEY (and optionally OPENAI_API_BASE for an "
                "OpenAI-compatible server); or use judge 'logprob' (offline)."
            )
        import openai  # FastChat's judge code needs the 0.28 client; only this judge loads it

        # openai 0.28 reads these at import; set them again in case the environment changed since.
        openai.api_key = key
        openai.api_base = os.environ.get("OPENAI_API_BASE", "https://api.openai.com/v1")
        fc.API_MAX_RETRY, fc.API_RETRY_SLEEP = max_retry, retry_sleep
        self.endpoint = public_endpoint(openai.api_base)
        self.rating_retries = rating_retries
        self.name = model_name
        self.judge_id = f"openai:{model_name}@{self.endpoint}"

    @contextlib.contextmanager
    def _no_retry_on_auth_failure(self):
        """FastChat retries every ``OpenAIError`` ``API_MAX_RETRY`` times (16 × 10 s by default); a refused key or
        permission is raised at once instead, as one line naming the endpoint and the server's reason (redacted)."""
        import openai

        create = openai.ChatCompletion.create

        def checked(*args, **kwargs):
            try:
                return create(*args, **kwargs)
            except (openai.error.AuthenticationError, openai.error.PermissionError) as e:
                reason = redact(" ".join(str(e.user_message or e).split()))
                raise JudgeAuthFailed(
                    f"judge endpoint {self.endpoint}: authentication failed (HTTP {e.http_status}: {reason}); check "
                    "OPENAI_API_KEY (and a password in OPENAI_API_BASE) and re-run: not retried; answers are kept"
                ) from None

        openai.ChatCompletion.create = checked
        try:
            yield
        finally:
            openai.ChatCompletion.create = create

    def _play(self, fc, fc_match) -> dict:
        captured = io.StringIO()
        try:
            with (
                self._no_retry_on_auth_failure(),
                contextlib.redirect_stdout(captured),
                contextlib.redirect_stderr(captured),
            ):
                return fc.play_a_match_single(fc_match, output_file=None)
        finally:
            if captured.getvalue():
                sys.stderr.write(redact(captured.getvalue()))

    def judge(self, match) -> dict:
        fc = fastchat_common()
        fc_judge = fc.Judge(**dataclasses.asdict(match.judge))
        fc_match = fc.MatchSingle(
            **{**{f.name: getattr(match, f.name) for f in dataclasses.fields(match)}, "judge": fc_judge}
        )
        for _ in range(1 + self.rating_retries):
            result = self._play(fc, fc_match)
            if result["judgment"] == fc.API_ERROR_OUTPUT:
                raise JudgeUnavailable(
                    f"judge endpoint {self.endpoint} gave no reply after {fc.API_MAX_RETRY} attempts "
                    f"(question {result['question_id']}, turn {result['turn']}); check OPENAI_API_BASE / "
                    "OPENAI_API_KEY and re-run: answers and finished judgments are kept and reused"
                )
            if result["score"] != -1:
                break
        result["judge"] = list(result["judge"])
        result["judge_id"] = self.judge_id
        result["unrated"] = result["score"] == -1
        return result
