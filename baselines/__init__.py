"""Data-selection baselines behind one contract (see ``baselines/README.md``)."""

import scalebio  # noqa: F401  (sets the offline defaults before any Hugging Face import)
