"""The workflow's Python half: what turns a config into jobs beyond checking it (``tune``: the tuning protocol's
expansion of a ``tune:`` section into tuning runs)."""
