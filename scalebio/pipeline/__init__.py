"""The workflow's Python half: what turns a config into jobs and checks it first.

``resolve`` (one experiment's view of the config: merged sections, seeds, twins), ``configcheck`` (every check of
a config, run by ``check-config`` and by the DAG), ``launch`` (launcher, processes and GPUs of every job),
``tune`` (a ``tune:`` section expanded into tuning runs), ``memory`` (per-GPU and host memory of a GPU config's
stages, checked against its resources), ``reference`` (a fresh run's tables against the committed
reference). Above the algorithm, ``sft`` and ``assets``; below ``report`` and ``tools``.
"""
