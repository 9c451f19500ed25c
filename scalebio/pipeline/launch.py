"""How a workflow job is launched: which launcher, how many processes, how many GPUs it asks for.

The one place that decides it. The rules ``select``, ``finetune`` and ``evaluate`` call ``plan`` through
their ``params:``/``resources:`` and run ``{params.launch} -m MODULE ...``, so a user with 4 GPUs changes
``resources.gpus_per_job`` and nothing else:

    plan("select", METHOD, {"gpus_per_job": 8}).command
    -> "python -m torch.distributed.run --standalone --nproc_per_node=8"   (a method whose INFO says multi_process)
    -> "python"                                                            (any other method: one process, 1 GPU)

Which methods run multi-process is the methods' own declaration (``MethodInfo.multi_process``, read through the
registry with the config's ``module`` for a variant), so a ScaleBiO variant launches like ScaleBiO.

``python -m torch.distributed.run`` is ``torchrun`` run by the job's own interpreter (the ``torchrun``
script on PATH may belong to another environment). On a CPU-only job (``gpus_per_job: 0``) the same rules
run ``cpu_processes`` gloo processes: that is how the tests check that N processes give what 1 gives.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Literal

from scalebio.common.config import from_dict
from scalebio.common.registry import method_info
from scalebio.common.runtime import ConfigError

ASK_THE_METHOD = "method"
MULTI_PROCESS: dict[str, set[str] | str | None] = {
    # A method's own INFO says whether it runs under a process group (ScaleBiO's trainer: DDP-style all-reduce or
    # FSDP2; rank 0 writes); single-process programs would each write selection.json if started N times.
    "select": ASK_THE_METHOD,
    # The HF Trainer (plain DDP or DeepSpeed ZeRO) for every method's SFT run.
    "finetune": None,
    # Data-parallel generation (math: prompts sharded over ranks; lm-eval: its own accelerate sharding).
    # testloss and MT-Bench run one process (MT-Bench: vLLM's tensor parallelism is its multi-GPU path).
    "evaluate": {"math", "lmeval"},
}
"""Per stage, the variants (method / evaluation kind) that run one process per slot; None = all of them;
``ASK_THE_METHOD``: the method's ``MethodInfo.multi_process``."""

TORCHRUN = "python -m torch.distributed.run --standalone --nproc_per_node={n}"


@dataclass
class Resources:
    """What a job gets (config key ``resources``); the launch of every job is derived from it."""

    gpus_per_job: int = 0
    """GPUs of a multi-process job (ScaleBiO, SFT, math/lm-eval generation): one process per GPU, and the job's
    ``gpu`` resource, which the SLURM profile turns into ``--gpus=N``. Single-process jobs (baselines,
    testloss, MT-Bench with the HF backend) ask for one GPU. 0 = CPU only."""
    cpu_processes: int = 1
    """Processes of a multi-process job when ``gpus_per_job`` is 0 (gloo on CPU; 2 in ``config/ci_2proc.yaml``)."""
    launcher: Literal["auto", "torchrun", "python"] = "auto"
    """auto: torchrun when a job runs more than one process, plain python otherwise; torchrun: always torchrun
    for multi-process stages, even with one process (``config/paper/smoke_1gpu.yaml`` checks the real
    launcher); python: always one plain process (an error with ``distributed: fsdp`` on a multi-GPU job)."""

    gpu_memory_gb: float = 80.0
    """GiB of memory per GPU (H100: 80, H200: 141): the memory plan (``python -m scalebio plan-memory``) checks every
    GPU stage against it when the DAG is built."""
    host_memory_gb: float = 240.0
    """GiB of host memory a GPU job may use (the SLURM profile's request, ``mem_mb``, is derived from it): checked
    against the memory plan (DeepSpeed's optimizer offload of SFT lives here)."""

    def validate(self) -> None:
        if self.gpus_per_job < 0 or self.cpu_processes < 1:
            raise ConfigError("resources.gpus_per_job must be >= 0 and resources.cpu_processes >= 1")
        if self.gpu_memory_gb <= 0 or self.host_memory_gb <= 0:
            raise ConfigError("resources.gpu_memory_gb and resources.host_memory_gb must be positive")


@dataclass(frozen=True)
class Launch:
    """The decision for one job."""

    command: str
    """What the shell line puts before ``-m MODULE``."""
    processes: int
    """Processes the command starts."""
    gpus: int
    """The job's ``gpu`` resource."""
    backend: str = "hf"
    """Generation backend of an evaluation job (hf | vllm); ``hf`` for the other stages."""


def resolve_backend(backend: str, gpus: int) -> str:
    """``auto`` -> vllm when it is installed and the job has GPUs, else hf (checked without importing vllm)."""
    if backend != "auto":
        return backend
    return "vllm" if gpus > 0 and importlib.util.find_spec("vllm") is not None else "hf"


def plan(
    stage: str,
    variant: str,
    resources: dict | Resources | None = None,
    backend: str = "hf",
    distributed: str | None = None,
    module: str | None = None,
) -> Launch:
    """Launch of a ``stage`` job (select / finetune / evaluate) for ``variant`` (method or evaluation kind).

    ``backend``: the evaluation's generation backend (auto / hf / vllm); vLLM runs one process that drives
    every GPU of the job itself (tensor parallelism). ``distributed``: ScaleBiO's strategy, checked here so a
    one-process FSDP run on a multi-GPU job fails when the DAG is built, not silently at run time. ``module``: the
    config's ``methods.<variant>.module`` (a variant launches as its module declares).
    """
    res = resources if isinstance(resources, Resources) else from_dict(Resources, resources or {}, "resources.")
    if stage not in MULTI_PROCESS:
        raise ConfigError(f"internal: no launch rule for stage '{stage}'")
    gpus = res.gpus_per_job
    backend = resolve_backend(backend, gpus) if stage == "evaluate" else "hf"
    variants = MULTI_PROCESS[stage]
    if variants == ASK_THE_METHOD:
        multi = method_info(variant, module or None).multi_process
    else:
        multi = variants is None or variant in variants
    if backend == "vllm":
        if gpus == 0:
            raise ConfigError(
                f"eval backend vllm for '{variant}' needs resources.gpus_per_job >= 1 (vLLM runs on GPUs)"
            )
        return Launch("python", 1, gpus, backend)
    slots = gpus if gpus > 0 else res.cpu_processes
    if not multi:
        return Launch("python", 1, min(gpus, 1), backend)
    if res.launcher == "python":
        if distributed == "fsdp" and gpus > 1:
            raise ConfigError(
                f"methods.{variant}.distributed is fsdp, but resources.launcher: python starts one process on a job "
                f"with {gpus} GPUs; use launcher auto or torchrun (one process per GPU)"
            )
        return Launch("python", 1, gpus, backend)
    if slots == 1 and res.launcher == "auto":
        return Launch("python", 1, gpus, backend)
    return Launch(TORCHRUN.format(n=slots), slots, gpus, backend)
