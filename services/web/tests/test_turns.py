"""Turns at one model: a short call runs between two steps of a batch, not after it."""

from __future__ import annotations

import threading

from srcflask.ml.engine import TextGenerator
from srcflask.ml.settings import GenerationSettings
from srcflask.ml.turns import ModelTurns

WAIT = 10  # seconds; every wait here ends in milliseconds unless something is broken
STEPS_AT_MOST = 2_000


def run_batch(turns: ModelTurns, log: list[str], started: threading.Event, stop: threading.Event):
    """A batch that steps until told to stop: it ends early only if short calls got a turn."""
    with turns.batch():
        for step in range(STEPS_AT_MOST):
            log.append(f"step {step}")
            if step == 2:
                started.set()
            turns.give_way()
            if stop.wait(0.002):
                break
        log.append("batch done")


def in_thread(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def test_a_short_call_runs_between_two_steps_of_a_running_batch():
    turns, log, started, stop = ModelTurns(), [], threading.Event(), threading.Event()
    batch = in_thread(run_batch, turns, log, started, stop)
    assert started.wait(WAIT)

    with turns.short_call() as paused_a_batch:
        log.append("short call")
    stop.set()
    batch.join(WAIT)

    assert paused_a_batch is True
    where = log.index("short call")
    # It ran while the batch was parked between two steps, and the batch then finished:
    # it had been stepping until told to stop, so the call did not wait for its end.
    assert log[where - 1].startswith("step ") and log[where + 1 :] == ["batch done"]
    assert len(log) < STEPS_AT_MOST


def test_every_waiting_short_call_runs_before_the_batch_resumes():
    turns, log, started, stop = ModelTurns(), [], threading.Event(), threading.Event()
    batch = in_thread(run_batch, turns, log, started, stop)
    assert started.wait(WAIT)
    inside, release = threading.Event(), threading.Event()

    def first():
        with turns.short_call():
            log.append("first")
            inside.set()
            release.wait(WAIT)

    def second():
        with turns.short_call():
            log.append("second")

    one = in_thread(first)
    assert inside.wait(WAIT)
    two = in_thread(second)
    while turns._waiting == 0:  # the second is queued behind the first
        pass
    release.set()
    one.join(WAIT)
    two.join(WAIT)
    stop.set()
    batch.join(WAIT)

    where = log.index("first")
    assert log[where : where + 2] == ["first", "second"]
    assert log[-1] == "batch done"


def test_a_short_call_on_an_idle_model_holds_it_and_a_batch_waits_for_it():
    turns, log = ModelTurns(), []
    release = threading.Event()

    def batch():
        with turns.batch():
            log.append("batch")

    with turns.short_call() as paused_a_batch:
        waiting = in_thread(batch)
        waiting.join(0.05)
        assert waiting.is_alive()  # it waits for the short call
        log.append("short call")
        release.set()
    waiting.join(WAIT)

    assert paused_a_batch is False
    assert log == ["short call", "batch"]


def test_reserved_is_refused_while_a_batch_runs_and_lets_its_holder_start_one():
    turns, started, stop = ModelTurns(), threading.Event(), threading.Event()
    batch = in_thread(run_batch, turns, [], started, stop)
    assert started.wait(WAIT)
    with turns.reserved() as free:
        assert free is False
    stop.set()
    batch.join(WAIT)

    with turns.reserved() as free:
        assert free is True
        with turns.batch():  # re-entrant for the thread holding the reservation
            pass


def test_a_generation_paused_for_a_short_call_writes_the_same_text(tiny_models):
    generator = TextGenerator(tiny_models["gpt2"], label="tiny-gpt2:1")
    settings = GenerationSettings(strategy="greedy", max_new_tokens=40, no_repeat_ngram_size=0)
    prompts = ["Quarterly report on sales in the northern region", "Dear customer"]
    alone = generator.generate(prompts, settings)
    order, results, started = [], {}, threading.Event()

    def progress(done: int, total: int) -> None:
        if done == 3:
            started.set()
            # Hold this step until the short call waits, so it is sure to run mid-batch.
            for _ in range(WAIT * 1000):
                if generator._turns._waiting:
                    break
                threading.Event().wait(0.001)

    def long_batch():
        results["batch"] = generator.generate(prompts, settings, progress)
        order.append("batch")

    batch = in_thread(long_batch)
    assert started.wait(WAIT)
    [short] = generator.generate(["Hi"], settings, short=True)
    order.append("short")
    batch.join(WAIT)

    assert order == ["short", "batch"]
    assert short.generated_tokens > 0
    assert [r.token_ids for r in results["batch"]] == [r.token_ids for r in alone]
