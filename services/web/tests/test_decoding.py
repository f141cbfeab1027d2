"""srcflask's beam search loop gives transformers' tokens, with documents joining and leaving."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import NoRepeatNGramLogitsProcessor

from srcflask.ml import decoding
from srcflask.ml.decoding import (
    NgramBans,
    Request,
    _Document,
    _prefill_groups,
    best_candidates,
    folding_agrees,
)
from srcflask.ml.engine import TextGenerator
from srcflask.ml.prompt_cache import FoldedPromptCache
from srcflask.ml.settings import GenerationSettings

from .tinymodels import SENTENCES

WORDS = " ".join(SENTENCES).split()


@pytest.fixture(scope="module")
def pairs(tiny_models) -> dict[str, tuple[TextGenerator, TextGenerator]]:
    """Per tiny model: a generator using transformers' beam search, and one using ours."""
    return {
        kind: (
            TextGenerator(tiny_models[kind], own_beam_search=False),
            TextGenerator(tiny_models[kind], own_beam_search=True),
        )
        for kind in ("gpt2", "llama", "gemma3")
    }


def random_prompt(rng: random.Random, most_words: int = 60) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, most_words)))


def random_settings(rng: random.Random) -> GenerationSettings:
    return GenerationSettings(
        num_beams=rng.choice([2, 3, 4, 5]),
        max_new_tokens=rng.randint(1, 40),
        no_repeat_ngram_size=rng.choice([0, 1, 2, 3, 4]),
        early_stopping=rng.choice([True, False]),
        repetition_penalty=rng.choice([1.0, 1.0, 1.3]),
    )


@pytest.mark.parametrize("kind", ["gpt2", "llama", "gemma3"])
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("folded", [True, False], ids=["folded", "laid-out"])
@pytest.mark.parametrize("chunk", [None, 16], ids=["whole-vocabulary", "in-chunks"])
def test_the_same_tokens_as_transformers_beam_search(pairs, kind, seed, folded, chunk, monkeypatch):
    reference, own = pairs[kind]
    assert own.folded  # every tiny model takes folded attention; laid-out is the fallback
    monkeypatch.setattr(own, "folded", folded)
    if chunk:  # the tiny vocabularies (400) are searched whole unless chunks are this small
        monkeypatch.setattr(decoding, "CHUNK", chunk)
        monkeypatch.setattr(decoding, "MIN_CHUNK", 2)
    rng = random.Random(f"{kind}-{seed}")
    settings = random_settings(rng)
    prompts = [random_prompt(rng) for _ in range(rng.randint(1, 7))]

    # transformers, one prompt at a time (no padding); ours, all together.
    expected = [reference.generate([prompt], settings)[0].token_ids for prompt in prompts]
    together = own.generate(prompts, settings)

    assert [result.token_ids for result in together] == expected, settings
    assert any(expected)


def test_preset_settings_on_prompts_longer_than_the_batch_cap(pairs):
    reference, own = pairs["llama"]
    rng = random.Random("cap")
    prompts = [random_prompt(rng) for _ in range(9)]
    settings = GenerationSettings(max_new_tokens=24)  # the original preset
    own_capped = TextGenerator(own.model_dir, max_rows=settings.num_beams * 2)

    expected = [reference.generate([prompt], settings)[0].token_ids for prompt in prompts]

    assert [r.token_ids for r in own_capped.generate(prompts, settings)] == expected


def loop_for(generator: TextGenerator, settings: GenerationSettings, max_rows: int):
    loop = generator._beam_loop(settings)  # the loop generate() runs, with its settings
    loop.max_rows = max_rows
    return loop


def prefilled(loop, prompts):
    """`prompts` read in one pass of `loop`: the pass's cache and the prompts' lengths."""
    documents = [loop._start(Request(key, ids)) for key, ids in enumerate(prompts)]
    _, cache = loop._prefill(documents)
    return cache, [document.prompt_length for document in documents]


def cache_of(loop, prompts, folded: bool):
    """A cache of `loop` holding `prompts`: folded, or the copying `SharedPromptCache`."""
    loop.folded = folded
    cache = loop._new_cache(prefilled(loop, prompts)[0])
    loop.folded = True
    cache.add(*prefilled(loop, prompts))
    return cache


def step(loop, cache, tokens):
    """One decoding step of `cache`'s rows, fed `tokens`: its logits."""
    logits = loop._forward(tokens.view(-1, 1), cache, **cache.forward_inputs("cpu"))
    cache.stepped()
    return logits


@pytest.mark.parametrize("kind", ["gpt2", "gemma3"])  # gemma3: sliding layers too
def test_documents_join_at_a_step_boundary_and_leave_when_done(pairs, kind):
    reference, own = pairs[kind]
    rng = random.Random("join")
    settings = GenerationSettings(num_beams=3, max_new_tokens=30, no_repeat_ngram_size=3)
    # Short enough for the tiny model's 128 positions with 30 new tokens.
    prompts = {key: own.tokenizer(random_prompt(rng, 20))["input_ids"] for key in "abcdef"}
    expected = {
        key: reference.generate([reference.tokenizer.decode(ids)], settings)[0].token_ids
        for key, ids in prompts.items()
    }
    arrivals = {3: ["c", "d"], 5: ["e"], 9: ["f"]}  # step -> documents that arrive then
    steps, asked, finished_at, running_at, queue = [0], [], {}, {}, []

    def more(free: int):  # the queue hands over what fits
        asked.append(free)
        for step in [s for s in arrivals if s <= steps[0]]:
            queue.extend(arrivals.pop(step))
        taken, queue[:] = queue[:free], queue[free:]
        return [Request(key, prompts[key]) for key in taken]

    def on_step(documents):
        steps[0] += 1
        running_at[steps[0]] = sorted(d.request.key for d in documents)

    def on_result(result):
        finished_at[result.key] = steps[0]

    loop = loop_for(own, settings, max_rows=settings.num_beams * 3)
    results = loop.run(
        [Request("a", prompts["a"]), Request("b", prompts["b"])],
        more=more,
        on_result=on_result,
        on_step=on_step,
    )

    got = {r.key: [t for t in r.token_ids if t not in own._eos_token_ids()] for r in results}
    assert got == {key: list(ids) for key, ids in expected.items()}
    first_step = {
        key: min(step for step, keys in running_at.items() if key in keys) for key in prompts
    }
    # c arrived after step 3 and took the free place at once; d waited for one.
    assert (first_step["a"], first_step["b"], first_step["c"]) == (1, 1, 4)
    assert first_step["d"] == min(finished_at["a"], finished_at["b"]) + 1
    assert first_step["f"] >= first_step["e"] >= first_step["d"]  # in the order they came
    # Never more than three documents at once (the cap), and each left the step it ended,
    # its result handed over then, not at the end of the whole run.
    assert all(len(keys) <= 3 for keys in running_at.values())
    assert all(key not in running_at.get(step + 1, []) for key, step in finished_at.items())
    assert min(finished_at.values()) < max(finished_at.values())
    assert min(asked) >= 1 and max(asked) <= 3


# Operations that wait for the device's work before them: values handed to Python, and
# `nonzero`, whose size depends on the data. (`.tolist()` reads a CPU tensor without
# an operation: the step's one copy of its outcome to the host is not counted.)
_READS = (
    torch.ops.aten._local_scalar_dense,
    torch.ops.aten.equal,
    torch.ops.aten.is_nonzero,
    torch.ops.aten.nonzero,
)


class _CountOperations(TorchDispatchMode):
    """Counts the tensor operations run inside it, and the reads of a value to the host."""

    def __init__(self):
        super().__init__()
        self.operations = self.host_reads = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.operations += 1
        self.host_reads += func.overloadpacket in _READS
        return func(*args, **(kwargs or {}))


def test_a_step_decides_and_reorders_every_document_at_once_with_a_fixed_few_reads(pairs):
    """On a GPU each tensor operation is a kernel launch and each read a wait for the GPU:
    neither the search's step nor the reorder of the folded cache may do either once
    per document."""
    _, own = pairs["llama"]
    assert own.folded
    settings = GenerationSettings(num_beams=4, max_new_tokens=12, no_repeat_ngram_size=3)
    rng = random.Random("per-step")
    counted: dict[tuple[str, int], list[tuple[int, int]]] = {}

    def counting(name, function, documents_of):
        def counted_call(self, *args):
            with _CountOperations() as count:
                out = function(self, *args)
            key = (name, documents_of(self, *args))
            counted.setdefault(key, []).append((count.operations, count.host_reads))
            return out

        return counted_call

    step = counting("step", decoding.BeamSearchLoop._step, lambda _, docs, __: len(docs))
    reorder = counting(
        "reorder", FoldedPromptCache.reorder_cache, lambda cache, _: len(cache.rows.lengths)
    )
    for documents in (2, 12):
        prompts = [own.tokenizer(random_prompt(rng, 20))["input_ids"] for _ in range(documents)]
        loop = loop_for(own, settings, max_rows=settings.num_beams * documents)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(decoding.BeamSearchLoop, "_step", step)
            patch.setattr(FoldedPromptCache, "reorder_cache", reorder)
            loop.run([Request(index, ids) for index, ids in enumerate(prompts)])

    # After the first step (every prompt joins, no beam has a token to move yet).
    few, many = counted["step", 2][1:], counted["step", 12][1:]
    # The NaN check and the tie-ordered top-k's `nonzero`, besides the uncounted copy of
    # the outcome: the same few whatever the number of documents.
    assert {reads for _, reads in few + many} == {2}
    # Six times the documents: only the per-document bookkeeping (views and the bans'
    # lookups) grows, not the search's arithmetic.
    assert max(ops for ops, _ in many) < 2 * min(ops for ops, _ in few)
    few, many = counted["reorder", 2][1:], counted["reorder", 12][1:]
    assert {reads for _, reads in few + many} == {0}
    assert {ops for ops, _ in few + many} == {few[0][0]}  # the same few, whatever the count


def _best_by_sorting(log_probs: torch.Tensor, scores: torch.Tensor, k: int):
    """The reference: every candidate's score, sorted (highest first, ties by index)."""
    every = (log_probs + scores[:, :, None]).view(log_probs.shape[0], -1)
    order = torch.sort(every, dim=1, descending=True, stable=True).indices[:, :k]
    return every.gather(1, order), order


@pytest.mark.parametrize("vocab", [8192, 4096 + 64, 1000, 97])
@pytest.mark.parametrize("seed", range(8))
def test_the_best_candidates_are_those_of_a_full_sort_ties_included(vocab, seed):
    generator = torch.Generator().manual_seed(seed)
    documents, beams, k = 3, 5, 10
    # Log-probabilities on a coarse grid, so many candidates tie, at the cut too.
    log_probs = -torch.randint(0, 6, (documents, beams, vocab), generator=generator).float()
    log_probs[:, :, seed::7] = -math.inf  # banned tokens
    scores = -torch.randint(0, 3, (documents, beams), generator=generator).float()
    if seed % 2:
        scores[:, 1:] = decoding.NEG  # the first step: only the first beam is real
    log_probs[0, 2, 5] = scores[0, 0] - scores[0, 2] + 0.0  # a tie across beams

    best, index = best_candidates(log_probs, scores, k)
    expected_best, expected_index = _best_by_sorting(log_probs, scores, k)

    assert torch.equal(best, expected_best)
    assert torch.equal(index, expected_index)


def test_of_candidates_tied_at_the_cut_the_lower_tokens_are_kept_whatever_their_chunk():
    log_probs = torch.full((1, 5, 8192), -10.0)
    log_probs[0, 0, 7 * 1024] = 0.0  # the chunk with the best candidate comes last
    log_probs[0, 0, 7 * 1024 + 1 : 7 * 1024 + 6] = -1.0
    log_probs[0, 0, 1024 + 10 : 1024 + 15] = -1.0  # ties for the cut, in an earlier chunk

    best, index = best_candidates(log_probs, torch.zeros(1, 5), 10)

    assert best[0].tolist() == [0.0] + [-1.0] * 9
    expected = [7 * 1024] + list(range(1024 + 10, 1024 + 15)) + [7 * 1024 + i for i in (1, 2, 3, 4)]
    assert index[0].tolist() == expected


def test_the_best_candidates_of_real_log_probabilities_match_a_full_sort():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4 * 5, 262_144, generator=generator) * 4
    log_probs = torch.log_softmax(logits, dim=-1).view(4, 5, -1)
    scores = -torch.rand(4, 5, generator=generator) * 20

    best, index = best_candidates(log_probs, scores, 10)
    expected_best, expected_index = _best_by_sorting(log_probs, scores, 10)

    assert torch.equal(best, expected_best)
    assert torch.equal(index, expected_index)


def test_log_probabilities_with_nan_still_give_candidates():
    log_probs = torch.full((2, 5, 4096), -3.0)
    log_probs[1, 3, 100:200] = math.nan  # a broken model's logits
    best, index = best_candidates(log_probs, torch.zeros(2, 5), 10)
    assert best.shape == index.shape == (2, 10)
    assert torch.equal(best[0], torch.full((10,), -3.0))


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_ngram_bans_grow_as_transformers_would_ban(size):
    rng = random.Random(size)
    processor = NoRepeatNGramLogitsProcessor(size)
    prompt = [rng.randrange(6) for _ in range(rng.randint(1, 12))]
    history = NgramBans(size, prompt).start()
    sequence = list(prompt)
    for _ in range(25):
        scores = processor(torch.tensor([sequence]), torch.zeros(1, 6))
        expected = {i for i in range(6) if scores[0, i] == -float("inf")}
        assert set(history.banned()) == expected, sequence
        token = rng.randrange(6)
        history = history.then(token)
        sequence.append(token)


def test_a_child_beam_does_not_change_its_parents_bans():
    parent = NgramBans(2, [1, 2, 3]).start()
    child = parent.then(1)
    grandchild = child.then(5)  # adds the 2-gram (1, 5)

    assert set(grandchild.then(1).banned()) == {2, 5}
    # A sibling that appended 4 instead knows (1, 4), not its cousin's (1, 5).
    assert set(child.then(4).then(1).banned()) == {2, 4}


def test_long_documents_run_fewer_at_once_than_short_ones(pairs):
    _, own = pairs["llama"]
    settings = GenerationSettings(num_beams=2, max_new_tokens=10)
    short = [own.tokenizer("Hi there")["input_ids"]] * 6
    long = [own.tokenizer(" ".join(WORDS[:50]))["input_ids"]] * 6
    # Room in the cache for six short documents, but only two long ones.
    cost = loop_for(own, settings, max_rows=100).cache_tokens
    budget = cost(2, len(long[0]))
    assert cost(6, len(short[0])) <= budget < cost(3, len(long[0]))

    def most_at_once(prompts) -> int:
        loop = loop_for(own, settings, max_rows=100)
        loop.max_cache_tokens = budget
        counts = []
        results = loop.run(
            [Request(i, p) for i, p in enumerate(prompts)],
            on_step=lambda documents: counts.append(len(documents)),
        )
        assert sorted(r.key for r in results) == list(range(6))
        return max(counts)

    assert most_at_once(short) == 6
    assert most_at_once(long) == 2


@pytest.mark.parametrize("folded", [True, False])
def test_a_prompt_is_cached_once_however_many_beams_continue_it(pairs, folded):
    from srcflask.ml.prompt_cache import GROWTH

    _, own = pairs["gemma3"]  # sliding layers keep only their window of the prompt
    beams, window, new = 5, own.model.config.sliding_window, 8
    prompts = [own.tokenizer(" ".join(WORDS[:n]))["input_ids"] for n in (3, 30)]
    lengths = [len(p) for p in prompts]
    assert lengths[0] < window - 1 < lengths[1]
    loop = loop_for(own, GenerationSettings(num_beams=beams, max_new_tokens=new), max_rows=20)
    loop.folded = folded
    documents = [loop._start(Request(key, ids)) for key, ids in enumerate(prompts)]
    _, prefilled = loop._prefill(documents)

    cache = loop._new_cache(prefilled)
    cache.add(prefilled, lengths)

    for layer in cache.layers:
        shown = [min(n, window - 1) if layer.is_sliding else n for n in lengths]
        if folded:  # one row per document: its prompt, then its beams' slots
            assert layer.stored == shown
            assert layer.keys.shape[:3] == (2, 1, max(shown) + min(GROWTH, new * beams))
        else:
            assert [keys.shape[:3] for keys, _ in layer.prompts] == [(1, 1, n) for n in shown]

    def written(layer):  # document 0's generated keys, by the beam that wrote them
        if not folded:  # (beams, heads, tokens, dim)
            return layer.generated[0][0].clone()
        own_columns = layer.keys[0, :, layer.width : layer.width + beams]  # slots 0 to beams - 1
        return own_columns.transpose(0, 1)[:, :, None].clone()

    def beam_tokens(layer):  # document 0's generated keys each beam has (or, folded, sees)
        if not folded:
            return written(layer)
        # Token 0's columns, one per beam that wrote it: each beam sees one of them (in the
        # mask of the next step, besides the slot its next token goes to).
        cache.forward_inputs("cpu")
        seen = layer.mask(groups=1)[0, 0, :, layer.width : layer.width + beams].clone()
        for beam, slot in enumerate(cache.rows.writing[0].tolist()):
            if slot < beams:  # a slot no beam holds any more (beam 4 died)
                seen[beam, slot] = False
        assert seen.sum(dim=1).tolist() == [1] * beams
        return written(layer)[seen.int().argmax(dim=1)]

    def prompt_part(layer):
        return (layer.keys if folded else layer.prompts[0][0])[
            ..., : layer.width if folded else None, :
        ].clone()

    # One decoding step: each beam stores its own token; after a reorder each beam has (or,
    # folded, sees: nothing is copied) its parent's token and the same prompt.
    step_logits = loop._forward(
        torch.arange(2 * beams).view(-1, 1), cache, **cache.forward_inputs("cpu")
    )
    cache.stepped()
    before = [(written(layer), prompt_part(layer)) for layer in cache.layers]
    cache.reorder_cache(torch.tensor([0, 0, 1, 2, 3, 5, 6, 7, 8, 9]))
    assert step_logits.shape[0] == 2 * beams
    assert cache.rows.lengths == [n + 1 for n in lengths]
    for layer, (old, prompt) in zip(cache.layers, before, strict=True):
        assert beam_tokens(layer).shape[:3] == (beams, 1, 1)
        # Beams 0 and 1 now continue beam 0; beam 2 continues beam 1, ...
        assert torch.equal(beam_tokens(layer), old[[0, 0, 1, 2, 3]])
        assert not torch.equal(old[0], old[1])
        assert torch.equal(prompt_part(layer), prompt)
        if folded:  # the keys stayed where they were written
            assert torch.equal(written(layer), old)


def test_a_model_that_disagrees_with_folded_attention_is_decoded_unfolded(
    pairs, tiny_models, monkeypatch
):
    from srcflask.ml import prompt_cache

    reference, own = pairs["llama"]
    ids = own.tokenizer("The quick brown fox jumps over the lazy dog.")["input_ids"]
    assert own.folded and folding_agrees(own.model, "cpu", [ids, ids[:3]])

    # Beams that could see each other's tokens: the check at load must catch it.
    def leaky_mask(self, width, stored, window, groups):
        return torch.ones(
            len(stored),
            1,
            self.beams * groups,
            width + self.slots,
            dtype=torch.bool,
        )

    monkeypatch.setattr(prompt_cache._FoldedRows, "folded_mask", leaky_mask)
    assert not folding_agrees(own.model, "cpu", [ids, ids[:3]])
    loaded = TextGenerator(tiny_models["llama"])
    assert not loaded.folded
    assert loaded.model.config._attn_implementation == "sdpa"
    settings = GenerationSettings(max_new_tokens=12)
    prompts = ["The cat sat on", "A long time ago in a galaxy far away there"]
    expected = [reference.generate([prompt], settings)[0].token_ids for prompt in prompts]
    assert [r.token_ids for r in loaded.generate(prompts, settings)] == expected


def test_joining_prompts_are_read_together_by_length_and_in_passes_of_bounded_size():
    def groups(lengths):
        documents = [_Document(Request(i, [1] * n), n) for i, n in enumerate(lengths)]
        return [[d.prompt_length for d in group] for group in _prefill_groups(documents)]

    assert groups([12, 10, 14, 9]) == [[9, 10, 12, 14]]  # little padding: one pass
    # Far apart: padding wasted. The longest pass first, beside no other document's cache.
    assert groups([100, 900, 950]) == [[900, 950], [100]]
    assert groups([30, 400, 10, 420, 2000, 35]) == [[2000], [400, 420], [30, 35], [10]]
    # Long prompts of one length: at most PREFILL_TOKENS tokens per pass.
    assert decoding.PREFILL_TOKENS == 2048
    assert groups([900] * 5) == [[900], [900] * 2, [900] * 2]
    assert groups([5000]) == [[5000]]  # alone, a prompt longer than that still runs


def test_a_float32_model_loaded_as_bfloat16_is_converted_a_weight_at_a_time(
    tiny_models, monkeypatch
):
    from transformers import AutoModelForCausalLM

    from srcflask.ml import memory

    dropped = []
    drop = memory._drop_pages

    def recorded(address, length, mapped):
        if drop(address, length, mapped):
            dropped.append(length)
            return True
        return False

    monkeypatch.setattr(memory, "_drop_pages", recorded)
    folder = tiny_models["gemma3"]
    loaded = TextGenerator(folder, dtype="bfloat16")
    reference = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).eval()

    ours, theirs = loaded.model.state_dict(), reference.state_dict()
    parameters = dict(reference.named_parameters())
    assert ours.keys() == theirs.keys()
    for name in parameters:
        assert ours[name].dtype == torch.bfloat16
        assert torch.equal(ours[name], theirs[name]), name
    # The tied output layer is still the embedding, converted once.
    assert loaded.model.lm_head.weight is loaded.model.model.embed_tokens.weight
    ids = torch.tensor([[2, 40, 41, 42, 43]])
    with torch.no_grad():
        assert torch.equal(loaded.model(ids).logits, reference(ids).logits)
    # Every parameter's float32 bytes were pages of the mapped file, and were let go.
    assert sum(dropped) == sum(p.numel() * 4 for p in parameters.values())
    assert loaded.folded


@pytest.mark.parametrize("reorder", ["none", "all_from_first", "random"])
def test_a_folded_cache_writes_into_slots_no_beam_holds_and_grows_as_needed(pairs, reorder):
    """Each step's tokens go into slots that no beam of the document holds any more; the
    beam region grows (GROWTH slots at a time) only when too few are free. Whatever the
    reorders, every step's logits are those of the cache that copies each beam's history."""
    from srcflask.ml.prompt_cache import GROWTH

    _, own = pairs["llama"]
    beams, new = 3, GROWTH + 12
    loop = loop_for(own, GenerationSettings(num_beams=beams, max_new_tokens=new), max_rows=9)
    assert loop.folded
    prompts = [own.tokenizer(" ".join(WORDS[:n]))["input_ids"] for n in (5, 9, 7)]

    folded, copied = cache_of(loop, prompts[:2], True), cache_of(loop, prompts[:2], False)
    layer = folded.layers[0]
    assert folded.rows.slots == GROWTH and layer.keys.shape[2] == layer.width + GROWTH
    generator = torch.Generator().manual_seed(3)
    rows = 2 * beams
    for stored in range(new - 1):
        tokens = torch.randint(5, 300, (rows,), generator=generator)
        assert torch.allclose(step(loop, folded, tokens), step(loop, copied, tokens), atol=1e-5)
        # This step's tokens needed `beams` free slots beside those held: every beam's
        # own tokens, only the first beam's (all others died), or in between.
        held = {"none": beams * stored, "all_from_first": stored}.get(reorder)
        if held is not None:
            needed = -(-(held + beams) // GROWTH) * GROWTH
            assert folded.rows.slots == min(needed, beams * new), stored
        assert layer.keys.shape[2] == layer.width + folded.rows.slots
        if reorder == "none":
            sources = torch.arange(rows)
        elif reorder == "all_from_first":
            sources = torch.arange(0, rows, beams).repeat_interleave(beams)
        else:  # a beam of the same document, at random
            sources = torch.randint(0, beams, (rows,), generator=generator)
            sources += torch.arange(0, rows, beams).repeat_interleave(beams)
        folded.reorder_cache(sources)
        copied.reorder_cache(sources)
    if reorder == "random":  # beams that die leave their slots to the next tokens
        assert folded.rows.slots < beams * new

    # A document joining after the others' growth, then left alone: the slots past those
    # it holds go, and it decodes exactly as it would have in a cache of its own.
    slots = folded.rows.slots
    folded.add(*prefilled(loop, prompts[2:]))
    assert folded.rows.slots == slots and layer.keys.shape[2] == layer.width + slots
    fed = torch.randint(5, 300, (rows + beams,), generator=generator)
    step(loop, folded, fed)
    folded.reorder_cache(torch.arange(rows + beams))
    folded.select([2])
    # Its first tokens took the lowest slots (its own row's are all free when it joins).
    assert folded.rows.slots == GROWTH and folded.rows.generated == [1]
    assert layer.keys.shape[2] == layer.width + GROWTH
    if reorder == "none":
        assert slots > GROWTH  # the others' growth, let go
    alone = cache_of(loop, prompts[2:], True)
    step(loop, alone, fed[rows:])  # the tokens it was fed beside the others
    alone.reorder_cache(torch.arange(beams))
    for _ in range(new - 3):
        tokens = torch.randint(5, 300, (beams,), generator=generator)
        assert torch.allclose(step(loop, folded, tokens), step(loop, alone, tokens), atol=1e-5)
        sources = torch.randint(0, beams, (beams,), generator=generator)
        folded.reorder_cache(sources)
        alone.reorder_cache(sources)


@pytest.mark.parametrize("cut_from", [1, 3])
def test_a_folded_cache_cuts_the_prompt_columns_slid_out_of_every_window(
    pairs, monkeypatch, cut_from
):
    """A sliding layer's prompt columns that every document's next token is past the
    window of are cut (once `cut_from` have slid out, or when the buffers grow); a
    document joining with its whole window brings them back for itself. Every step's
    logits are still those of the cache that copies each beam's history."""
    from srcflask.ml import prompt_cache

    monkeypatch.setattr(prompt_cache, "SLID_OUT_CUT", cut_from)
    _, own = pairs["gemma3"]
    window = own.model.config.sliding_window
    keep = window - 1
    beams, new = 3, 16
    loop = loop_for(own, GenerationSettings(num_beams=beams, max_new_tokens=new), max_rows=9)
    prompts = [own.tokenizer(" ".join(WORDS[:n]))["input_ids"] for n in (12, 9, 14)]
    assert all(len(ids) > keep for ids in prompts)  # each fills its sliding window

    folded, copied = cache_of(loop, prompts[:2], True), cache_of(loop, prompts[:2], False)
    sliding = [layer for layer in folded.layers if layer.is_sliding]
    full = [layer for layer in folded.layers if not layer.is_sliding]
    assert sliding and full
    generator = torch.Generator().manual_seed(5)

    def steps(count: int, rows: int, decoded: int) -> None:
        """`count` steps of random tokens and reorders; the documents have `decoded`
        tokens each before the first."""
        for done in range(decoded, decoded + count):
            tokens = torch.randint(5, 300, (rows,), generator=generator)
            assert torch.allclose(step(loop, folded, tokens), step(loop, copied, tokens), atol=1e-5)
            # Token number `done` saw the last `keep - done` prompt positions (none once
            # `done` reached the window's end); fewer than `cut_from` of the others stay.
            slid = min(done, keep)
            for layer in sliding:
                assert keep - slid <= layer.width < keep - slid + cut_from, done
                assert layer.keys.shape[2] == layer.width + folded.rows.slots
            sources = torch.randint(0, beams, (rows,), generator=generator)
            sources += torch.arange(0, rows, beams).repeat_interleave(beams)
            folded.reorder_cache(sources)
            copied.reorder_cache(sources)

    steps(6, 2 * beams, 0)
    assert all(layer.width == max(map(len, prompts[:2])) for layer in full)  # never cut

    # A third document joins with its whole window: the others' cut columns come back as
    # padding only (masked), and the three decode as in the copying cache.
    extra, lengths = prefilled(loop, prompts[2:])
    folded.add(extra, lengths)
    copied.add(*prefilled(loop, prompts[2:]))
    assert all(layer.width == keep for layer in sliding)
    for _ in range(4):
        tokens = torch.randint(5, 300, (3 * beams,), generator=generator)
        assert torch.allclose(step(loop, folded, tokens), step(loop, copied, tokens), atol=1e-5)
        folded.reorder_cache(torch.arange(3 * beams))
        copied.reorder_cache(torch.arange(3 * beams))
    # The first two leave: only the third's window is left, 4 tokens in.
    folded.select([2])
    copied.select([2])
    assert all(layer.width == keep - 4 for layer in sliding)
    assert all(layer.width == len(prompts[2]) for layer in full)
    steps(new - 6, beams, 4)  # past the window: its prompt's columns all go (bar a few)


def test_a_folded_cache_gives_each_layers_old_buffers_back_as_it_replaces_them(pairs, monkeypatch):
    """A layer's buffers are replaced when documents join or leave and when the beams'
    slots grow. Trimmed only after all layers, the old buffers of every layer were held
    at once beside the new ones: the peak of 16 documents of Gemma 3 was there."""
    from srcflask.ml import prompt_cache
    from srcflask.ml.prompt_cache import GROWTH

    _, own = pairs["gemma3"]
    beams = 2
    loop = loop_for(own, GenerationSettings(num_beams=beams, max_new_tokens=GROWTH), max_rows=6)
    assert loop.folded
    events = []
    for name in ("add", "select", "fit"):
        method = getattr(prompt_cache._FoldedLayer, name)

        def recorded(layer, *args, method=method, name=name):
            buffer = layer.keys
            result = method(layer, *args)
            if layer.keys is not buffer:
                events.append(name)
            return result

        monkeypatch.setattr(prompt_cache._FoldedLayer, name, recorded)
    monkeypatch.setattr(prompt_cache, "release_freed_memory", lambda: events.append("trim"))

    prompts = [own.tokenizer(" ".join(WORDS[:n]))["input_ids"] for n in (5, 8)]
    cache = loop._new_cache(prefilled(loop, prompts[:1])[0])
    cache.add(*prefilled(loop, prompts[:1]))
    for _ in range(GROWTH // beams + 1):  # every beam keeps its tokens: the slots run out
        tokens = torch.arange(7, 7 + beams).view(-1, 1)
        loop._forward(tokens, cache, **cache.forward_inputs("cpu"))
        cache.stepped()
        cache.reorder_cache(torch.arange(beams))
    cache.add(*prefilled(loop, prompts[1:]))
    cache.select([1])
    layers = own.model.config.num_hidden_layers
    # Each layer's replacement was followed by a trim before the next layer's.
    expected = [[name, "trim"] * layers for name in ("add", "fit", "add", "select")]
    assert events == [event for part in expected for event in part]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_steps_log_softmax_is_written_over_its_logits(tiny_models, monkeypatch, dtype):
    generator = TextGenerator(tiny_models["gemma3"], dtype=dtype)
    settings = GenerationSettings(num_beams=3, max_new_tokens=12)
    loop = generator._beam_loop(settings)
    prompts = [generator.tokenizer(" ".join(WORDS[:n]))["input_ids"] for n in (4, 9, 6, 12)]
    passes, seen = [], []
    forward, search = loop._forward, decoding.best_candidates

    def recorded_forward(*args, **kwargs):
        passes.append(forward(*args, **kwargs))
        return passes[-1]

    def recorded_search(log_probs, scores, k):
        # The tensors themselves: a freed one's address could recur.
        seen.append((log_probs.shape[0], passes[-1], log_probs, loop._buffers.get("logits")))
        return search(log_probs, scores, k)

    monkeypatch.setattr(loop, "_forward", recorded_forward)
    monkeypatch.setattr(decoding, "best_candidates", recorded_search)
    results = loop.run([Request(key, ids) for key, ids in enumerate(prompts)])
    assert len(results) == 4 and not loop._buffers  # given back when the run ends
    steady = [entry for entry in seen[1:] if entry[0] == 4]  # (documents, beams, vocabulary)
    assert len(steady) >= 5
    for _, logits, log_probs, buffer in steady:
        # No second rows x vocabulary tensor: the log-probabilities are the pass's logits,
        # overwritten (in bfloat16, the float32 buffer they were converted into).
        assert log_probs.data_ptr() == logits.data_ptr()
        assert (buffer is None) == (dtype == "float32")
    if dtype == "bfloat16":  # one buffer, the same at every step while the rows stay
        assert all(entry[3] is steady[0][3] for entry in steady)
    assert "log_probs" not in loop._buffers


def test_a_step_where_documents_join_holds_one_rows_by_vocabulary_tensor_at_a_time(
    tiny_models, monkeypatch
):
    """The joining documents' rows are made once the running ones' logits are gone: one
    tensor of all of them was a second copy of the step's logits (84 MB for 16
    documents of Gemma 3), at every step a document joined. The texts are unchanged."""
    import weakref

    generator = TextGenerator(tiny_models["gemma3"])
    settings = GenerationSettings(num_beams=3, max_new_tokens=10)
    loop = generator._beam_loop(settings)
    prompts = [generator.tokenizer(" ".join(WORDS[:n]))["input_ids"] for n in (4, 9, 6)]
    forward, joining_rows = loop._forward, loop._joining_rows
    steps, joins = [], []

    def recorded_forward(*args, into=None, **kwargs):
        logits = forward(*args, into=into, **kwargs)
        if into is not None:  # a decoding step's pass (a prefill's logits are one row each)
            steps.append(weakref.ref(logits))
        return logits

    def recorded_joining_rows(prompt_logits):
        joins.append([logits() is None for logits in steps])
        return joining_rows(prompt_logits)

    monkeypatch.setattr(loop, "_forward", recorded_forward)
    monkeypatch.setattr(loop, "_joining_rows", recorded_joining_rows)
    later = [Request(1, prompts[1]), Request(2, prompts[2])]
    calls = []

    def more(free: int) -> list[Request]:
        calls.append(free)
        return later[:] if len(calls) == 3 else []

    results = {r.key: r.token_ids for r in loop.run([Request(0, prompts[0])], more=more)}
    assert joins[0] == []  # the first document, before any step
    assert len(joins) == 2 and len(joins[1]) == 2 and all(joins[1])  # after two steps
    alone = [generator._beam_loop(settings).run([Request(0, ids)])[0] for ids in prompts]
    assert [results[key] for key in range(3)] == [r.token_ids for r in alone]


def test_a_steps_buffers_grow_and_shrink_with_its_rows(tiny_models):
    loop = TextGenerator(tiny_models["gemma3"])._beam_loop(GenerationSettings(num_beams=3))
    # A buffer grows when more rows come, and gives way to a smaller one when fewer
    # than half of it would be used.
    first = loop._buffer("logits", 10, 7)
    assert loop._buffer("logits", 6, 7).data_ptr() == first.data_ptr()
    assert loop._buffers["logits"].shape == (10, 7)
    loop._buffer("logits", 12, 7)
    assert loop._buffers["logits"].shape == (12, 7)
    loop._buffer("logits", 5, 7)
    assert loop._buffers["logits"].shape == (5, 7)


def test_freed_memory_goes_back_when_documents_leave_and_every_few_steps(tiny_models, monkeypatch):
    # Trimming at every step made the next one fault its pages in again; the loop gives
    # memory back after a prefill, when a document leaves, and every TRIM_EVERY steps.
    import srcflask.ml.decoding as decoding

    generator = TextGenerator(tiny_models["gemma3"])
    settings = GenerationSettings(num_beams=2, max_new_tokens=2 * decoding.TRIM_EVERY + 3)
    loop = generator._beam_loop(settings)
    events, models = [], []

    def trim(model=None):
        events.append("trim")
        models.append(model)

    monkeypatch.setattr(decoding, "release_freed_memory", trim)
    prompts = [generator.tokenizer(" ".join(WORDS[:n]))["input_ids"] for n in (5, 8)]

    def on_step(documents):
        events.append(len(documents))

    loop.run(
        [Request(key, ids) for key, ids in enumerate(prompts)],
        on_step=on_step,
        on_result=lambda finished: events.append(f"done {finished.key}"),
    )
    steps = [e for e in events if isinstance(e, int)]
    trims = events.count("trim")
    assert len(steps) > 2 * decoding.TRIM_EVERY  # long enough for the periodic trims
    assert 2 <= trims <= 1 + len(steps) // decoding.TRIM_EVERY + 2  # not at every step
    # The first step's prefill is followed by a trim, and so is each step a document left.
    assert events[0] == "trim"
    for index, event in enumerate(events):
        if isinstance(event, str) and event.startswith("done"):
            assert "trim" in events[index + 1 : index + 3]
    # Between two trims, never more than TRIM_EVERY steps.
    run = 0
    for event in events:
        run = 0 if event == "trim" else run + isinstance(event, int)
        assert run <= decoding.TRIM_EVERY
    # Each also lets go of the pages the model read from its files (the embeddings').
    assert all(model is generator.model for model in models)


def test_the_memory_bench_script_tags_the_loops_phases_and_restores_them(tiny_models, tmp_path):
    import runpy

    script = runpy.run_path(str(Path(__file__).resolve().parent.parent / "bench" / "memory.py"))
    loop = decoding.BeamSearchLoop
    originals = (loop._step, loop._forward, FoldedPromptCache.add)
    out = tmp_path / "memory.json"
    model = str(tiny_models["gemma3"])
    arguments = ["--model", model, "--limit", "3", "--max-new-tokens", "5", "--every", "1"]
    report = script["main"]([*arguments, "--json", str(out)])

    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    phases = report["phases"]
    assert {"prefill", "documents join", "fit", "step forward", "step search"} <= set(phases)
    assert report["top_phase"] in phases
    step = phases["step forward"]
    assert step["documents"] == 3 and step["step"] >= 1 and step["kv"] > 0
    # What it splits off the keys and values is part of them.
    assert 0 <= step["padding"] + step["unheld_slots"] < step["kv"]
    # The loop and the cache are themselves again.
    assert (loop._step, loop._forward, FoldedPromptCache.add) == originals
