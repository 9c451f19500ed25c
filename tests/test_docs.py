"""Documentation that must not drift: the config option reference and the README's first screen."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_config_readme_option_reference_is_generated_from_the_code():
    r = subprocess.run(
        [sys.executable, "-m", "scalebio.report.docs", "--check"], cwd=ROOT, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr


def test_config_readme_documents_every_schema_key():
    import yaml

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    text = (ROOT / "config/README.md").read_text()
    for key in schema["properties"]:
        assert f"`{key}" in text, f"config/README.md does not document top-level key '{key}'"
    exp = schema["properties"]["experiments"]["additionalProperties"]["properties"]
    for key in exp:
        assert f"`{key}`" in text, f"config/README.md does not document experiments.<name>.{key}"


def test_readme_first_screen_has_the_two_commands():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:25])
    assert "make reproduce" in first_screen and "make test" in first_screen
    makefile = (ROOT / "Makefile").read_text()
    assert "\nreproduce: setup" in makefile and "\ntest: setup" in makefile
    assert (ROOT / ".ci/run").read_text().strip().endswith("make test")


def test_full_config_is_the_default_with_three_seeds_everywhere():
    """full.yaml = config.yaml with 3 seeds for every experiment and DoReMi also on SmolLM2, with its options (the
    default leaves both out to fit 60 minutes)."""
    import yaml

    default = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    full = yaml.safe_load((ROOT / "config" / "full.yaml").read_text())
    assert full["seeds"] == [0, 1, 2]
    # every experiment runs >= 3 seeds: the 3 it inherits, or more of its own (the stability study's 5)
    assert all(len(e.get("seeds", full["seeds"])) >= 3 for e in full["experiments"].values())
    for name, e in default["experiments"].items():
        if len(e.get("seeds", default["seeds"])) < 3:
            e.pop("seeds")
        extra = [m for m in full["experiments"][name]["methods"] if m not in e["methods"]]
        assert extra in ([], ["doremi"]), (name, extra)
        e["methods"] += extra
        for m in extra:  # DoReMi's own options come with it (a method_options key must be a method the experiment runs)
            e.setdefault("method_options", {})[m] = full["experiments"][name]["method_options"][m]
    assert full == default, "config/full.yaml must equal config/config.yaml except for seeds and DoReMi: change both"
