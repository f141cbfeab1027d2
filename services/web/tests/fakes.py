"""A scripted generator, installed in the app's extensions in place of the real cache.

Tests say what the model should do (record its calls, fail on some prompts,
write a given text) without patching the engine: the app asks its generator
cache for a generator as always, and gets the real one wrapped in a script.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Script:
    """What the scripted generator does; change it at any time during a test."""

    # Every batch of prompts asked for, in order.
    calls: list[list[str]] = field(default_factory=list)
    # The settings of each batch, in the same order.
    settings: list[Any] = field(default_factory=list)
    # Raise this error for a batch with a prompt the predicate picks.
    fail_if: Callable[[str], bool] | None = None
    error: Exception = dataclasses.field(default_factory=lambda: RuntimeError("scripted failure"))
    # Run before the real model, with (prompts, settings, progress).
    before: Callable[..., None] | None = None
    # Replace each result's text (after the engine's own clean-up and bookkeeping).
    text: str | None = None


class ScriptedGenerator:
    """A real TextGenerator, answering as its script says."""

    def __init__(self, real, script: Script):
        self._real, self._script = real, script

    def generate(self, prompts, settings=None, progress=None, *, short=False):
        script = self._script
        script.calls.append(list(prompts))
        script.settings.append(settings)
        if script.fail_if is not None and any(script.fail_if(p) for p in prompts):
            raise script.error
        if script.before is not None:
            script.before(prompts, settings, progress)
            progress = None
        results = self._real.generate(prompts, settings, progress, short=short)
        if script.text is not None:
            results = [dataclasses.replace(r, text=script.text) for r in results]
        return results

    def generate_continuously(self, first, settings, *, more=None, on_result, on_progress=None):
        script = self._script
        prompts = [prompt for _, prompt in first]
        script.calls.append(list(prompts))
        script.settings.append(settings)
        if script.fail_if is not None and any(script.fail_if(p) for p in prompts):
            raise script.error
        if script.before is not None:
            keys = [key for key, _ in first]

            def progress(done: int, total: int) -> None:
                if on_progress is not None:
                    on_progress(dict.fromkeys(keys, done))

            script.before(prompts, settings, progress)

        def joined(count: int):
            pairs = list(more(count))
            if pairs:
                script.calls.append([prompt for _, prompt in pairs])
                script.settings.append(settings)
            return pairs

        def result(key, result) -> None:
            if script.text is not None:
                result = dataclasses.replace(result, text=script.text)
            on_result(key, result)

        self._real.generate_continuously(
            first,
            settings,
            more=joined if more is not None else None,
            on_result=result,
            on_progress=on_progress,
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class ScriptedGenerators:
    """The app's generator cache, handing out scripted generators."""

    def __init__(self, real_cache, script: Script):
        self._real, self.script = real_cache, script

    def get(self, *args, **kwargs) -> ScriptedGenerator:
        return ScriptedGenerator(self._real.get(*args, **kwargs), self.script)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


EXTENSION = "srcflask.generators"


def install(app) -> Script:
    """Script `app`'s generators; return the script."""
    script = Script()
    app.extensions[EXTENSION] = ScriptedGenerators(app.extensions[EXTENSION], script)
    return script
