"""Save on SIGTERM, stop, and let the rerun continue: what a preempted or time-limited cluster job needs.

SLURM sends SIGTERM before it kills a job (at the time limit, or ``--signal=TERM@600`` ten minutes before it, as the
SLURM profile asks); ``torchrun`` forwards it to every worker. A ``PreemptionFlag`` records it instead of dying at
once; the training loops look at it after every step (ScaleBiO: ``scalebio.callbacks.Checkpointer``; SFT:
``trainer_callback`` below), every process agrees on it (an all-reduce, so no rank starts a collective save alone),
save their resumable state and raise ``Preempted``: the job fails, nothing is written as done, and Snakemake's rerun
(``retries`` in the SLURM profile, or by hand) resumes from the checkpoint.
"""

from __future__ import annotations

import logging
import signal

from scalebio.common.runtime import SuiteError

log = logging.getLogger(__name__)


class Preempted(SuiteError):
    """A SIGTERM stopped the run after its state was saved; rerun the same command to continue."""


class PreemptionFlag:
    """Set by SIGTERM while installed (``with PreemptionFlag() as flag``); the previous handler comes back on exit."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        self.signum, self.requested, self._previous = signum, False, None
        self.stopped = False
        """Set by the loop that saved and stopped because of the signal (the caller then raises ``Preempted``)."""

    def _handle(self, signum, frame) -> None:
        if not self.requested:
            log.warning("signal %d: saving a checkpoint after the current step, then stopping", signum)
        self.requested = True

    def __enter__(self) -> PreemptionFlag:
        try:
            self._previous = signal.signal(self.signum, self._handle)
        except ValueError:  # not the main thread (a test runner's worker): no handler, never set
            self._previous = None
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(self.signum, self._previous)

    def agreed(self) -> bool:
        """Whether any process got the signal (an all-reduce under a process group: every rank must call this)."""
        import torch
        import torch.distributed as tdist

        if not (tdist.is_available() and tdist.is_initialized()):
            return self.requested
        device = "cuda" if tdist.get_backend() == "nccl" else "cpu"
        flag = torch.tensor([float(self.requested)], device=device)
        tdist.all_reduce(flag, op=tdist.ReduceOp.MAX)
        return bool(flag.item())


def trainer_callback(flag: PreemptionFlag):
    """A ``TrainerCallback``: after a step in which a SIGTERM arrived (on any rank), the Trainer saves a checkpoint
    (``checkpoint-<step>`` in its output folder, which ``resume_from_checkpoint`` continues from) and stops."""
    from transformers import TrainerCallback

    class PreemptionCallback(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if flag.agreed():
                control.should_save = True
                control.should_training_stop = True
                flag.stopped = True

    return PreemptionCallback()
