"""Plain names and paths that stay inside their folder.

Experiment, model, method and source names become path components (``results/<config>/<experiment>/<model>/
<method>/s<seed>``, ``sources/<source>.jsonl``): one pattern, ``NAME``, admits them (the config schema, the
workflow's wildcard constraints and the data job use it), and ``inside`` resolves every path the data writers build
from a name and refuses one that would land outside its folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from scalebio.common.runtime import DataError, SuiteError

NAME = r"[A-Za-z0-9_-][A-Za-z0-9_.-]*"
"""Letters, digits, ``_``, ``.`` and ``-``, not starting with ``.`` (no ``..``, no hidden files, no ``/``)."""
NAME_PATTERN = f"^{NAME}$"
"""``NAME`` anchored: the ``pattern`` of every name in workflow/schemas/config.schema.yaml."""
NAME_HINT = "use only letters, digits, '_', '.' and '-', not starting with '.'"


def is_plain(name: object) -> bool:
    return isinstance(name, str) and re.fullmatch(NAME, name) is not None


def check_name(name: object, what: str, error: type[SuiteError] = DataError) -> str:
    """``name`` if it is plain; otherwise ``error`` naming ``what`` (``source name``, ``experiment``, ...)."""
    if not is_plain(name):
        raise error(f"{what} {name!r} is not a plain name: {NAME_HINT}")
    return name


def inside(folder: str | os.PathLike, *parts: str, what: str = "path") -> Path:
    """``folder/parts...`` resolved; a DataError if it would not be inside ``folder`` (``..``, absolute parts,
    links that point elsewhere)."""
    root = Path(folder).resolve()
    path = root.joinpath(*parts).resolve()
    if path != root and root not in path.parents:
        raise DataError(f"{what} '{os.path.join(*parts)}' would be written outside '{folder}'; {NAME_HINT}")
    return path
