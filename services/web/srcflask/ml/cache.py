"""Loaded generators kept for reuse, so a model is loaded once per process."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

from .engine import PromptFormat, TextGenerator


class GeneratorCache:
    """The most recently used generators, at most `max_models` of them, loaded once each."""

    def __init__(self, max_models: int = 2, **engine_options: Any):
        self.max_models = max_models
        self.engine_options = engine_options
        self._generators: OrderedDict[Any, TextGenerator] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        key: Any,
        folder: Path,
        *,
        label: str,
        prompt_format: PromptFormat,
        on_load: Callable[[], AbstractContextManager] | None = None,
    ) -> TextGenerator:
        """Return the generator for `key`, loading it from `folder` the first time.

        `on_load()` gives a context that the loading runs in (to record it), when it loads.
        """
        with self._lock:
            if key in self._generators:
                self._generators.move_to_end(key)
                return self._generators[key]
            # Loading under the lock: two threads asking at once load the model once.
            with on_load() if on_load is not None else nullcontext():
                generator = TextGenerator(
                    folder, label=label, prompt_format=prompt_format, **self.engine_options
                )
            self._generators[key] = generator
            while len(self._generators) > self.max_models:
                self._generators.popitem(last=False)
            return generator

    def clear(self) -> None:
        with self._lock:
            self._generators.clear()
