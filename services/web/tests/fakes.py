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
