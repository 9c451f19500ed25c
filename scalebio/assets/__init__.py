"""Embedded assets built from PyPI packages, and the data folders of experiments.

``models`` (the tiny Llama, SmolLM2 from its GGUF, the MT-Bench files), ``embedded`` (the data pools: denoise, math,
multilingual, with ``arithmetic`` and ``instructions`` for the arithmetic and instruction-following pools),
``builder_options`` (each builder's typed options), ``folders`` (an experiment's data folder from its ``data:``
config), ``clusters`` (``data.clusters``: sources found by k-means), ``official`` (the official repository's files at
a pinned commit), ``download`` (a model folder every job reads: a hub model at a pinned revision, or a local view,
with its settings)."""
