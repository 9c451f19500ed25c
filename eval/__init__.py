"""Evaluation stage: held-out loss, zero-shot CoT math, lm-eval tasks, MT-Bench and IFEval on any model folder.

``testloss``, ``math`` (graded by ``math-verify`` and ``toragrade``), ``lmeval``, ``mtbench`` (with ``judges``),
``ifeval``; ``generation`` (HF and vLLM generation, whose options every generating evaluation composes:
``scalebio.common.config.GenerationOptions``), ``common`` (the CLI and ``summary.json``), ``judge_trust`` (how far the
offline MT-Bench judge can be trusted, measured).

Entry points (each writes ``summary.json`` atomically into ``--out``)::

    python -m eval.lmeval  --model resources/models/tiny --out /tmp/ev/lmeval  --data results/denoise/data
    python -m eval.math    --model resources/models/tiny --out /tmp/ev/math    --data results/denoise/data
    python -m eval.mtbench --model resources/models/tiny --out /tmp/ev/mtbench --data resources/mtbench \
        --options '{"question_limit": 2, "judge_model": "resources/models/tiny"}'

Run them as modules (``python -m``): ``eval/math.py`` would shadow the standard library's ``math``
if this folder itself were put on ``sys.path``.
"""

import scalebio  # noqa: F401  (sets the offline Hugging Face defaults before any HF import)
