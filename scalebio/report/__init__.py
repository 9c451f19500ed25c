"""The report stages: what users read, computed from the run folders on disk only.

Per experiment: ``collect`` (run folders → records), ``methods`` (each run's ``MethodInfo``: which is ScaleBiO, the
baselines, the control, the reference points), ``tables`` (the experiment's tables and figures), ``weights_table``,
``claims``, ``compare`` and ``stats`` (paired differences, hierarchical bootstrap, Holm), ``cost``, ``figures`` with
``style`` (the one figure set-up and palette), ``markdown`` (the one table renderer); the studies beyond the paper:
``studies``, ``comparison_study``, ``pareto``; across experiments: ``summary`` with ``paper`` (the paper's numbers,
runtime), ``paper_vs_ours`` and ``verdicts``; the tuning protocol's ``tune``.
"""
