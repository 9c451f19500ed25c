"""Embedded assets built from PyPI packages: models (``models``), data pools (``embedded``), data folders (``folders``)."""
