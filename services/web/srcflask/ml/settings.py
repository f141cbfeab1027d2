"""Generation settings: one validated value object, with named presets.

The settings' own defaults are the original system's beam search (5 beams, no
repeated 4-grams, early stopping, DEFAULT_MAX_NEW_TOKENS new tokens); the
default preset, `editor`, is that search stopping where an editor would.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

STRATEGIES = ("beam", "greedy", "sample")
STOP_AT = ("length", "paragraph")
# A paragraph: the true next paragraphs of the quality benchmark's documents run to a median
# of about 107 tokens, and at 100 tokens 97% of the default model's texts still end at a
# sentence end after clean-up, with 60 words kept against 32 at 60 tokens (docs/models.md).
DEFAULT_MAX_NEW_TOKENS = 100


class SettingsError(ValueError):
    """A generation setting is out of its allowed range; the message names it."""

    def __init__(self, setting: str, message: str):
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.message = message


@dataclass(frozen=True)
class GenerationSettings:
    strategy: str = "beam"
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    num_beams: int = 5
    no_repeat_ngram_size: int = 4
    early_stopping: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 50
    seed: int | None = None
    repetition_penalty: float = 1.0
    # Samplers besides top-k and top-p (ml.sampling): 0 and 1 turn them off.
    min_p: float = 0.0
    typical_p: float = 1.0
    # Sample this many candidates per document and keep the best (ml.sampling).
    best_of: int = 1
    # Where the text ends (ml.stopping): at the token cap, or where an editor would cut it.
    stop_at: str = "length"
    # Give no probability to markup and contact details the document does not use.
    ban_markup: bool = False

    # (lowest, highest) allowed for each numeric setting, both inclusive.
    RANGES: ClassVar[dict[str, tuple[float, float]]] = {
        "max_new_tokens": (1, 1024),
        "num_beams": (1, 16),
        "no_repeat_ngram_size": (0, 16),
        "temperature": (0.01, 5.0),
        "top_p": (0.01, 1.0),
        "top_k": (0, 1000),
        "seed": (0, 2**32 - 1),
        "repetition_penalty": (1.0, 3.0),
        "min_p": (0.0, 1.0),
        "typical_p": (0.01, 1.0),
        "best_of": (1, 8),
    }

    WHOLE_NUMBERS: ClassVar[frozenset[str]] = frozenset(
        {"max_new_tokens", "num_beams", "no_repeat_ngram_size", "top_k", "seed", "best_of"}
    )

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise SettingsError("strategy", f"must be one of {', '.join(STRATEGIES)}")
        for name in ("early_stopping", "ban_markup"):
            if not isinstance(getattr(self, name), bool):
                raise SettingsError(name, "must be true or false")
        if self.stop_at not in STOP_AT:
            raise SettingsError("stop_at", f"must be one of {', '.join(STOP_AT)}")
        for name, (low, high) in self.RANGES.items():
            value = getattr(self, name)
            if value is None and name == "seed":
                continue
            whole = name in self.WHOLE_NUMBERS
            _check_number(name, value, low, high, integer=whole)
            # Frozen: normalise 60.0 to 60 (and 1 to 1.0) the only way a frozen dataclass allows.
            object.__setattr__(self, name, int(value) if whole else float(value))
        if self.strategy == "beam" and self.num_beams < 2:
            raise SettingsError("num_beams", "must be between 2 and 16 for beam search")
        if self.best_of > 1 and self.strategy != "sample":
            raise SettingsError("best_of", "needs the sample strategy (candidates must differ)")

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> GenerationSettings:
        """Build settings from a mapping (JSON, a form); unknown names are refused."""
        values = dict(values or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SettingsError(
                unknown[0], f"is not a generation setting (known: {', '.join(sorted(known))})"
            )
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> GenerationSettings:
        return dataclasses.replace(self, **changes)

    def generate_kwargs(self) -> dict[str, Any]:
        """The keyword arguments for `transformers` `generate()`."""
        common = {
            "max_new_tokens": self.max_new_tokens,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.strategy == "beam":
            return common | {
                "do_sample": False,
                "num_beams": self.num_beams,
                "early_stopping": self.early_stopping,
            }
        if self.strategy == "greedy":
            return common | {"do_sample": False, "num_beams": 1}
        return common | {
            "do_sample": True,
            "num_beams": 1,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "top_k": self.top_k,
        }

    @property
    def deterministic(self) -> bool:
        return self.strategy != "sample"


def _check_number(name: str, value: Any, low: float, high: float, *, integer: bool) -> None:
    kind = "a whole number" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SettingsError(name, f"must be {kind} between {_fmt(low)} and {_fmt(high)}")
    if integer and not float(value).is_integer():
        raise SettingsError(name, f"must be {kind} between {_fmt(low)} and {_fmt(high)}")
    if math.isnan(value) or not low <= value <= high:
        raise SettingsError(name, f"must be between {_fmt(low)} and {_fmt(high)}, got {value}")


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


# The original system's settings (the class's defaults): beam search to the token cap.
ORIGINAL_PRESET = "original"
# What editors keep (docs/machine-text.md, from bench/decoding_study.py): the same beam
# search, ending at the end of the paragraph in progress or where the text starts to loop,
# never writing markup or contact details the document does not use. The token cap is a
# ceiling now, not the length.
DEFAULT_PRESET = "editor"
PRESETS: dict[str, GenerationSettings] = {
    DEFAULT_PRESET: GenerationSettings(stop_at="paragraph", ban_markup=True, max_new_tokens=120),
    ORIGINAL_PRESET: GenerationSettings(),
    "greedy": GenerationSettings(strategy="greedy", no_repeat_ngram_size=4),
    "creative": GenerationSettings(strategy="sample", temperature=0.8, top_p=0.95, top_k=50),
}


def preset_named(settings: GenerationSettings) -> str | None:
    """The name of the preset whose settings these are; None for settings of one's own."""
    return next((name for name, preset in PRESETS.items() if preset == settings), None)


# "Write another": a search writes the same text for the same document every time, so the
# text written in place of a rejected one is sampled instead, the best of four candidates at
# temperature 0.7; on the decoding study it met every target the beam search met, at about
# twice the time (docs/machine-text.md). Where the text stops and what it may not write stay
# the production settings'.
ANOTHER_TEXT = {"strategy": "sample", "temperature": 0.7, "top_p": 0.9, "top_k": 0, "best_of": 4}


def another_text_settings(settings: GenerationSettings) -> GenerationSettings:
    """The settings that write a different text for a document than `settings` wrote."""
    if settings.strategy == "sample":
        return replace(settings, seed=None)  # a new seed per text: a new text
    return replace(settings, seed=None, **ANOTHER_TEXT)


# Each preset as people choose it (the admins' "Try a prompt"), in the order offered.
PRESET_LABELS: dict[str, str] = {
    DEFAULT_PRESET: "Beam search to the paragraph's end (as machine text)",
    "greedy": "Greedy (fastest)",
    ORIGINAL_PRESET: f"Beam search, {PRESETS[ORIGINAL_PRESET].num_beams} beams, to the token cap",
    "creative": "Sampling (varied)",
}
