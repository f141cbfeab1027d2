"""The quality benchmark: its documents, its figures on tiny models, `models evaluate`, the page."""

from __future__ import annotations

import json
import math
import runpy
from pathlib import Path

import pytest
from sqlalchemy import select

from srcflask.extensions import db
from srcflask.ml.continuation import judge
from srcflask.ml.engine import PromptFormat, TextGenerator
from srcflask.ml.quality import (
    BenchmarkError,
    evaluate,
    format_table,
    load_documents,
)
from srcflask.ml.settings import GenerationSettings
from srcflask.models import AuditEvent, ModelEvaluation

BENCH = Path(__file__).resolve().parent.parent / "bench"
DOCUMENTS = BENCH / "documents.jsonl"
QUICK = GenerationSettings(strategy="greedy", max_new_tokens=10)


def test_the_benchmark_documents_are_realistic():
    documents = load_documents(DOCUMENTS)

    assert len(documents) >= 24
    assert len({d.kind for d in documents}) >= 8  # minutes, letters, recipes, bug reports...
    for document in documents:
        words = len(document.body.split())
        # 50 to 1,000 tokens: English runs at about 1.3 tokens a word in these tokenizers.
        assert 40 <= words <= 760, (document.id, words)
        assert 30 <= len(document.continuation.split()) <= 130, document.id
        # People's next paragraphs are continuations by the detector's own rules.
        assert judge(document.continuation).continues, (document.id, judge(document.continuation))
    assert sum(len(d.body.split()) > 300 for d in documents) >= 10  # hundreds of tokens


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ('{"id": "a", "title": "T", "body": "B"}', "missing continuation"),
        ('{"id": "a", "title": "T", "body": " ", "continuation": "C"}', "missing body"),
    ],
)
def test_a_broken_benchmark_file_names_its_line(tmp_path, line, message):
    path = tmp_path / "documents.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(BenchmarkError, match=f"documents.jsonl:1: {message}"):
        load_documents(path)


def test_every_figure_is_computed_for_every_prompt_format(tiny_models):
    generator = TextGenerator(tiny_models["llama-chat"], label="tiny-chat")
    documents = load_documents(DOCUMENTS)[:3]
    reports = []
    for fmt in ("raw", "chat", "continue"):
        report = evaluate(generator.with_prompt_format(PromptFormat(fmt)), documents, QUICK)
        reports.append(report)
        summary = report.summary
        assert report.prompt_format == fmt and summary["documents"] == 3
        for key in ("continuation_rate", "raw_continuation_rate", "clean_ending_rate"):
            assert 0 <= summary[key] <= 1, key
        # A random tiny model knows nothing: several bits per character, but finite.
        assert 1 < summary["bits_per_char"] < 40
        assert summary["broken_characters"] == 0
        assert summary["median_seconds"] > 0
        assert summary["mean_generated_tokens"] > 0
        assert [o.id for o in report.documents] == [d.id for d in documents]
        json.dumps(report.to_dict())  # the benchmark writes it as JSON
    table = format_table(reports)
    assert "| continues |" in table.splitlines()[0]
    assert len(table.splitlines()) == 2 + 3


def test_bits_are_the_models_own_log_probabilities_of_the_true_continuation(tiny_models):
    import torch

    generator = TextGenerator(tiny_models["gpt2"])
    context, continuation = "Quarterly report", "Sales rose in the north."
    bits, chars = generator.score(context, continuation)

    tokenizer, model = generator.tokenizer, generator.model
    head = tokenizer(context + "\n\n")["input_ids"]
    whole = tokenizer(context + "\n\n" + continuation)["input_ids"]
    assert whole[: len(head)] == head
    with torch.inference_mode():
        log_probs = torch.log_softmax(model(torch.tensor([whole])).logits[0], -1)
    expected = -sum(log_probs[i - 1, whole[i]].item() for i in range(len(head), len(whole)))
    assert bits == pytest.approx(expected / math.log(2), rel=1e-4)
    assert chars == len(continuation)


def test_a_continuation_longer_than_the_context_is_scored_on_what_fits(tiny_models):
    generator = TextGenerator(tiny_models["gpt2"])  # a 128-token context
    bits, chars = generator.score("Report", "Sales rose in the north. " * 40)
    assert 0 < chars < len("Sales rose in the north. " * 40)
    assert bits > 0


def test_the_bench_script_writes_a_table_and_json(tiny_models, tmp_path, capsys):
    script = runpy.run_path(str(BENCH / "quality.py"))
    out = tmp_path / "quality.json"

    script["main"](
        [
            "--model",
            str(tiny_models["llama-chat"]),
            "--format",
            "all",
            "--limit",
            "2",
            "--max-new-tokens",
            "6",
            "--out",
            str(out),
        ]
    )

    printed = capsys.readouterr().out
    assert "| raw |" in printed and "| chat |" in printed and "| continue |" in printed
    runs = json.loads(out.read_text())
    assert [r["prompt_format"] for r in runs] == ["raw", "chat", "continue"]
    assert all(len(r["documents"]) == 2 for r in runs)


def test_models_evaluate_stores_the_figures_on_the_version(
    app, runner, production_model, admin_client
):
    result = runner.invoke(
        args=["models", "evaluate", "--format", "all", "--limit", "2", "--max-new-tokens", "6"]
    )

    assert result.exit_code == 0, result.output
    assert "| continues |" in result.output
    with app.app_context():
        rows = db.session.scalars(select(ModelEvaluation).order_by(ModelEvaluation.id)).all()
        assert [r.prompt_format for r in rows] == ["raw", "chat", "continue"]
        assert all(r.summary["documents"] == 2 and len(r.samples) == 2 for r in rows)
        assert all(r.version.label == production_model for r in rows)
        assert all(r.max_new_tokens == 6 for r in rows)
        actions = db.session.scalars(select(AuditEvent.action)).all()
        assert actions.count("model.evaluate") == 3

    page = admin_client.get("/admin/models")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "Quality benchmark" in text
    for fmt in ("raw", "chat", "continue"):
        assert f'data-evaluation="{production_model}/{fmt}"' in text


def test_models_evaluate_refuses_a_bad_benchmark_file_cleanly(app_factory, tiny_models, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{}\n")
    app = app_factory(QUALITY_DOCUMENTS=str(bad))
    from srcflask.registry import service as registry

    with app.app_context():
        version = registry.import_model(str(tiny_models["gpt2"]), "tiny", actor=None).version
        registry.set_alias(version, "production", actor=None)
    result = app.test_cli_runner().invoke(args=["models", "evaluate"])
    assert result.exit_code == 1
    assert "bad.jsonl:1: missing id, title, body, continuation" in result.output
    assert "Traceback" not in result.output


def test_a_character_cut_off_by_the_token_cap_is_left_out(tiny_models):
    generator = TextGenerator(tiny_models["gpt2"])
    ids = generator.tokenizer("The café")["input_ids"]
    whole = generator.tokenizer.decode(ids)
    # Byte-level tokens: somewhere a prefix of the ids ends inside "é".
    cuts = [n for n in range(1, len(ids)) if generator.tokenizer.decode(ids[:n]).endswith("\ufffd")]
    assert cuts, "the tokenizer split no character across tokens"
    for n in cuts:
        text = generator.decode(ids[:n])
        assert "\ufffd" not in text and whole.startswith(text)
    assert generator.decode(ids) == whole
