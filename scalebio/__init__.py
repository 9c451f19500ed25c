"""ScaleBiO: scalable first-order bilevel optimisation for LLM data reweighting.

Importing this package applies the hub policy (``scalebio.common.runtime.configure_hub``): every entry
point is offline unless ``SCALEBIO_HUB=1`` (the workflow sets it when a config says ``hub: true``); and it
pins torch's thread count to ``SCALEBIO_THREADS`` when set (``configure_threads``).
Layout, in layers (``scalebio/README.md``): the algorithm at the top of the package (``minimax.py``,
``weights.py``, ``sampling.py``, ``objectives.py``, ``distributed.py``, ``trainer.py`` with ``callbacks.py``,
``checkpoint.py`` and ``loading.py``, ``method.py``), the command line (``cli.py``, ``__main__.py``); ``common/`` what every stage
shares; ``sft/`` the SFT set and fine-tuning; ``assets/`` embedded models and data; ``pipeline/`` the workflow's
Python half; ``report/`` tables, figures and claims; ``tools/`` docs, the benchmark and the studies.
"""

from scalebio.common.runtime import configure_hub, configure_threads, hub_enabled

configure_hub()
configure_threads()

__all__ = ["configure_hub", "hub_enabled"]
