"""Decoding for editors on tiny models: banned tokens, stops, seeded sampling, best-of-N."""

from __future__ import annotations

import pytest

from srcflask.ml.continuation import without_broken_characters
from srcflask.ml.decoding import Request
from srcflask.ml.engine import TextGenerator, candidate_score
from srcflask.ml.settings import GenerationSettings, SettingsError
from srcflask.ml.stopping import BANNED_KINDS, DocumentRules

PROMPTS = [
    "Quarterly report on sales in the northern region",
    "Dear customer, thank you for your order. Unfortunately the bicycle",
    "Safety procedures for the warehouse loading dock",
]
BEAM = GenerationSettings(max_new_tokens=12, no_repeat_ngram_size=0)
SAMPLE = GenerationSettings(strategy="sample", max_new_tokens=12, top_k=0, temperature=1.0)


@pytest.fixture(scope="module")
def generator(tiny_models) -> TextGenerator:
    return TextGenerator(tiny_models["llama"], label="tiny-llama:1")


def beam_tokens(generator, requests, settings=BEAM):
    return {r.key: r.token_ids for r in generator._beam_loop(settings).run(requests)}


def test_a_banned_token_is_never_written_by_beam_search(generator):
    ids = generator.preprocess(PROMPTS[:1], BEAM).input_ids[0]
    [free] = beam_tokens(generator, [Request(0, ids)]).values()
    banned = sorted(set(free))[:3]  # tokens beam search does write, unbanned

    [held] = beam_tokens(generator, [Request(0, ids, banned=banned)]).values()

    assert set(banned) & set(free) and not set(banned) & set(held)
    assert len(held) == len(free)


def test_the_watch_ends_a_document_with_its_best_beam(generator):
    batch = generator.preprocess(PROMPTS[:2], BEAM)
    every_token = frozenset(range(len(generator.tokenizer)))
    asked: list[list[int]] = []

    def after_five(token_ids):
        asked.append(token_ids)
        return len(token_ids) >= 5

    requests = [
        Request(0, batch.input_ids[0], watch=after_five, watch_after=every_token),
        Request(1, batch.input_ids[1]),
    ]
    results = beam_tokens(generator, requests)
    unwatched = beam_tokens(generator, [Request(1, batch.input_ids[1])])

    assert len(results[0]) == 5 and [len(ids) for ids in asked] == [1, 2, 3, 4, 5]
    assert results[1] == unwatched[1]  # its companion is untouched


class StopAfter:
    """Rules that stop a text once it holds `chars` characters and ban `banned`."""

    def __init__(self, chars: int, banned=(), everything=frozenset()):
        self.chars, self.banned, self.boundary = chars, tuple(banned), everything
        self.document, self.watches, self.digits = "", True, frozenset()

    def may_stop_after(self, token):
        return token in self.boundary

    def stop(self, text):
        return self.chars if len(without_broken_characters(text)) >= self.chars else None

    def finish(self, text):
        return (text[: self.chars], "paragraph") if self.stop(text) else (text, None)


@pytest.mark.parametrize("strategy", ["greedy", "sample"])
def test_greedy_and_sampled_rows_stop_and_ban_as_their_rules_say(generator, strategy):
    # A seed whose text runs to the cap, long enough to be stopped.
    for seed in range(20):
        settings = SAMPLE.replace(strategy=strategy, max_new_tokens=20, seed=seed)
        free = generator.generate(PROMPTS[:1], settings)[0]
        if free.finish_reason == "length" and len(free.raw_text) > 20:
            break
    banned = sorted(set(free.token_ids))[:2]
    batch = generator.preprocess(PROMPTS[:2], settings)
    everything = frozenset(range(len(generator.tokenizer)))
    batch.rules = [StopAfter(10, banned, everything), None]

    output = generator._forward_with_transformers(batch, None)
    [stopped, other] = generator.postprocess(batch, output, 0.1)

    assert not set(banned) & set(stopped.token_ids)
    assert stopped.finish_reason == "paragraph" and len(stopped.text) <= 10
    assert stopped.generated_tokens < 20 and other.generated_tokens == 20


def test_a_documents_sample_is_the_same_alone_or_in_any_batch(generator):
    alone = [generator.generate([prompt], SAMPLE)[0] for prompt in PROMPTS]
    batched = generator.generate(PROMPTS, SAMPLE)
    reordered = generator.generate(PROMPTS[::-1], SAMPLE)[::-1]

    assert [r.token_ids for r in alone] == [r.token_ids for r in batched]
    assert [r.token_ids for r in alone] == [r.token_ids for r in reordered]
    # The seed each text was written with is kept with it, and writes it again.
    seed = alone[0].settings["seed"]
    again = generator.generate([PROMPTS[0]], SAMPLE.replace(seed=seed))[0]
    assert again.token_ids == alone[0].token_ids
    other = generator.generate([PROMPTS[0]], SAMPLE.replace(seed=seed + 1))[0]
    assert other.token_ids != alone[0].token_ids


def test_best_of_keeps_the_candidate_the_model_scores_best(generator):
    settings = SAMPLE.replace(best_of=4, seed=11)
    [best] = generator.generate(PROMPTS[:1], settings)
    batch = generator.preprocess(PROMPTS[:1], settings)
    output = generator._forward_with_transformers(batch, None)
    candidates = [
        generator._result(batch, 0, row, batch.input_ids[0], False, None, 0.0)
        for row in output.tolist()
    ]
    scores = [
        candidate_score(batch.decoder.mean_log_prob(row, c.generated_tokens), c.text, "")
        for row, c in enumerate(candidates)
    ]

    assert len({c.token_ids for c in candidates}) > 1  # the seeds differ, so do the texts
    assert best.token_ids == candidates[scores.index(max(scores))].token_ids
    # The first candidate is what best_of=1 writes with the same seed.
    assert (
        candidates[0].token_ids
        == generator.generate(PROMPTS[:1], SAMPLE.replace(seed=11))[0].token_ids
    )


def test_a_candidate_that_fails_a_check_ranks_below_one_that_does_not():
    clean = candidate_score(-2.0, "The board agreed to buy four.", "Minutes.")
    looping = candidate_score(
        -1.0, "Day four in Lisbon. Day five in Lisbon. Day six in Lisbon.", "Diary."
    )
    assert clean > looping


def test_the_vocabulary_rules_ban_only_kinds_the_document_does_not_use(generator):
    vocabulary = generator.vocabulary_rules()
    hashes = set(vocabulary.kind_tokens["markdown-heading"])
    assert hashes, "the tiny vocabulary has a token holding '#'"
    plain = vocabulary.for_document("Plain text.", stop_at="length", ban_markup=True)
    headed = vocabulary.for_document("## Plan\nText.", stop_at="length", ban_markup=True)
    assert hashes <= set(plain.banned) and not hashes & set(headed.banned)
    assert set(BANNED_KINDS) == set(vocabulary.kind_tokens)


def test_editor_settings_are_checked():
    with pytest.raises(SettingsError, match="stop_at: must be one of length, paragraph"):
        GenerationSettings(stop_at="sentence")
    with pytest.raises(SettingsError, match="best_of: needs the sample strategy"):
        GenerationSettings(best_of=3)
    with pytest.raises(SettingsError, match="ban_markup: must be true or false"):
        GenerationSettings(ban_markup="yes")
    assert DocumentRules(document="x").watches is False


def test_the_searchs_other_hypotheses_give_clearly_different_alternatives(generator):
    def ids(text):
        return generator.tokenizer(text, add_special_tokens=False)["input_ids"]

    main = "The loading dock opens at six and closes at noon on weekdays."
    near = "The loading dock opens at six and closes at noon on Fridays."
    other = "Drivers sign in at the gate and wait for a marshal before reversing."
    batch = generator.preprocess(PROMPTS[2:], BEAM)

    [result] = generator.postprocess(batch, [ids(main)], 0.1, others=[[ids(near), ids(other)]])

    assert result.text == main
    assert result.alternatives == (other,)


def test_beam_search_hands_back_its_other_hypotheses(generator):
    ids = generator.preprocess(PROMPTS[:1], BEAM).input_ids[0]
    [finished] = generator._beam_loop(BEAM).run([Request(0, ids)])
    assert 1 <= len(finished.others) <= BEAM.num_beams - 1
    assert all(other != finished.token_ids for other in finished.others)
