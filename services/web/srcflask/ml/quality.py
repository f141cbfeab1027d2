"""The quality benchmark: does a model version's machine text continue real documents?

Each benchmark document has a human-written true continuation (its next
paragraph). For a loaded generator (a model version in one prompt format)
and a preset, `evaluate()` writes machine text for every document, one at a
time as a save would, and reports:

- continuation rate: the share of machine texts that continue the document
  rather than reply to it (`continuation.judge`), after clean-up, and the
  same share before clean-up (`raw_continuation_rate`);
- bits per character of the true continuation under the model, summed over
  all documents (`TextGenerator.score`): lower is better, and it compares
  across tokenizers;
- clean-ending rate: the share of machine texts that end at a sentence end;
- distinct-4-gram rate: distinct word 4-grams over all of them, per text,
  averaged (1.0: nothing repeated);
- broken characters: U+FFFD characters left in any machine text (must be 0);
- median seconds per document, the mean number of tokens written, and the
  mean and median number of words left after clean-up;
- what an editor would keep (`ml.usefulness`): the share of texts that are
  degenerate (repeat themselves), use markup the document does not, or hold
  contact details it does not (each should be 0), and the share holding
  specifics it does not (numbers, dates, names: reported, not gated).

Documents carry a `split`: `tune` (looked at while choosing presets) or
`held-out` (never looked at while tuning); the summary gives every figure for
all documents and again for the held-out ones alone (`summary["held_out"]`).

Nothing here imports Flask: `bench/quality.py` runs it on model folders and
`flask models evaluate` on registry versions.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import usefulness
from .continuation import BROKEN_CHARACTER, distinct_ngram_rate, ends_cleanly, judge
from .engine import TextGenerator, document_prompt
from .settings import GenerationSettings

REQUIRED_KEYS = ("id", "title", "body", "continuation")
SPLITS = ("tune", "held-out")

# Called as progress(documents_done, documents_total).
DocumentProgress = Callable[[int, int], None]


class BenchmarkError(ValueError):
    """A benchmark file that cannot be used; the message names the line."""


@dataclass(frozen=True)
class BenchDocument:
    """A document a sponsor would write, and the paragraph its author wrote next."""

    id: str
    title: str
    body: str
    continuation: str
    kind: str = ""
    split: str = "tune"

    @property
    def prompt(self) -> str:
        """What the model is given, exactly as for a saved document."""
        return document_prompt(self.title, self.body)


@dataclass
class DocumentOutcome:
    id: str
    kind: str
    text: str
    raw_text: str
    continues: bool
    reasons: list[str]
    raw_continues: bool
    clean_ending: bool
    distinct_4gram_rate: float | None
    broken_characters: int
    finish_reason: str
    prompt_tokens: int
    generated_tokens: int
    seconds: float
    continuation_bits: float
    continuation_chars: int
    split: str = "tune"
    degenerate: bool = False
    loop_rule: str | None = None
    markup: list[str] = field(default_factory=list)
    invented_contacts: list[str] = field(default_factory=list)
    invented_specifics: list[str] = field(default_factory=list)


@dataclass
class QualityReport:
    """The figures for one model version, prompt format and preset, and every document's text."""

    model: str
    prompt_format: str
    preset: str
    settings: dict[str, Any]
    dataset_sha256: str
    summary: dict[str, Any]
    documents: list[DocumentOutcome] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_documents(path: str | Path | Sequence[str | Path]) -> list[BenchDocument]:
    """Read benchmark files: one JSON object a line with id, title, body and continuation
    (and optionally kind and split). Several files (a list, or paths joined by the
    system's path separator) read as one set."""
    if isinstance(path, str) and os.pathsep in path:
        path = path.split(os.pathsep)
    paths = [path] if isinstance(path, str | Path) else list(path)
    documents, seen = [], set()
    for one in paths:
        for number, line in enumerate(Path(one).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise BenchmarkError(f"{one}:{number}: not JSON ({error.msg})") from error
            missing = [key for key in REQUIRED_KEYS if not str(row.get(key, "")).strip()]
            if missing:
                raise BenchmarkError(f"{one}:{number}: missing {', '.join(missing)}")
            if row["id"] in seen:
                raise BenchmarkError(f"{one}:{number}: id {row['id']!r} appears twice")
            split = row.get("split", "tune")
            if split not in SPLITS:
                raise BenchmarkError(f"{one}:{number}: split must be one of {', '.join(SPLITS)}")
            seen.add(row["id"])
            documents.append(
                BenchDocument(
                    id=row["id"],
                    title=row["title"],
                    body=row["body"],
                    continuation=row["continuation"],
                    kind=row.get("kind", ""),
                    split=split,
                )
            )
    if not documents:
        raise BenchmarkError(f"{os.pathsep.join(map(str, paths))} holds no documents")
    return documents


def dataset_sha256(documents: Sequence[BenchDocument]) -> str:
    """A checksum of the documents, so figures are only compared on the same set."""
    digest = hashlib.sha256()
    for document in documents:
        fields = asdict(document)
        if fields["split"] == "tune":  # as before splits existed, so old checksums hold
            del fields["split"]
        digest.update(json.dumps(fields, sort_keys=True).encode())
    return digest.hexdigest()


def evaluate(
    generator: TextGenerator,
    documents: Sequence[BenchDocument],
    settings: GenerationSettings,
    *,
    preset: str = "",
    progress: DocumentProgress | None = None,
    bits: dict[str, tuple[float, int]] | None = None,
) -> QualityReport:
    """Write machine text for every document, one at a time, and measure it.

    `bits` keeps each document's (bits, characters) of its true continuation
    across runs of the same model: they do not depend on the preset.
    """
    outcomes = []
    bits = {} if bits is None else bits
    for done, document in enumerate(documents):
        if progress:
            progress(done, len(documents))
        if document.id not in bits:
            bits[document.id] = generator.score(document.prompt, document.continuation)
        outcomes.append(_run_one(generator, document, settings, bits[document.id]))
    if progress:
        progress(len(documents), len(documents))
    return QualityReport(
        model=generator.label,
        prompt_format=generator.prompt_format.kind,
        preset=preset,
        settings=settings.to_dict(),
        dataset_sha256=dataset_sha256(documents),
        summary=summarise(outcomes),
        documents=outcomes,
    )


def _run_one(
    generator: TextGenerator,
    document: BenchDocument,
    settings: GenerationSettings,
    bits_and_chars: tuple[float, int],
) -> DocumentOutcome:
    started = time.perf_counter()
    [result] = generator.generate([document.prompt], settings)
    seconds = time.perf_counter() - started
    verdict, raw_verdict = judge(result.text), judge(result.raw_text)
    bits, chars = bits_and_chars
    found = usefulness.assess(result.text, document.prompt)
    return DocumentOutcome(
        id=document.id,
        kind=document.kind,
        text=result.text,
        raw_text=result.raw_text,
        continues=verdict.continues,
        reasons=list(verdict.reasons),
        raw_continues=raw_verdict.continues,
        clean_ending=ends_cleanly(result.text),
        distinct_4gram_rate=distinct_ngram_rate(result.text),
        broken_characters=result.text.count(BROKEN_CHARACTER),
        finish_reason=result.finish_reason,
        prompt_tokens=result.prompt_tokens,
        generated_tokens=result.generated_tokens,
        seconds=round(seconds, 3),
        continuation_bits=round(bits, 3),
        continuation_chars=chars,
        split=document.split,
        degenerate=found.degenerate,
        loop_rule=found.loop.rule if found.loop else None,
        markup=[span.text for span in found.markup],
        invented_contacts=[span.text for span in found.contacts],
        invented_specifics=[span.text for span in found.specifics],
    )


def summarise(outcomes: Sequence[DocumentOutcome]) -> dict[str, Any]:
    """The benchmark's figures over all documents, and over the held-out ones alone."""
    summary = _figures(outcomes)
    held_out = [o for o in outcomes if o.split == "held-out"]
    if held_out:
        summary["held_out"] = _figures(held_out)
    return summary


def _figures(outcomes: Sequence[DocumentOutcome]) -> dict[str, Any]:
    count = len(outcomes)
    distinct = [o.distinct_4gram_rate for o in outcomes if o.distinct_4gram_rate is not None]
    chars = sum(o.continuation_chars for o in outcomes)
    return {
        "documents": count,
        "continuation_rate": _share(o.continues for o in outcomes),
        "raw_continuation_rate": _share(o.raw_continues for o in outcomes),
        "bits_per_char": round(sum(o.continuation_bits for o in outcomes) / chars, 4)
        if chars
        else None,
        "clean_ending_rate": _share(o.clean_ending for o in outcomes),
        "distinct_4gram_rate": round(statistics.fmean(distinct), 4) if distinct else None,
        "broken_characters": sum(o.broken_characters for o in outcomes),
        "median_seconds": round(statistics.median(o.seconds for o in outcomes), 3)
        if outcomes
        else None,
        "mean_generated_tokens": round(statistics.fmean(o.generated_tokens for o in outcomes), 1)
        if outcomes
        else None,
        # What survives clean-up: the words an editor gets to read.
        "mean_words": round(statistics.fmean(len(o.text.split()) for o in outcomes), 1)
        if outcomes
        else None,
        "mean_prompt_tokens": round(statistics.fmean(o.prompt_tokens for o in outcomes), 1)
        if outcomes
        else None,
        "median_words": statistics.median(len(o.text.split()) for o in outcomes)
        if outcomes
        else None,
        "degenerate_rate": _share(o.degenerate for o in outcomes),
        "markup_rate": _share(bool(o.markup) for o in outcomes),
        "invented_contact_rate": _share(bool(o.invented_contacts) for o in outcomes),
        "invented_specifics_rate": _share(bool(o.invented_specifics) for o in outcomes),
        "specifics_per_text": round(
            statistics.fmean(len(o.invented_specifics) for o in outcomes), 2
        )
        if outcomes
        else None,
    }


def _share(flags) -> float | None:
    values = list(flags)
    return round(sum(values) / len(values), 4) if values else None


# Columns of the printed table: (heading, summary key, format).
TABLE_COLUMNS = (
    ("continues", "continuation_rate", "{:.0%}"),
    ("degenerate", "degenerate_rate", "{:.0%}"),
    ("markup", "markup_rate", "{:.0%}"),
    ("invented contacts", "invented_contact_rate", "{:.0%}"),
    ("invented specifics", "invented_specifics_rate", "{:.0%}"),
    ("before clean-up", "raw_continuation_rate", "{:.0%}"),
    ("bits/char", "bits_per_char", "{:.3f}"),
    ("clean endings", "clean_ending_rate", "{:.0%}"),
    ("distinct 4-grams", "distinct_4gram_rate", "{:.3f}"),
    ("broken chars", "broken_characters", "{}"),
    ("median s/doc", "median_seconds", "{:.1f}"),
    ("tokens/doc", "mean_generated_tokens", "{:.0f}"),
    ("words kept", "mean_words", "{:.0f}"),
    ("median words", "median_words", "{:.0f}"),
)


def format_table(reports: Sequence[QualityReport]) -> str:
    """A Markdown table of the reports' figures, one row per run."""
    headings = ["model", "format", "preset", "max new", *(c[0] for c in TABLE_COLUMNS)]
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    for report in reports:
        cells = [
            report.model,
            report.prompt_format,
            report.preset or "-",
            str(report.settings.get("max_new_tokens", "")),
        ]
        for _, key, fmt in TABLE_COLUMNS:
            value = report.summary.get(key)
            cells.append("-" if value is None else fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
