"""IFEval's checker registry (Google's checkers, ``if_verifiable``), made deterministic.

One place for the pool builder (``scalebio.assets.instructions``) and the grader (``eval.ifeval``), so that one
answer gets one verdict in both.
"""

from __future__ import annotations


def checkers():
    """IFEval's checker registry, made deterministic (the pool builder and ``eval.ifeval`` both grade through it)."""
    import langdetect
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT  # on use: it imports `datasets` (~2 s)

    # The case checkers (english_lowercase/english_capital) also require langdetect.detect(answer) == "en", and
    # langdetect samples n-grams at random unless its factory is seeded: a short answer could pass the builder's
    # check and fail the grader's (a flaky test, 1 run in ~6). Seeded, one answer gets one verdict everywhere.
    langdetect.DetectorFactory.seed = 0
    return INSTRUCTION_DICT
