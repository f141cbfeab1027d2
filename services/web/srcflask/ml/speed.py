"""How fast a loaded model writes, measured on demand and read with the machine's load.

A figure taken while the machine is busy says more about the machine than
about the model, so a measurement notes the load average and whether
documents were being written, and says whether it is fit to be kept.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .engine import TextGenerator
from .settings import GenerationSettings

SPEED_PROMPT = "The history of the bicycle begins in the early nineteenth century, when"
SPEED_TOKENS = 32
SPEED_RUNS = 5
# A machine whose one-minute load average is above this share of its CPUs is busy.
BUSY_LOAD_PER_CPU = 0.5

GREEDY = GenerationSettings(strategy="greedy", max_new_tokens=SPEED_TOKENS, no_repeat_ngram_size=0)
BEAM = GenerationSettings(max_new_tokens=SPEED_TOKENS)

# Called as report(runs_done, runs_in_all).
SpeedReport = Callable[[int, int], None]


def machine_load() -> tuple[float | None, int]:
    """The one-minute load average (None where the system has none) and the CPU count."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = None
    return load, os.cpu_count() or 1


def measure_speed(
    generator: TextGenerator,
    runs: int = SPEED_RUNS,
    report: SpeedReport | None = None,
) -> dict[str, Any]:
    """Time `runs` greedy and `runs` beam-search generations of a fixed prompt.

    Each run is a short call (`ml.turns`): a batch of documents being written
    pauses for it, so the model is timed alone, but the machine may still be
    busy; `busy` says so, and why.
    """
    if runs < 1:
        raise ValueError("runs must be at least 1")
    load, cpus = machine_load()
    with generator.reserved() as free:
        documents_running = not free
    started = time.perf_counter()
    greedy, beam = [], []
    for run in range(runs):
        if report is not None:
            report(run * 2, runs * 2)
        [result] = generator.generate([SPEED_PROMPT], GREEDY, short=True)
        greedy.append(result.tokens_per_second)
        if report is not None:
            report(run * 2 + 1, runs * 2)
        [result] = generator.generate([SPEED_PROMPT], BEAM, short=True)
        beam.append(result.tokens_per_second)
    if report is not None:
        report(runs * 2, runs * 2)
    reasons = []
    if load is not None and load > BUSY_LOAD_PER_CPU * cpus:
        reasons.append(f"load average {load:.2f} on {cpus} CPUs")
    if documents_running:
        reasons.append("documents were being written (paused for each run)")
    return {
        "greedy_tokens_per_second": round(statistics.median(greedy), 2),
        "beam_tokens_per_second": round(statistics.median(beam), 2),
        "runs": runs,
        "spread": {
            "greedy": [round(min(greedy), 2), round(max(greedy), 2)],
            "beam": [round(min(beam), 2), round(max(beam), 2)],
        },
        "tokens": SPEED_TOKENS,
        "seconds": round(time.perf_counter() - started, 2),
        "load_average": None if load is None else round(load, 2),
        "cpus": cpus,
        "documents_running": documents_running,
        "busy": bool(reasons),
        "busy_because": "; ".join(reasons),
        "measured_on": f"{generator.device}, {platform.machine()}, {_threads()} threads",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _threads() -> int:
    import torch

    return torch.get_num_threads()
