"""How the workflow reads its config: one experiment's view of the global sections, its seeds, the runs whose
selection another experiment already made (twins), the model's dtype as a stage's default.

Pure functions of the config dict, shared by the DAG (``workflow/rules/common.smk``), the checker
(``scalebio.pipeline.configcheck``), the tuning expansion and the cross-experiment reports, so that a job gets
exactly what was checked and a report reads the runs the DAG made.
"""

from __future__ import annotations

from pathlib import Path

from scalebio.common.config import _merge
from scalebio.common.runtime import config_hash

MODEL_SETTING_KEYS = ("prompt_format", "attn_implementation")
"""Keys of ``models.<name>`` written into the prepared folder's ``scalebio_model.json`` (``common.model_settings``)."""
DEFAULT_MODEL_CACHE = "resources/models/prepared"


def section(config: dict, experiment: str, *path: str) -> dict:
    """A global section (``sft``, ``eval/math``, ``methods/<m>``) overridden key by key by the experiment's copy
    (``methods/<m>`` is ``method_options/<m>`` there)."""
    glob = config
    for key in path:
        glob = (glob or {}).get(key) or {}
    local = config["experiments"][experiment]
    for key in ("method_options", *path[1:]) if path[0] == "methods" else path:
        local = (local or {}).get(key) or {}
    return _merge(dict(glob), local)


def method_options(config: dict, experiment: str, method: str) -> dict:
    """``methods.<m>`` overridden by ``experiments.<e>.method_options.<m>`` (``module`` is not an option)."""
    opts = section(config, experiment, "methods", method)
    opts.pop("module", None)
    return opts


def method_module_name(config: dict, method: str) -> str:
    return (config.get("methods", {}).get(method) or {}).get("module", "")


def seeds_of(config: dict, experiment: str) -> list[int]:
    """The experiment's seeds (``experiments.<e>.seeds``, else the top-level ``seeds``, else ``[seed]``)."""
    e = config["experiments"][experiment]
    return e.get("seeds") or config.get("seeds") or [config.get("seed", 0)]


def selection_twin(config: dict, experiment: str, model: str, method: str, seed: int) -> str | None:
    """An earlier experiment whose selection for (model, method, seed) is this one's by construction: the same
    ``data`` spec, model, method module and options, budget, ``allow_repeats`` and seed. The workflow copies the
    twin's selection instead of recomputing it (the studies on the denoising pool reuse ``denoise``'s ScaleBiO
    runs this way; selections are deterministic on CPU, measured identical between runs)."""
    exps = config["experiments"]

    def key(e: str) -> tuple:
        spec = exps[e]
        return (spec["data"], spec.get("budget"), bool(spec.get("allow_repeats")),
                method_module_name(config, method), method_options(config, e, method))  # fmt: skip

    mine = key(experiment)
    for other, spec in exps.items():
        if other == experiment:
            return None  # only earlier experiments: a twin never points back at a later one
        if (
            model in spec["models"]
            and method in spec["methods"]
            and int(seed) in seeds_of(config, other)
            and key(other) == mine
        ):
            return other
    return None


def selection_twins(config: dict, experiment: str, model: str, method: str) -> dict[int, str]:
    """seed -> the experiment whose selection this run copies (``selection_twin``), for the seeds that have one: a
    cost counts the twin's selection job, not the copy."""
    out = {}
    for seed in seeds_of(config, experiment):
        if twin := selection_twin(config, experiment, model, method, seed):
            out[seed] = twin
    return out


def with_model_dtype(config: dict, model: str, opts: dict) -> dict:
    """A stage's options with the model's ``dtype`` as default."""
    dtype = config["models"][model].get("dtype")
    return {"dtype": dtype, **opts} if dtype else opts


def model_download(config: dict, name: str) -> dict | None:
    """What the workflow's ``download`` rule prepares for ``models.<name>`` (``scalebio.assets.download``): its
    ``source``, ``revision``, ``settings`` and the ``folder`` every job of the model reads, under ``model_cache``.
    None when jobs read the model as it is: an embedded asset, or a local folder with no revision or settings.

    The folder name carries a hash of what makes its content, so a new revision or prompt format is a new folder
    (fetched once), never a silently reused old one."""
    spec = config["models"][name]
    if spec.get("asset"):
        return None
    settings = {k: spec[k] for k in MODEL_SETTING_KEYS if k in spec}
    revision = spec.get("revision")
    if Path(spec["path"]).is_dir() and not settings and not revision:
        return None
    key = config_hash({"source": spec["path"], "revision": revision, "settings": settings})
    cache = config.get("model_cache") or DEFAULT_MODEL_CACHE
    return {"source": spec["path"], "revision": revision, "settings": settings, "name": f"{name}-{key}",
            "folder": f"{cache}/{name}-{key}"}  # fmt: skip
