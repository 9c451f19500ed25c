"""Data-selection baselines behind one contract (see ``baselines/README.md``), each declaring what it is (``INFO``).

``uniform``, ``less``, ``rho_loss`` (registered also as ``reference``), ``doremi``; the reference points ``oracle``
and ``oracle_clean``; ``_common`` (the trained baselines' run folder, pool, training and ranking) and ``__main__``
(``python -m baselines select``, the registry's command)."""

import scalebio  # noqa: F401  (sets the offline defaults before any Hugging Face import)
