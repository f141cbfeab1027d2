"""Benchmark: where a decoding step's time goes, by how many documents decode together.

For each count of documents (the first N of bench/documents.jsonl, as a save
puts them to the model), the engine runs its own beam search with the
original preset and times the steps from `--from` to `--to` (the first ones
include prefills), split into parts by timing each around its calls:

- the output layer (the vocabulary's product) and the other linear layers;
- attention (srcflask's folded attention, when the model folds its beams);
- the rest of the model's forward (norms, activations, residual additions);
- the search (candidates, finished hypotheses) and what is left of a step
  (the cache's reorder, the loop's bookkeeping).

Then, with `--prefill`, each of the first documents' prefill alone (median
of 3). A part is timed on the host: on a GPU, whose work runs behind the
host's back, the split means little, but a whole step's time still holds.
Not a test: run it by hand on an otherwise quiet machine.

    cd services/web
    ../../.venv/bin/python bench/steps.py --documents 1,2,4,8 --prefill
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # generation.py's helpers

PARTS = ("step", "output layer", "other linear layers", "attention", "rest of forward", "search")


class Clock:
    """Seconds spent in named parts, added up between `reset()`s."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def reset(self) -> None:
        self.seconds = {}

    def around(self, name: str, function):
        """`function`, its time added to `name` at every call."""

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

        return timed


def instrument(generator, clock: Clock) -> None:
    """Time `generator`'s linear layers and folded attention (in place, for this process)."""
    import torch
    from transformers import AttentionInterface

    from srcflask.ml import prompt_cache

    head = generator.model.get_output_embeddings()
    for module in generator.model.modules():
        if isinstance(module, torch.nn.Linear):
            name = "output layer" if module is head else "other linear layers"
            module.forward = clock.around(name, module.forward)
    if generator.folded:
        AttentionInterface.register(
            prompt_cache.FOLDED, clock.around("attention", prompt_cache.folded_attention)
        )


class _Enough(Exception):
    """Raised from `on_step` once the timed steps are done."""


def time_steps(generator, settings, prompt_ids, clock: Clock, first: int, last: int):
    """Per part, milliseconds a step over steps `first`..`last` with these documents."""
    from srcflask.ml.decoding import Request

    loop = generator._beam_loop(settings)
    loop._forward = clock.around("forward", loop._forward)
    loop._step = clock.around("search", loop._step)
    state = {"steps": 0}

    def on_step(documents) -> None:
        state["steps"] += 1
        if state["steps"] == first:
            clock.reset()
            state["started"] = time.perf_counter()
        elif state["steps"] == last:
            state["ended"] = time.perf_counter()
            raise _Enough

    with contextlib.suppress(_Enough):
        loop.run([Request(index, ids) for index, ids in enumerate(prompt_ids)], on_step=on_step)
    if "ended" not in state:
        raise SystemExit(
            f"the documents ended after {state['steps']} steps: lower --to (now {last})"
        )
    steps = last - first
    part = {name: seconds / steps * 1000 for name, seconds in clock.seconds.items()}
    whole = (state["ended"] - state["started"]) / steps * 1000
    forward = part.get("forward", 0.0)
    linear = part.get("output layer", 0.0) + part.get("other linear layers", 0.0)
    return {
        "step": whole,
        "output layer": part.get("output layer", 0.0),
        "other linear layers": part.get("other linear layers", 0.0),
        "attention": part.get("attention", 0.0),
        "rest of forward": forward - linear - part.get("attention", 0.0),
        "search": part.get("search", 0.0),
        "rest of step": whole - forward - part.get("search", 0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", default="1,2,4,8", help="counts of documents at once")
    parser.add_argument("--from", dest="first", type=int, default=10, help="first timed step")
    parser.add_argument("--to", dest="last", type=int, default=40, help="last timed step")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--prefill", action="store_true", help="also time each prompt's prefill")
    args = parser.parse_args()
    try:
        counts = [int(count) for count in args.documents.split(",") if count.strip()]
    except ValueError:
        parser.error("--documents: counts separated by commas, such as 1,2,4,8")
    if not counts or min(counts) < 1:
        parser.error("--documents: counts of at least 1")
    if not 1 <= args.first < args.last:
        parser.error("--from must be at least 1 and below --to")

    from generation import load_inputs, production_model

    from srcflask.ml.decoding import Request
    from srcflask.ml.engine import PromptFormat, TextGenerator
    from srcflask.ml.settings import GenerationSettings

    folder, fmt, system, label = production_model()
    generator = TextGenerator(
        folder, label=label, prompt_format=PromptFormat(fmt, system), dtype=args.dtype
    )
    settings = GenerationSettings()  # the original system's beam search
    texts = load_inputs("documents", max(counts))
    if len(texts) < max(counts):
        parser.error(f"--documents: bench/documents.jsonl holds {len(texts)} documents")
    prompt_ids = generator.preprocess(texts, settings).input_ids
    clock = Clock()
    instrument(generator, clock)
    print(
        f"model {label}, {generator.model.dtype}, device {generator.device}; "
        f"steps {args.first} to {args.last}; prompt tokens "
        f"{', '.join(str(len(ids)) for ids in prompt_ids)}\n"
    )
    rows = {
        count: time_steps(generator, settings, prompt_ids[:count], clock, args.first, args.last)
        for count in counts
    }
    names = [*PARTS, "rest of step"]
    print(f"{'ms a step':<22}" + "".join(f"{count:>8} doc" for count in counts))
    for name in names:
        print(f"{name:<22}" + "".join(f"{rows[count][name]:12.1f}" for count in counts))
    if len(counts) > 1:
        low, high = min(counts), max(counts)
        added = (rows[high]["step"] - rows[low]["step"]) / (high - low)
        print(f"\neach document beside the first adds {added:.1f} ms a step")
    if args.prefill:
        loop = generator._beam_loop(settings)
        print()
        for ids in prompt_ids[: max(counts)]:
            seconds = []
            for _ in range(3):
                document = loop._start(Request(0, ids))
                started = time.perf_counter()
                loop._prefill([document])
                seconds.append(time.perf_counter() - started)
            print(f"prefill of {len(ids):>4} tokens: {statistics.median(seconds) * 1000:7.0f} ms")


if __name__ == "__main__":
    main()
