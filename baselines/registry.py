"""The one place where selection methods are registered.

A method is a function ``select(inputs: MethodInputs) -> Path`` that writes
``inputs.out_dir/selection.json`` through ``scalebio.selection.write_selection``. The workflow
creates one job per method named in an experiment's ``methods:`` list; a name must be here (or
be given as ``methods.<name>.module: "package.module:function"`` in the config).
"""

from __future__ import annotations

import importlib

from scalebio.runtime import ConfigError

METHODS: dict[str, str] = {
    "uniform": "baselines.uniform:select",
    "scalebio": "scalebio.method:select",
    "less": "baselines.less:select",
    "reference": "baselines.reference:select",
    "doremi": "baselines.doremi:select",
}


def resolve(name: str, module: str | None = None):
    """Import and return the ``select`` function of method ``name``."""
    target = module or METHODS.get(name)
    if target is None:
        raise ConfigError(
            f"method '{name}' is not registered; known: {sorted(METHODS)} "
            "(add it to baselines/registry.py or set methods.<name>.module)"
        )
    mod_name, _, fn_name = target.partition(":")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise ConfigError(f"method '{name}': cannot import '{mod_name}' ({e})") from e
    fn = getattr(mod, fn_name or "select", None)
    if fn is None:
        raise ConfigError(f"method '{name}': '{mod_name}' has no function '{fn_name or 'select'}'")
    return fn
