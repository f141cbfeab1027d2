"""Benchmark: three ways of writing machine text for the same 16 documents, side by side.

1. original: what the replaced system did, loading the model and tokenizer
   from disk for every document and generating for one document at a time;
2. plain:    `transformers` `generate()` with the model loaded once, still
   one document at a time;
3. engine:   srcflask's TextGenerator, all documents in one batch.

All three use the same model, the same prompts (formatted the same way, as
the model version says) and the default preset (beam search, 5 beams, no
repeated 4-grams, 60 new tokens). Each plan runs REPEATS times in turn
(1, 2, 3, 1, 2, 3, ...) so a noisy neighbour hurts all of them alike; the
figures are medians. Not a test: run it by hand.

    cd services/web
    ../../.venv/bin/python bench/generation.py [--repeats 3] [--model FOLDER]

Without --model it uses the production model of the app's registry.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

# The team's 16 document-like benchmark prompts, one a line: every generation
# benchmark uses them, so figures compare across time.
PROMPTS_FILE = Path(__file__).resolve().parent / "prompts.txt"


def load_prompts() -> list[str]:
    return [line.strip() for line in PROMPTS_FILE.read_text().splitlines() if line.strip()]


def production_model() -> tuple[Path, str, str | None, str]:
    """The production model's folder, prompt format, system line and label."""
    from srcflask import create_app
    from srcflask.registry import service as registry

    app = create_app()
    with app.app_context():
        version = registry.production_version()
        if version is None:
            raise SystemExit("No production model: run `flask --app srcflask models pull-default`")
        return (
            registry.artifact_path(version),
            version.prompt_format,
            version.system_prompt,
            version.label,
        )


def count_new_tokens(rows, pad_id: int, eos_ids: set[int]) -> int:
    total = 0
    for row in rows:
        for token in row:
            if token == pad_id or token in eos_ids:
                break
            total += 1
    return total


def generate_alone(model, tokenizer, ids: list[int], kwargs: dict) -> int:
    """Plain `generate()` for one prompt; return how many tokens it wrote."""
    import torch

    with torch.inference_mode():
        out = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            **kwargs,
        )
    return count_new_tokens(
        out[:, len(ids) :].tolist(), tokenizer.pad_token_id, {tokenizer.eos_token_id}
    )


def plan_original(folder: Path, prompt_ids: list[list[int]], kwargs: dict) -> int:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokens = 0
    for ids in prompt_ids:
        # What the replaced system did on every save: load everything again.
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder).eval()
        tokens += generate_alone(model, tokenizer, ids, kwargs)
    return tokens


def plan_plain(model, tokenizer, prompt_ids: list[list[int]], kwargs: dict) -> int:
    return sum(generate_alone(model, tokenizer, ids, kwargs) for ids in prompt_ids)


def plan_engine(generator, prompts: list[str], settings) -> int:
    return sum(r.generated_tokens for r in generator.generate(prompts, settings))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", type=Path, help="a model folder (default: production)")
    parser.add_argument("--prompt-format", choices=["raw", "chat"], default=None)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from srcflask.ml.engine import PromptFormat, TextGenerator
    from srcflask.ml.settings import GenerationSettings

    hf_logging.disable_progress_bar()
    if args.model:
        folder, fmt, system, label = args.model, args.prompt_format or "raw", None, args.model.name
    else:
        folder, fmt, system, label = production_model()
        fmt = args.prompt_format or fmt
    prompts = load_prompts()
    settings = GenerationSettings()  # the original system's beam search
    generator = TextGenerator(folder, label=label, prompt_format=PromptFormat(fmt, system))
    prompt_ids = generator.preprocess(prompts, settings).input_ids
    kwargs = settings.generate_kwargs()
    plain_model = AutoModelForCausalLM.from_pretrained(folder).eval()

    print(f"model {label} ({fmt} prompts), {len(prompts)} prompts, preset {kwargs}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"device {generator.device}, {args.repeats} repeats\n"
    )
    plans = {
        "1 original (load per document, one at a time)": lambda: plan_original(
            folder, prompt_ids, kwargs
        ),
        "2 plain generate (loaded once, one at a time)": lambda: plan_plain(
            plain_model, generator.tokenizer, prompt_ids, kwargs
        ),
        "3 srcflask engine (loaded once, one batch)": lambda: plan_engine(
            generator, prompts, settings
        ),
    }
    seconds: dict[str, list[float]] = {name: [] for name in plans}
    tokens: dict[str, int] = {}
    for repeat in range(args.repeats):
        for name, run in plans.items():
            started = time.perf_counter()
            tokens[name] = run()
            seconds[name].append(time.perf_counter() - started)
            print(f"  repeat {repeat + 1}: {name:<48} {seconds[name][-1]:7.1f} s", flush=True)

    print(f"\n{'plan':<48} {'median s':>9} {'docs/min':>9} {'tokens/s':>9}")
    medians = {}
    for name in plans:
        median = statistics.median(seconds[name])
        medians[name] = median
        print(
            f"{name:<48} {median:9.1f} {len(prompts) / median * 60:9.1f} "
            f"{tokens[name] / median:9.1f}"
        )
    one, two, three = (medians[name] for name in plans)
    print(
        f"\nengine vs original (3/1): {one / three:.2f}x   "
        f"engine vs plain generate (3/2): {two / three:.2f}x"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "model": label,
                    "prompt_format": fmt,
                    "repeats": args.repeats,
                    "seconds": seconds,
                    "tokens": tokens,
                    "ratio_3_over_1": one / three,
                    "ratio_3_over_2": two / three,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
