"""ScaleBiO: scalable first-order bilevel optimisation for LLM data reweighting.

Importing this package applies the hub policy (``scalebio.common.runtime.configure_hub``): every entry
point is offline unless ``SCALEBIO_HUB=1`` (the workflow sets it when a config says ``hub: true``); and it
pins torch's thread count to ``SCALEBIO_THREADS`` when set (``configure_threads``).
Layout: the algorithm at the top (``minimax``, ``weights``, ``lisa``, ``trainer``, ``distributed``,
``cli``); ``common/`` what every stage shares; ``sft/`` the SFT set and fine-tuning; ``assets/`` embedded
models and data; ``report/`` tables, figures, docs and the benchmark. See README.md.
"""

from scalebio.common.runtime import configure_hub, configure_threads, hub_enabled

configure_hub()
configure_threads()

__all__ = ["configure_hub", "hub_enabled"]
