"""Tools that are not stages of the workflow, the top layer under the CLI (they may use everything below).

``docs`` (the option reference of ``config/README.md``, generated from the typed option classes), ``benchmark``
(ScaleBiO step against SFT step: time and memory), and two studies of the algorithm run outside the DAG,
``lisa_study`` (LISA and short responses) and ``stability_study`` (read-outs of its runs)."""
