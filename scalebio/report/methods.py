"""What each method of a report is: its module's ``MethodInfo`` (through the registry), never a list of names here.

A report knows a run by its folder name (``<model>/<method>/s<seed>``) and by the method its ``selection.json`` names;
a name the registry does not know (a variant such as ``scalebio_lr10``, reached through ``methods.<m>.module``) is
described through the module that wrote its selection (``of_run``). The cross-experiment tables, which read CSVs,
describe a name through the config's ``methods.<m>.module`` (``in_config``). Every role a report gives a method —
the paper's method the claims are about, the control every difference is measured against, the ceiling of the
"gap closed", the reference points shown last, the comparators, the display names and the row order — comes from
these descriptions, so a new method needs no edit here.
"""

from __future__ import annotations

from scalebio.common.registry import MethodInfo, default_info, method_info, registered, registered_name
from scalebio.common.runtime import SuiteError
from scalebio.pipeline.resolve import method_module_name

BASE = "base"
"""The base model's row (its evaluations without fine-tuning): not a method, first in every table."""
BASE_INFO = MethodInfo(name=BASE, display="base model", role="reference_point", order=-1, colour="#a6a6a6")

_known: dict[str, MethodInfo] = {}


def describe(name: str, module: str | None = None) -> MethodInfo:
    """``MethodInfo`` of ``name`` (``module``: the module a variant reaches); a name whose module cannot be imported
    any more is described by its name only (``default_info``). Remembered for ``known``, so later look-ups of the
    same name (colours, row order) agree with the first."""
    if name == BASE:
        return BASE_INFO
    if name in _known and module is None:
        return _known[name]
    try:
        info = method_info(name, module)
    except SuiteError:
        info = default_info(name)
    _known.setdefault(name, info)
    return info


def of_run(name: str, selection: dict) -> MethodInfo:
    """The description of a run called ``name`` whose ``selection.json`` is ``selection``."""
    return describe(name, registered_name(selection.get("method", ""), name))


def in_config(name: str, config: dict) -> MethodInfo:
    """The description of method ``name`` of a workflow config (its ``methods.<name>.module`` if any)."""
    return describe(name, method_module_name(config, name) or None)


def known() -> dict[str, MethodInfo]:
    """Every name described so far in this process, in the order first met."""
    return dict(_known)


def sort_key(name: str) -> tuple:
    """Table order: the declared ``order``, a registered alias after its canonical name, then the name."""
    info = describe(name)
    return (info.order, info.name != name, name)


def is_main_entry(info: MethodInfo) -> bool:
    """Not a variant: the paper's method, a comparator or an anchor only under its registered name."""
    return info.variant_of is None


def the_method(names, infos: dict[str, MethodInfo] | None = None) -> str | None:
    """The paper's method among ``names`` (role ``method``, not a variant), or None."""
    infos = infos or {n: describe(n) for n in names}
    return next((n for n in names if infos[n].role == "method" and is_main_entry(infos[n])), None)


def anchor(names, kind: str, infos: dict[str, MethodInfo] | None = None) -> str | None:
    """The method of ``names`` that is the ``control`` (uniform) or the ``ceiling`` (the source-level oracle)."""
    infos = infos or {n: describe(n) for n in names}
    return next((n for n in names if infos[n].anchor == kind and is_main_entry(infos[n])), None)


def comparators(names, infos: dict[str, MethodInfo] | None = None, in_paper: bool = False) -> list[str]:
    """The baselines among ``names`` the paper's method is compared with, in table order (``in_paper``: only those
    the paper reports)."""
    infos = infos or {n: describe(n) for n in names}
    out = [n for n in names if infos[n].role == "baseline" and is_main_entry(infos[n])]
    return sorted((n for n in out if infos[n].in_paper or not in_paper), key=sort_key)


def paper_baselines() -> list[str]:
    """Every registered baseline the paper reports, under its canonical name, in table order."""
    names = [n for n in registered() if describe(n).name == n]
    return comparators(names, in_paper=True)


def aliases(name: str) -> tuple[str, ...]:
    """``name`` and every registered name of the same module (RHO-LOSS: ``rho_loss``, ``reference``)."""
    canonical = describe(name).name
    return tuple(sorted({name, *(n for n in registered() if describe(n).name == canonical)}, key=sort_key))


def is_reference_point(name: str) -> bool:
    """Knows the answer by construction (the oracles): shown last, never a comparator, no "gap closed"."""
    return describe(name).role == "reference_point" and name != BASE
