"""Typed options of the embedded data builders (``data.options`` of an experiment with ``data.builder``).

One class per builder, with every key its builder reads and the same defaults (a test compares them with the
builders' ``cfg.get`` calls): an unknown key (``n_per_sorce``), a value of the wrong type or out of range is one
line naming it, at ``check-config`` / ``snakemake -n`` time and again in the data job. The builders still read the
options as given (the card records them as written), so a valid config builds byte for byte what it built before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from scalebio.common.config import from_dict
from scalebio.common.runtime import ConfigError


def _counts(obj, prefix: str, *names: str, least: int = 0) -> None:
    for name in names:
        if getattr(obj, name) < least:
            raise ConfigError(f"{prefix}{name} must be >= {least}, got {getattr(obj, name)}")


def _nonempty(obj, prefix: str, *names: str) -> None:
    for name in names:
        if isinstance(getattr(obj, name), list) and not getattr(obj, name):
            raise ConfigError(f"{prefix}{name} must not be empty")


@dataclass
class DenoiseOptions:
    """``builder: denoise``: one clean math source copied once per noise rate."""

    noise: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    """Per source, the fraction of its responses replaced by "." (each in [0, 1]; one source per rate)."""
    n_per_source: int = 200
    """Examples per source."""
    n_val: int = 64
    """Validation examples (clean)."""
    n_test: int = 64
    """Test examples (clean)."""
    modules: list[str] = field(default_factory=lambda: ["arithmetic"])
    """``mathematics_dataset`` modules the problems come from."""
    response: Literal["boxed", "bare"] = "boxed"
    """``boxed``: "The answer is $\\boxed{a}$."; ``bare``: the answer alone."""
    max_answer_chars: int = 0
    """Keep only problems whose answer has at most this many characters (0: any)."""
    n_tune: int = 0
    """Tuning rows, drawn after every other row (``data.heldout: tune``)."""

    def validate(self, prefix: str = "data.options.") -> None:
        _counts(self, prefix, "n_per_source", least=1)
        _counts(self, prefix, "n_val", "n_test", "max_answer_chars", "n_tune")
        _nonempty(self, prefix, "noise", "modules")
        for i, rate in enumerate(self.noise):
            if not 0 <= rate <= 1:  # NaN fails too
                raise ConfigError(
                    f"{prefix}noise[{i}] must be in [0, 1] (a fraction of corrupted responses), got {rate}"
                )
        names = [f"noise{round(rate * 100):03d}" for rate in self.noise]
        if len(set(names)) < len(names):
            raise ConfigError(f"{prefix}noise {self.noise} gives two sources the same name {names}; use distinct rates")


@dataclass
class MathOptions:
    """``builder: math``: one source per ``mathematics_dataset`` module plus dialogue sources."""

    modules: list[str] = field(default_factory=lambda: ["algebra", "arithmetic", "comparison", "measurement",
                                                        "numbers", "polynomials", "probability"])  # fmt: skip
    """Modules, one source each (``math_<module>``)."""
    target: list[str] = field(default_factory=lambda: ["arithmetic", "algebra"])
    """Modules the validation and test problems come from (a subset of ``modules``)."""
    n_per_source: int = 200
    """Examples per source."""
    n_val: int = 64
    """Validation examples."""
    n_test: int = 64
    """Test examples."""
    dialogue_sources: list[str] = field(default_factory=lambda: ["english"])
    """Off-target chatterbot languages, one source each (``chat_<language>``)."""

    def validate(self, prefix: str = "data.options.") -> None:
        _counts(self, prefix, "n_per_source", least=1)
        _counts(self, prefix, "n_val", "n_test")
        _nonempty(self, prefix, "modules", "target")


@dataclass
class MultilingualOptions:
    """``builder: multilingual``: one source per chatterbot language."""

    languages: list[str] = field(default_factory=lambda: ["english", "spanish", "portuguese", "italian", "german",
                                                          "french"])  # fmt: skip
    """Languages, one source each."""
    target: str | list[str] = "spanish"
    """The language of the validation and test sets, or a list of them (several objectives, rows tagged ``target``)."""
    n_per_source: int = 80
    """Examples per source."""
    n_val: int = 48
    """Validation examples (per target language)."""
    n_test: int = 48
    """Test examples (per target language)."""
    n_tune: int = 0
    """Tuning rows per target language, drawn after every other row (``data.heldout: tune``)."""

    def validate(self, prefix: str = "data.options.") -> None:
        _counts(self, prefix, "n_per_source", least=1)
        _counts(self, prefix, "n_val", "n_test", "n_tune")
        _nonempty(self, prefix, "languages", "target")


@dataclass
class ArithmeticOptions:
    """``builder: arithmetic``: GSM8K-style word problems (scalebio/assets/arithmetic.py)."""

    sources: list[str] = field(default_factory=lambda: ["word_add", "word_add_wrong", "arith_add", "word_sub"])
    """Problem sources (word_add, word_add_wrong, arith_add, word_sub)."""
    n_per_source: int = 100
    """Examples per source."""
    n_val: int = 64
    """Validation problems."""
    n_test: int = 256
    """Test problems."""
    dialogue_sources: list[str] = field(default_factory=lambda: ["english"])
    """Off-target chatterbot languages, one source each (``chat_<language>``)."""
    n_tune: int = 0
    """Tuning problems, drawn after every other problem (``data.heldout: tune``)."""

    def validate(self, prefix: str = "data.options.") -> None:
        _counts(self, prefix, "n_per_source", least=1)
        _counts(self, prefix, "n_val", "n_test", "n_tune")


@dataclass
class InstructionsOptions:
    """``builder: instructions``: IFEval-verifiable instructions (scalebio/assets/instructions.py)."""

    n_per_source: int = 100
    """Examples per source."""
    n_val: int = 48
    """Validation prompts."""
    n_test: int = 200
    """Test prompts."""
    n_tune: int = 0
    """Tuning prompts, drawn after every other prompt (``data.heldout: tune``)."""

    def validate(self, prefix: str = "data.options.") -> None:
        _counts(self, prefix, "n_per_source", least=1)
        _counts(self, prefix, "n_val", "n_test", "n_tune")


OPTIONS = {
    "denoise": DenoiseOptions,
    "math": MathOptions,
    "multilingual": MultilingualOptions,
    "arithmetic": ArithmeticOptions,
    "instructions": InstructionsOptions,
}


def check_builder_options(builder: str, options: dict | None, prefix: str = "data.options.") -> None:
    """Raise a ConfigError naming the key if ``options`` are not valid options of ``builder``."""
    if builder not in OPTIONS:
        raise ConfigError(f"data.builder '{builder}' is unknown; choose from {sorted(OPTIONS)}")
    if options is not None and not isinstance(options, dict):
        raise ConfigError(f"{prefix.rstrip('.')} must be a mapping of {OPTIONS[builder].__name__}, got {options!r}")
    from_dict(OPTIONS[builder], options or {}, prefix=prefix)
