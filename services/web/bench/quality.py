"""Quality benchmark: does the machine text continue the document? (srcflask.ml.quality)

For every model, prompt format and max_new_tokens asked for, writes machine
text for each document of bench/documents.jsonl (one at a time, as a save
would), then prints one table row per run and writes every figure and every
text to a JSON file. Not a test: run it by hand.

    cd services/web
    ../../.venv/bin/python bench/quality.py                       # the production model
    ../../.venv/bin/python bench/quality.py --model smollm2-135m-instruct \\
        --model gemma-3-270m --format all --max-new-tokens 60 --max-new-tokens 100

--model takes a registry name (NAME, NAME:VERSION or NAME:ALIAS) or a model
folder; --format takes raw, chat, continue, or all (every format the model
can use); without it each version uses its own format.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from srcflask.ml.engine import PROMPT_FORMATS, PromptFormat, TextGenerator
from srcflask.ml.quality import evaluate, format_table, load_documents
from srcflask.ml.settings import DEFAULT_PRESET, PRESETS

HERE = Path(__file__).resolve().parent
DOCUMENTS = HERE / "documents.jsonl"


@dataclass
class ModelChoice:
    folder: Path
    label: str
    prompt_format: str
    system_prompt: str | None


def resolve(spec: str | None) -> ModelChoice:
    """A model folder as it is, or a registry version (the production one without a spec)."""
    if spec and Path(spec).is_dir():
        return ModelChoice(Path(spec), Path(spec).name, "raw", None)
    from srcflask import create_app
    from srcflask.registry import service as registry

    with create_app().app_context():
        version = registry.find_version(spec) if spec else registry.production_version()
        if version is None:
            raise SystemExit("No production model: run `flask --app srcflask models pull-default`")
        return ModelChoice(
            registry.artifact_path(version),
            version.label,
            version.prompt_format,
            version.system_prompt,
        )


def formats_for(choice: ModelChoice, asked: list[str], generator_has_template: bool) -> list[str]:
    if not asked:
        return [choice.prompt_format]
    if "all" in asked:
        return [f for f in PROMPT_FORMATS if f == "raw" or generator_has_template]
    return asked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[], help="repeat for several")
    parser.add_argument("--format", action="append", default=[], choices=[*PROMPT_FORMATS, "all"])
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(PRESETS))
    parser.add_argument("--max-new-tokens", type=int, action="append", default=[])
    parser.add_argument("--documents", type=Path, default=DOCUMENTS)
    parser.add_argument("--limit", type=int, help="only the first N documents")
    parser.add_argument("--out", type=Path, help="JSON file (default: bench/results/…)")
    parser.add_argument("--show", type=int, default=3, help="print N machine texts per run")
    args = parser.parse_args(argv)

    documents = load_documents(args.documents)[: args.limit]
    preset = PRESETS[args.preset]
    lengths = args.max_new_tokens or [preset.max_new_tokens]
    reports = []
    for spec in args.model or [None]:
        choice = resolve(spec)
        base = TextGenerator(choice.folder, label=choice.label)
        for fmt in formats_for(choice, args.format, bool(base.tokenizer.chat_template)):
            generator = base.with_prompt_format(PromptFormat(fmt, choice.system_prompt))
            for length in lengths:
                settings = preset.replace(max_new_tokens=length)
                print(f"== {choice.label}, {fmt} format, {args.preset} ({length} new tokens)")
                report = evaluate(
                    generator,
                    documents,
                    settings,
                    preset=args.preset,
                    progress=lambda done, total: print(f"   {done}/{total}", end="\r"),
                )
                reports.append(report)
                for outcome in report.documents[: args.show]:
                    print(f"   [{outcome.id}] {outcome.text[:300]!r}")
                print(format_table([report]).splitlines()[-1])

    print()
    print(format_table(reports))
    out = args.out or HERE / "results" / f"quality-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([r.to_dict() for r in reports], indent=2, ensure_ascii=False))
    print(f"\nEvery figure and text: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
