"""What every stage shares at run time: errors, the hub policy, process ranks, atomic outputs, logging, seeding."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import platform
import random
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class SuiteError(Exception):
    """A user-facing error: the message names the file, key or source and says what to do."""


class ConfigError(SuiteError):
    pass


class DataError(SuiteError):
    pass


class AssetError(SuiteError):
    pass


class WriteError(SuiteError):
    """An output could not be written (disk full, quota, file size limit, read-only folder)."""


WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)
"""Errors of a write that the user fixes outside the suite (free space, raise a limit, another folder)."""


def _write_errno(exc: BaseException) -> int | None:
    """The errno of a failed write in ``exc`` or the exceptions it chains (torch wraps the OSError of a failed write
    in a RuntimeError; safetensors' Rust writer names it as ``os error 28`` or ``code: 28``)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
            return exc.errno
        code = re.search(r"\b(?:code: |os error )(\d+)", str(exc))
        if code and int(code.group(1)) in WRITE_ERRNOS:
            return int(code.group(1))
        exc = exc.__cause__ or exc.__context__
    return None


def write_failure(exc: BaseException, what: str | None = None) -> WriteError | None:
    """A one-line WriteError saying what could not be written and why, if ``exc`` is a failed write; else None."""
    code = _write_errno(exc)
    if code is None:
        return None
    what = what or (f"'{exc.filename}'" if isinstance(exc, OSError) and exc.filename else "an output file")
    return WriteError(
        f"could not write {what}: {os.strerror(code).lower()}; free space (or write elsewhere) and re-run"
    )


HUB_ENV = "SCALEBIO_HUB"
HF_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")


def hub_enabled() -> bool:
    return os.environ.get(HUB_ENV, "0") == "1"


def configure_hub(enabled: bool | None = None) -> None:
    """The one place that decides whether Hugging Face libraries may reach the hub.

    ``None`` keeps the decision already in the environment (``SCALEBIO_HUB=1`` allows the hub; anything
    else is offline). HF libraries read these variables at import time, and without them a hub lookup
    retries for ~50 s before failing, so ``import scalebio`` calls this before any HF import. The
    workflow calls it with the config's ``hub:``; child processes inherit the environment.
    """
    if enabled is None:
        enabled = hub_enabled()
    os.environ[HUB_ENV] = "1" if enabled else "0"
    for key in HF_OFFLINE_VARS:
        if enabled:
            os.environ.pop(key, None)
        else:
            os.environ[key] = "1"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


THREADS_ENV = "SCALEBIO_THREADS"


def configure_threads(n: int | None = None) -> int | None:
    """Pin torch's intra-op threads to ``n`` (exported as ``SCALEBIO_THREADS`` for child processes; the workflow
    passes the config's ``threads``), or to an inherited ``SCALEBIO_THREADS``.

    Results of float reductions depend on the thread count, so a job must not take "whatever cores Snakemake
    grants": the same config then gives the same files. Set before torch is imported (``import scalebio`` does
    it), so OpenMP starts with that many threads; ``run_environment`` records it in every run folder.
    """
    if n is not None:
        os.environ[THREADS_ENV] = str(n)
    n = os.environ.get(THREADS_ENV)
    if not n:
        return None
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[key] = n
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(n))
    return int(n)


def run_environment() -> dict:
    """What a run folder records about where it ran (not part of any result file that must be reproducible)."""
    torch = sys.modules.get("torch")
    return {
        "host": platform.node(),
        "torch": getattr(torch, "__version__", None),
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "scalebio_threads": os.environ.get(THREADS_ENV),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


# ---- process ranks: the one answer to "how many processes, and am I rank 0?" -------------------------
def _process_group():
    # No process group can exist before torch.distributed is imported, so the CLIs that never need torch
    # (SFT-set builder, report) do not pay for importing it here.
    tdist = sys.modules.get("torch.distributed")
    return tdist if tdist is not None and tdist.is_available() and tdist.is_initialized() else None


def world_size() -> int:
    """Processes sharing the work: the process group's size, or the launcher's ``WORLD_SIZE`` before it exists
    (torchrun/deepspeed/accelerate set it; the group may be created later, e.g. by ``TrainingArguments``)."""
    pg = _process_group()
    return pg.get_world_size() if pg is not None else int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    pg = _process_group()
    return pg.get_rank() if pg is not None else int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's device index on its node (set by the launcher)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True on the process that writes shared outputs (rank 0, or the only process)."""
    return rank() == 0


def _tmp_sibling(path: Path) -> Path:
    """This process's temporary name for ``path``; leftovers of interrupted earlier writes are removed first
    (Snakemake runs one job per output, so any other ``<name>.tmp-<pid>`` is stale)."""
    for stale in path.parent.glob(f"{glob_escape(path.name)}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)
    return path.with_name(f"{path.name}.tmp-{os.getpid()}")


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike, what: str = "folder") -> Iterator[Path]:
    """Yield a temporary sibling folder; rename it to ``final`` only if the block succeeds.

    Snakemake takes an existing output as finished, so a crashed run must never leave ``final``. A write that fails
    for want of space (or a size limit, a quota, a read-only folder) anywhere in the block is one WriteError naming
    ``what`` and ``final``; the half-written folder is removed.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_sibling(final)
        tmp.mkdir()
    except OSError as e:
        raise WriteError(f"could not create {what} '{final}': {e.strerror or e}") from None
    try:
        yield tmp
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        failure = None if isinstance(e, SuiteError) else write_failure(e, f"{what} '{final}'")
        if failure is not None:
            raise failure from None
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_sibling(path)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        raise WriteError(f"could not write '{path}': {(e.strerror or str(e)).lower()}; free space (or write elsewhere) "
                         "and re-run") from None  # fmt: skip


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def json_object(text: str, where: str, error: type[SuiteError] = DataError) -> dict:
    """``text`` parsed as one JSON object; anything else raises ``error`` naming ``where`` (file:line, flag ...)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise error(f"{where}: not valid JSON ({e.msg})") from None
    if not isinstance(value, dict):
        raise error(f"{where}: must be a JSON object, got {type(value).__name__}")
    return value


def write_jsonl(path: str | os.PathLike, rows) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def config_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def check_seed(seed: int, flag: str = "--seed") -> int:
    """``seed`` if it is >= 0 (numpy and the samplers take no negative seed); else a ConfigError naming ``flag``."""
    if seed < 0:
        raise ConfigError(f"{flag} must be >= 0, got {seed}")
    return seed


def seed_everything(seed: int) -> None:
    import numpy as np  # here, not at the top: the light CLIs (SFT-set builder, report) never seed torch
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


PROJECT_LOGGERS = ("scalebio", "baselines", "eval")
"""The project's packages. Every module logs to ``logging.getLogger(__name__)``, which propagates to one of these;
``setup_logging`` gives them their handlers, so a run's ``log.txt`` holds every module's lines."""


def setup_logging(run_dir: str | os.PathLike | None = None, name: str | None = None) -> logging.Logger:
    """Log every project module to stderr and, if given, to ``run_dir/log.txt`` (plain text, one line per event);
    returns the logger ``name`` (callers pass their ``__name__``)."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(Path(run_dir) / "log.txt"))
    for handler in handlers:
        handler.setFormatter(fmt)
    for top in PROJECT_LOGGERS:
        logger = logging.getLogger(top)
        logger.setLevel(logging.INFO)
        logger.handlers[:] = handlers
        logger.propagate = False
    return logging.getLogger(name or PROJECT_LOGGERS[0])


def main_guard(fn):
    """Run a CLI ``main``; turn a SuiteError into one clear line on stderr and exit code 2."""

    def wrapped(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SuiteError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        except Exception as e:  # a write that failed where no writer above named its file (a log, metrics.jsonl)
            failure = write_failure(e)
            if failure is None:
                raise
            print(f"error: {failure}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapped
