"""Model: how long saves wait for machine text under load, from three measured costs.

The engine under `bench/latency.py`'s traffic, as a simulation with three costs:

- a decoding step of n documents takes `step + per_document * n` seconds
  (fit them to `bench/steps.py`'s step times);
- a document joining takes `per_prompt_token` seconds a token of its prompt,
  during which the running documents wait (the prefill, and the longer
  attention a long prompt costs its own steps: fit it to `latency.py`'s solo
  times against the prompts' lengths);
- at most `--places` documents run at once (GENERATION_BATCH_SIZE); a save joins
  at the next step boundary, or waits in line.

As `bench/latency.py` does, it times each document alone, measures capacity
with 12 documents saved at once, then sends Poisson saves at `--load` of that
capacity, for `--hours` of simulated time (so its medians are steady), and
reports the median and 95th percentile wait over the median solo time. With
`--what-if` it does so for the costs as given, with a step that does not grow
with the documents in it, with joining that costs nothing, with both, and with
prompts read 128 tokens a step beside the running documents (one pass over
the weights for both): what each part of the engine's cost does to the wait.

The defaults are the default model on an AMD EPYC Zen 5 with 2 cores (docs/performance.md,
"On an AMD EPYC (Zen 5), 2 cores"), and the first 10 documents of
bench/documents.jsonl: their prompt tokens and decoding steps. Not a test: a
way to ask what a faster engine would buy before building it.

    cd services/web
    ../../.venv/bin/python bench/queue_model.py --what-if
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass, replace

from latency import BURST, Save, percentile, poisson_saves  # the bench it models

# The first 10 documents of bench/documents.jsonl with gemma-3-270m:1 and the original
# preset: prompt tokens, and steps (new tokens) until the search ends.
DOCUMENTS = ((396, 100), (281, 69), (352, 38), (453, 100), (555, 100),
             (927, 100), (639, 100), (101, 100), (838, 100), (212, 100))  # fmt: skip


@dataclass(frozen=True)
class Costs:
    step: float  # seconds a decoding step takes whatever its documents
    per_document: float  # seconds each document adds to a step
    per_prompt_token: float  # seconds a joining document costs a token of its prompt
    places: int  # documents decoding at once, at most
    # Prompt tokens read a step beside the running documents, in the same pass over the
    # weights (the step's fixed cost paid once for both); 0: each joining prompt whole,
    # between two steps, as the engine does.
    chunk: int = 0


def waits(costs: Costs, saves: list[Save]) -> list[float]:
    """Each save's wait from its moment to its last step; `saves` in order of their moments."""
    now, due = 0.0, 0
    line: list[int] = []  # saves made, waiting for a place
    running: list[list[int]] = []  # [save, steps left]
    reading: list[list[int]] = []  # [save, prompt tokens left], with `chunk`
    finished: dict[int, float] = {}
    while due < len(saves) or line or running or reading:
        while due < len(saves) and saves[due].at <= now:
            line.append(due)
            due += 1
        if not running and not line and not reading:
            now = saves[due].at  # idle until the next save
            continue
        if running:
            now += costs.step + costs.per_document * len(running)
            for document in running:
                document[1] -= 1
        places = costs.places - len(running) - len(reading)
        joining, line = line[:places], line[places:]
        if joining and not costs.chunk:  # read between two steps: the running ones wait
            now += costs.per_prompt_token * sum(DOCUMENTS[saves[s].document][0] for s in joining)
            running += [[s, DOCUMENTS[saves[s].document][1] - 1] for s in joining]
        elif costs.chunk:
            reading += [[s, DOCUMENTS[saves[s].document][0]] for s in joining]
            budget = costs.chunk
            for prompt in reading:
                taken = min(budget, prompt[1])
                prompt[1] -= taken
                budget -= taken
            if reading and running:
                now -= costs.step  # the step's pass was the prompts' pass
            now += costs.per_prompt_token * (costs.chunk - budget)
            running += [[s, DOCUMENTS[saves[s].document][1] - 1] for s, left in reading if not left]
            reading = [prompt for prompt in reading if prompt[1]]
        for save, left in running:
            if left <= 0:
                finished[save] = now
        running = [document for document in running if document[1] > 0]
    return [finished[number] - save.at for number, save in enumerate(saves)]


def under_load(costs: Costs, load: float, hours: float, seed: int) -> dict[str, float]:
    solo = [waits(costs, [Save(0.0, document)])[0] for document in range(len(DOCUMENTS))]
    burst = [Save(0.0, number % len(DOCUMENTS)) for number in range(BURST)]
    capacity = BURST / max(waits(costs, burst))  # all saved at 0: the last one's wait
    rate = load * capacity
    saves = poisson_saves(rate, hours * 60, seed, len(DOCUMENTS), most=10**7)
    got = waits(costs, saves)
    ratios = sorted(wait / solo[save.document] for wait, save in zip(got, saves, strict=True))
    solo_median = statistics.median(solo)
    got.sort()
    return {
        "solo": solo_median,
        "capacity": capacity * 60,
        "rate": rate * 60,
        "median": statistics.median(got) / solo_median,
        "p95": percentile(got, 0.95) / solo_median,
        "each median": statistics.median(ratios),
        "each p95": percentile(ratios, 0.95),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--step-ms", type=float, default=29.0, help="a step's fixed cost")
    parser.add_argument("--per-document-ms", type=float, default=12.5)
    parser.add_argument("--per-prompt-token-ms", type=float, default=1.3)
    parser.add_argument("--places", type=int, default=8, help="GENERATION_BATCH_SIZE")
    parser.add_argument("--load", type=float, default=0.7, help="share of the capacity")
    parser.add_argument("--hours", type=float, default=10.0, help="simulated traffic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--what-if", action="store_true", help="also flat steps, free joining")
    args = parser.parse_args()
    for name in ("step_ms", "per_document_ms", "per_prompt_token_ms"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} cannot be negative")
    if args.step_ms + args.per_document_ms <= 0:
        parser.error("a step must take some time")
    if args.places < 1 or not 0 < args.load < 1 or args.hours <= 0:
        parser.error("--places must be at least 1, --load between 0 and 1, --hours above 0")

    costs = Costs(
        args.step_ms / 1000, args.per_document_ms / 1000, args.per_prompt_token_ms / 1000,
        args.places,
    )  # fmt: skip
    cases = {"as given": costs}
    if args.what_if:
        cases["steps flat (no cost per document)"] = replace(costs, per_document=0.0)
        cases["joining free (no prompt cost)"] = replace(costs, per_prompt_token=0.0)
        cases["both"] = replace(costs, per_document=0.0, per_prompt_token=0.0)
        cases["prompts read 128 tokens a step"] = replace(costs, chunk=128)
    print(
        f"{args.load:.0%} of capacity, {args.places} places, {args.hours:g} h of Poisson saves "
        f"over the first {len(DOCUMENTS)} documents\n"
    )
    print(
        f"{'costs':<36} {'solo':>6} {'capacity':>9} {'saves':>7} {'median':>7} {'p95':>6}"
        f" {'each: median':>13} {'p95':>6}"
    )
    for name, case in cases.items():
        got = under_load(case, args.load, args.hours, args.seed)
        print(
            f"{name:<36} {got['solo']:5.2f}s {got['capacity']:7.1f}/m {got['rate']:5.1f}/m"
            f" {got['median']:6.2f}x {got['p95']:5.2f}x {got['each median']:12.2f}x"
            f" {got['each p95']:5.2f}x"
        )


if __name__ == "__main__":
    main()
