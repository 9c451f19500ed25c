"""The ground floor: what every stage uses, importing nothing else of the project (``tests/test_structure.py``).

``runtime`` (errors, hub policy, ranks, atomic files, logging), ``config`` (typed configs, overrides, the options
help, ``GenerationOptions``), ``paths`` (plain names, paths kept inside their folders), ``data`` (sources, chat
template, response masks, collation, the data-folder writer), ``modeling`` (model loading, decoder blocks, losses),
``selection`` (the ``selection.json`` contract), ``registry`` (methods and evaluations by entry point, ``MethodInfo``,
the ``select`` command), ``training`` (``SFTConfig`` and the HF ``Trainer`` loop), ``lisa`` (LISA's layer sampler and
block switching, for ScaleBiO and SFT), ``streams`` (the one seeded-generator formula), ``ifeval_checkers`` (the
instruction checks of the ``instructions`` builder and ``eval.ifeval``), ``model_settings`` (what a model folder says
about loading it: prompt format, attention implementation, revision), ``preemption`` (save on SIGTERM, stop, rerun
continues)."""
