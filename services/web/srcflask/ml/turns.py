"""Turns at one loaded model: a long batch gives way to a short call between two steps.

A batch of documents holds the model for as long as it takes to write them
(tens of seconds on a CPU). An admin trying a prompt, or measuring the model's
speed, should not wait for all of it: between two decoding steps the batch
calls `give_way()`, which parks it while such a call runs, then carries on
where it was. On an idle model the short call simply takes it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

# A safety net for the waits below: every change of state notifies, so a wait ends
# long before this unless a thread died holding a turn.
_RECHECK_SECONDS = 1.0


class ModelTurns:
    """Who may run the model now: one batch at a time, and short calls in between.

    - `batch()`: hold the model for a whole batch; waits for the model to be free.
    - `reserved()`: hold it only if it is free now (yields True or False).
    - `give_way()`: called by the batch holding the model between two decoding
      steps; returns at once unless a short call is waiting, else parks until
      every waiting short call has run.
    - `short_call()`: run now, on a free model or in a parked batch's place; yields
      True in the second case.

    Re-entrant for batches: a thread holding `reserved()` may start a `batch()`.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()  # held by the batch (or a short call) using the model
        self._changed = threading.Condition()
        self._waiting = 0  # short calls waiting for a turn
        self._guest = False  # a short call is running in a parked batch's place
        self._parked = False  # the batch holding the lock is waiting in give_way()

    @contextmanager
    def batch(self) -> Iterator[None]:
        with self._lock:
            yield
        self._notify()

    @contextmanager
    def reserved(self) -> Iterator[bool]:
        free = self._lock.acquire(blocking=False)
        try:
            yield free
        finally:
            if free:
                self._lock.release()
                self._notify()

    def give_way(self) -> None:
        if not self._waiting:  # read without the condition: a stale 0 costs one step's wait
            return
        with self._changed:
            self._parked = True
            self._changed.notify_all()
            while self._waiting or self._guest:
                self._changed.wait(_RECHECK_SECONDS)
            self._parked = False

    @contextmanager
    def short_call(self) -> Iterator[bool]:
        """Run now; yields True when a batch was parked for it."""
        with self._changed:
            self._waiting += 1
            try:
                while True:
                    # Tried under the condition, so a batch ending or parking between
                    # this check and the wait still wakes us.
                    if self._lock.acquire(blocking=False):
                        owns_lock = True
                        break
                    if self._parked and not self._guest:
                        self._guest = True
                        owns_lock = False
                        break
                    self._changed.wait(_RECHECK_SECONDS)
            finally:
                self._waiting -= 1
        try:
            yield not owns_lock
        finally:
            if owns_lock:
                self._lock.release()
            else:
                with self._changed:
                    self._guest = False
            self._notify()

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()
