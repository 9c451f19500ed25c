"""Tools that are not stages of the workflow: ``docs`` (the option reference of ``config/README.md``, generated
from the typed option classes), ``benchmark`` (ScaleBiO step against SFT step: time and memory), and the two
studies of the algorithm run outside the DAG, ``lisa_study`` and ``stability_study``. The top layer under the CLI:
they may use everything below."""
