"""ScaleBiO: scalable first-order bilevel optimisation for LLM data reweighting.

Importing this package makes every entry point offline by default: Hugging Face libraries read
these variables at import time, and without them a hub lookup retries for ~50 s before failing.
Set ``SCALEBIO_HUB=1`` (the workflow does so when a config says ``hub: true``) to allow the hub.
"""

import os

HUB_ENV = "SCALEBIO_HUB"


def hub_enabled() -> bool:
    return os.environ.get(HUB_ENV, "0") == "1"


if not hub_enabled():
    for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(_key, "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
