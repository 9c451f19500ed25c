"""What a report makes of each method, from its module's INFO alone. Modules: `scalebio/report/methods.py`."""

from __future__ import annotations

from scalebio.common.registry import method_info
from scalebio.report import methods


def test_table_order_display_names_and_the_alias_after_its_method():
    names = ["scalebio", "oracle_clean", "reference", "uniform", "doremi", "rho_loss", "less", "oracle", "base"]
    ordered = sorted(names, key=methods.sort_key)
    assert ordered == ["base", "uniform", "less", "rho_loss", "reference", "doremi", "scalebio", "oracle",
                       "oracle_clean"]  # fmt: skip
    assert [methods.describe(n).display for n in ("rho_loss", "reference", "base")] == [
        "RHO-LOSS", "RHO-LOSS", "base model"
    ]  # fmt: skip
    assert methods.aliases("reference") == methods.aliases("rho_loss") == ("rho_loss", "reference")


def test_roles_come_from_the_modules():
    names = ["uniform", "scalebio", "less", "rho_loss", "doremi", "oracle", "oracle_clean"]
    assert methods.the_method(names) == "scalebio"
    assert methods.anchor(names, "control") == "uniform" and methods.anchor(names, "ceiling") == "oracle"
    assert methods.comparators(names) == ["uniform", "less", "rho_loss", "doremi"]
    assert methods.comparators(names, in_paper=True) == ["uniform", "less", "rho_loss"]
    assert methods.paper_baselines() == ["uniform", "less", "rho_loss"]
    assert [n for n in names if methods.is_reference_point(n)] == ["oracle", "oracle_clean"]


def test_a_variant_is_never_the_paper_method_nor_a_comparator():
    """scalebio_lr10 (``module: scalebio.method``) keeps ScaleBiO's role and launch, shows its own name, and the claims
    are about ScaleBiO under its registered name only."""
    info = methods.of_run("scalebio_lr10_variant", {"method": "scalebio"})
    assert info.variant_of == "scalebio" and info.display == "scalebio_lr10_variant" and info.multi_process
    assert methods.the_method(["scalebio_lr10_variant"]) is None
    assert methods.the_method(["scalebio_lr10_variant", "scalebio"]) == "scalebio"
    less_variant = method_info("less_r8_variant", "baselines.less")
    assert methods.comparators(["less", "less_r8_variant"], {"less": method_info("less"), "less_r8_variant":
                                                              less_variant}) == ["less"]  # fmt: skip


def test_a_name_no_module_describes_is_a_baseline_shown_last():
    info = methods.describe("gone_method_no_module")
    assert info.display == "gone_method_no_module" and info.role == "baseline"
    assert methods.sort_key("gone_method_no_module") > methods.sort_key("oracle_clean")
