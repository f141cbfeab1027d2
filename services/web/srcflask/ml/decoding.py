"""srcflask's own beam search: each prompt prefilled once, every document's beams decoded together.

`transformers`' `generate()` copies each prompt to its beams before the
prefill (so a long document is read five times), pads every prompt to the
longest of the batch, and rebuilds its no-repeat-n-gram tables from the whole
sequence of every beam at every step. This loop keeps the model's forward (its
attention included) and does the rest itself:

- a document is prefilled once (not once per beam), with prompts of similar
  length together and little padding; its keys and values are kept once for
  all its beams, each beam keeping only the tokens it generated, and its beams
  attend over them in one call (`prompt_cache.FoldedPromptCache` and
  `folded_attention`; `SharedPromptCache` for a model that disagrees with it);
- every step decodes the beams of all running documents in one forward pass;
- a document joins at any step boundary (`more`) and leaves as soon as its
  search is over (`on_result`), so no document waits for the slowest;
- no-repeat-n-gram bans are kept per beam and grown by one n-gram per step;
- the search itself (top-k over beams x vocabulary, finished hypotheses,
  length penalty, early stopping) follows `transformers`' beam search step
  for step, so the tokens are the same as `generate()`'s.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from .memory import release_freed_memory
from .prompt_cache import FoldedPromptCache, SharedPromptCache

NEG = -1.0e9  # the score transformers gives impossible candidates
# Rows x padded length that documents may join up to: each layer lays out that many
# positions of keys and values for its attention (about 8 documents of 1,000 tokens
# with 5 beams, or 16 short ones).
MAX_CACHE_TOKENS = 48 * 1024
# Steps between giving freed memory back to the system while the same documents decode.
# Each step frees and allocates blocks of the same sizes, so the allocator reuses them;
# trimming them away makes the next step fault every page in again (about 5% of a step).
# Memory is also given back after every prefill and whenever documents leave.
TRIM_EVERY = 16


@dataclass(frozen=True)
class BeamConfig:
    """The beam-search settings that matter to the loop."""

    num_beams: int
    max_new_tokens: int
    eos_token_ids: tuple[int, ...]
    no_repeat_ngram_size: int = 0
    repetition_penalty: float = 1.0
    length_penalty: float = 1.0
    early_stopping: bool = True

    @property
    def candidates(self) -> int:
        """Candidates kept per step: enough that `num_beams` survive even if all the best end."""
        return max(2, 1 + len(self.eos_token_ids)) * self.num_beams


@dataclass
class Request:
    """One prompt to continue; `key` is the caller's name for it.

    `banned` tokens are never written. `refuse(token_ids)`, when given, is asked
    of each beam whose newest token is in `refuse_after` whether its text may go
    on; a beam it refuses is dropped from the search. `watch(token_ids)`, when
    given, is asked after each step whose best beam's newest token is in
    `watch_after` whether the text should end there; when it says so, the
    document ends with that beam.
    """

    key: object
    prompt_ids: Sequence[int]
    banned: Sequence[int] = ()
    watch: Callable[[list[int]], bool] | None = None
    watch_after: frozenset[int] = frozenset()
    refuse: Callable[[list[int]], bool] | None = None
    refuse_after: frozenset[int] = frozenset()
    # `guard(token_ids)`: whether a beam's next token may not be one of `guarded`.
    guard: Callable[[list[int]], bool] | None = None
    guarded: Sequence[int] = ()


@dataclass
class Finished:
    """The best hypothesis for a request: its generated token ids (an ending EOS included)."""

    key: object
    token_ids: list[int]
    score: float
    steps: int
    # The other hypotheses the search held at its end, best first (alternatives to offer).
    others: list[list[int]] = field(default_factory=list)


class NgramBans:
    """The tokens that would repeat an n-gram, for the beams of one document.

    The prompt's n-grams are indexed once and shared; each beam keeps only the
    n-grams its own tokens added, copied from its parent when beams reorder.
    """

    def __init__(self, size: int, prompt_ids: Sequence[int]):
        self.size = size
        self.prompt = _index_ngrams(size, prompt_ids)
        self.prompt_length = len(prompt_ids)
        # The last size-1 tokens of the prompt: the start of every beam's history.
        self.prompt_tail = tuple(prompt_ids[-(size - 1) :]) if size > 1 else ()

    def start(self) -> BeamNgrams:
        return BeamNgrams(self, {}, self.prompt_tail, self.prompt_length)


@dataclass
class BeamNgrams:
    table: NgramBans
    added: dict[tuple[int, ...], set[int]]
    tail: tuple[int, ...]
    length: int  # tokens in the beam's whole sequence, prompt included

    def banned(self) -> Iterable[int]:
        size = self.table.size
        if size < 1 or self.length + 1 < size:
            return ()
        key = self.tail[len(self.tail) - (size - 1) :] if size > 1 else ()
        found = self.table.prompt.get(key)
        mine = self.added.get(key)
        if found and mine:
            return found | mine
        return found or mine or ()

    def then(self, token: int) -> BeamNgrams:
        """The history of a child beam that appends `token` to this one."""
        size = self.table.size
        added = self.added
        if self.length + 1 >= size:  # a whole n-gram now ends at `token`
            key = self.tail[len(self.tail) - (size - 1) :] if size > 1 else ()
            added = {k: set(v) for k, v in added.items()}
            added.setdefault(key, set()).add(token)
        tail = (*self.tail, token)[-(size - 1) :] if size > 1 else ()
        return BeamNgrams(self.table, added, tail, self.length + 1)


def _index_ngrams(size: int, ids: Sequence[int]) -> dict[tuple[int, ...], set[int]]:
    table: dict[tuple[int, ...], set[int]] = {}
    if size < 1:
        return table
    ids = list(ids)
    for start in range(len(ids) - size + 1):
        table.setdefault(tuple(ids[start : start + size - 1]), set()).add(ids[start + size - 1])
    return table


@dataclass
class _Document:
    """One request's search state (tensors are per document, beams first)."""

    request: Request
    prompt_length: int
    generated: int = 0  # tokens each running beam has
    running_tokens: torch.Tensor = None  # (beams, max_new) generated ids of running beams
    running_scores: torch.Tensor = None  # (beams,)
    finished_tokens: torch.Tensor = None  # (beams, max_new)
    finished_lengths: torch.Tensor = None  # (beams,)
    finished_scores: torch.Tensor = None  # (beams,)
    is_finished: torch.Tensor = None  # (beams,) bool
    can_improve: bool = True
    done: bool = False
    ngrams: list[BeamNgrams] = field(default_factory=list)
    seen: list[torch.Tensor] = field(default_factory=list)  # for the repetition penalty
    banned: torch.Tensor | None = None  # token ids never written
    guarded: torch.Tensor | None = None  # token ids written only where the guard allows
    stopped: list[int] | None = None  # the best beam's tokens, when `watch` ended it
    stopped_score: float = 0.0


class BeamSearchLoop:
    """Beam search over a changing set of documents, one model step at a time.

    `run(requests, more=..., on_result=...)` starts with `requests`, asks `more(free_rows)`
    for new ones at every step boundary, and hands each finished document to
    `on_result` at once. `max_rows` caps the rows (documents x beams) in one step.
    """

    def __init__(
        self,
        model,
        config: BeamConfig,
        *,
        device,
        max_rows: int | None = None,
        max_cache_tokens: int = MAX_CACHE_TOKENS,
        folded: bool = False,
    ):
        self.model = model
        # Folded: the model's attention is `prompt_cache.folded_attention` (see `fold_beams`),
        # and the cache a `FoldedPromptCache`; otherwise a `SharedPromptCache` laid out per row.
        self.folded = folded
        self.config = config
        self.device = device
        self.max_rows = max(max_rows or 0, config.num_beams)
        self.max_cache_tokens = max_cache_tokens
        self.eos = torch.tensor(config.eos_token_ids or [-1], device=device)
        self._buffers: dict[str, torch.Tensor] = {}
        # transformers 5.x renamed the forward's `past_key_values` to `cache`.
        parameters = inspect.signature(model.forward).parameters
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"

    # -- the loop -------------------------------------------------------------
    def run(
        self,
        requests: Iterable[Request],
        *,
        more: Callable[[int], Iterable[Request]] | None = None,
        on_result: Callable[[Finished], None] | None = None,
        on_step: Callable[[list[_Document]], None] | None = None,
    ) -> list[Finished]:
        beams = self.config.num_beams
        waiting = list(requests)
        running: list[_Document] = []
        cache: SharedPromptCache | FoldedPromptCache | None = None
        next_tokens = None  # (rows, 1)
        results: list[Finished] = []
        steps_untrimmed = 0
        while True:
            free = self.max_rows - len(running) * beams
            cached = cache.rows.history if cache is not None else 0
            if more is not None and free >= beams and self._fits(len(running), cached, 1):
                waiting.extend(more(free // beams))
            joining: list[_Document] = []
            while waiting:
                longest = max(cached, len(waiting[0].prompt_ids))
                if not self._fits(len(running) + len(joining), longest, len(waiting[0].prompt_ids)):
                    break
                cached = longest
                joining.append(self._start(waiting.pop(0)))
            if not running and not joining:
                if waiting:  # a single request larger than the cap still runs
                    joining.append(self._start(waiting.pop(0)))
                else:
                    break
            step_logits, prompt_logits = None, []
            if running:
                step_logits = self._forward(
                    next_tokens, cache, into="logits", **cache.forward_inputs(self.device)
                )
                cache.stepped()
            groups = _prefill_groups(joining)
            joining = [document for group in groups for document in group]  # cache row order
            if groups:  # a prefill's activations need the room more than the step's buffers
                self._buffers.clear()
            for group in groups:
                logits, prefilled = self._prefill(group)
                prompt_logits.append(logits)  # one row per document, for all its beams
                if cache is None:
                    cache = self._new_cache(prefilled)
                cache.add(prefilled, [document.prompt_length for document in group])
                del prefilled  # the pass's padded cache and activations go back at once
                release_freed_memory(self.model)
            documents = running + joining
            # The running documents' beams are searched from the step's logits, then the
            # joining ones' from their prompts': one tensor of rows x vocabulary of them
            # all (84 MB for 16 documents of Gemma 3) would be a second copy of the first.
            # Each is gone before the next is made, and before the next step's pass.
            picked = []
            if running:
                picked.append(self._step(running, step_logits))
                step_logits = None
            if joining:
                sources, tokens = self._step(joining, self._joining_rows(prompt_logits))
                picked.append((sources + len(running) * beams, tokens))
                prompt_logits = None
            sources, tokens = (torch.cat(part) for part in zip(*picked, strict=True))
            cache.reorder_cache(sources)
            next_tokens = tokens.view(-1, 1)
            if on_step is not None:
                on_step(documents)
            kept = []
            running = []
            for index, document in enumerate(documents):
                if document.done:
                    finished = self._result(document)
                    results.append(finished)
                    if on_result is not None:
                        on_result(finished)
                else:
                    running.append(document)
                    kept.append(index)
            left = len(kept) < len(documents)
            if left and not kept:
                cache = next_tokens = None
            elif left:
                cache.select(kept)
                rows = torch.tensor(
                    [index * beams + beam for index in kept for beam in range(beams)],
                    device=self.device,
                )
                next_tokens = next_tokens[rows]
            steps_untrimmed += 1
            if left or steps_untrimmed >= TRIM_EVERY:
                release_freed_memory(self.model)  # what the documents that left held, too
                steps_untrimmed = 0
        self._buffers.clear()
        return results

    def _buffer(self, name: str, rows: int, columns: int) -> torch.Tensor:
        """A float32 (rows, columns) tensor kept from step to step for one of a step's
        large results (rows x vocabulary: tens of megabytes).

        Allocated afresh at every step, such a tensor is mapped from the system and
        faulted in page by page as it is written: for 40 rows of Gemma 3's vocabulary
        that made a log-softmax take 12 ms instead of 5. It is allocated again only
        to grow, or when under half of it is used.
        """
        buffer = self._buffers.get(name)
        if buffer is None or not buffer.shape[0] // 2 < rows <= buffer.shape[0]:
            self._buffers.pop(name, None)  # the old one goes back before the new one comes
            buffer = torch.empty((rows, columns), dtype=torch.float32, device=self.device)
            self._buffers[name] = buffer
        return buffer[:rows]

    def _joining_rows(self, prompts: list[torch.Tensor]) -> torch.Tensor:
        """The joining documents' logits, a row per beam: each prompt's row (one per
        document, per prefill pass in `prompts`) for all its beams, in one tensor."""
        beams = self.config.num_beams
        start = 0
        joining = beams * sum(part.shape[0] for part in prompts)
        out = prompts[0].new_empty((joining, prompts[0].shape[1]))
        for part in prompts:
            end = start + part.shape[0] * beams
            out[start:end].view(part.shape[0], beams, -1).copy_(
                part[:, None, :].expand(-1, beams, -1)
            )
            start = end
        return out

    def _fits(self, documents: int, longest: int, prompt_length: int) -> bool:
        """Whether one more document fits beside `documents`, all padded to `longest`."""
        rows = (documents + 1) * self.config.num_beams
        tokens = self.cache_tokens(documents + 1, max(longest, prompt_length))
        return rows <= self.max_rows and tokens <= self.max_cache_tokens

    def cache_tokens(self, documents: int, longest: int) -> int:
        """Positions of keys and values a layer holds for `documents` up to `longest` long."""
        beams, new = self.config.num_beams, self.config.max_new_tokens
        if self.folded:  # per document: its prompt once, then each beam's tokens
            return documents * (longest + beams * new)
        return documents * beams * (longest + new)  # per row, laid out at every step

    def _new_cache(self, prefilled):
        beams = self.config.num_beams
        if self.folded:
            return FoldedPromptCache.like(prefilled, beams, self.config.max_new_tokens, self.device)
        return SharedPromptCache.like(prefilled, beams)

    # -- one document joining ----------------------------------------------------
    def _start(self, request: Request) -> _Document:
        config, beams = self.config, self.config.num_beams
        length = len(request.prompt_ids)
        if length == 0:
            raise ValueError("a prompt needs at least one token")
        document = _Document(request=request, prompt_length=length)
        filler = config.eos_token_ids[0] if config.eos_token_ids else 0
        document.running_tokens = torch.full(
            (beams, config.max_new_tokens), filler, dtype=torch.long, device=self.device
        )
        document.running_scores = torch.zeros(beams, device=self.device)
        document.running_scores[1:] = NEG
        document.finished_tokens = document.running_tokens.clone()
        document.finished_lengths = torch.zeros(beams, dtype=torch.long, device=self.device)
        document.finished_scores = torch.full((beams,), NEG, device=self.device)
        document.is_finished = torch.zeros(beams, dtype=torch.bool, device=self.device)
        if config.no_repeat_ngram_size > 0:
            table = NgramBans(config.no_repeat_ngram_size, request.prompt_ids)
            document.ngrams = [table.start() for _ in range(beams)]
        if config.repetition_penalty != 1.0:
            prompt = torch.tensor(list(request.prompt_ids), device=self.device)
            document.seen = [prompt for _ in range(beams)]
        if request.banned:
            document.banned = torch.tensor(list(request.banned), device=self.device)
        if request.guard is not None and request.guarded:
            document.guarded = torch.tensor(list(request.guarded), device=self.device)
        return document

    def _prefill(self, group: list[_Document]):
        """Read the prompts of `group` in one forward pass, left-padded to the longest.

        Returns the logits of each prompt's last position and the model's cache,
        one row per document (its beams share that row).
        """
        length = max(document.prompt_length for document in group)
        ids = torch.zeros(len(group), length, dtype=torch.long, device=self.device)
        mask = torch.zeros_like(ids)
        for row, document in enumerate(group):
            start = length - document.prompt_length
            ids[row, start:] = torch.tensor(list(document.request.prompt_ids), device=self.device)
            mask[row, start:] = 1
        # Positions count only real tokens, so left padding shifts nothing.
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        logits = self._forward(ids, cache, attention_mask=mask, position_ids=positions)
        return logits, cache

    def _forward(self, ids, cache, into: str | None = None, **inputs) -> torch.Tensor:
        """Run the model on `ids` with `cache`; the logits of each row's last position,
        in float32 (written into the buffer `into`, if given, when they are converted)."""
        with torch.inference_mode():
            output = self.model(
                input_ids=ids,
                use_cache=True,
                logits_to_keep=1,
                **{self._cache_argument: cache},
                **inputs,
            )
        logits = output.logits[:, -1, :]
        if into is None or logits.dtype == torch.float32:
            return logits.to(dtype=torch.float32)
        return self._buffer(into, *logits.shape).copy_(logits)

    # -- one step of the search ----------------------------------------------------
    @torch.inference_mode()  # the logits come from the model's pass: written in place
    def _step(self, documents: list[_Document], logits: torch.Tensor):
        """Pick each document's next beams from `logits` (rows: documents x beams).

        Returns the cache row each new beam continues and the token it appends.
        """
        config, beams = self.config, self.config.num_beams
        count, vocab = len(documents), logits.shape[-1]
        # In place: the logits are the loop's own (the step's output, its buffer, or the
        # rows of joining prompts), and a second rows x vocabulary tensor is 84 MB for 16
        # documents of Gemma 3. The same numbers as into another tensor.
        log_probs = torch.log_softmax(logits, dim=-1, out=logits)
        self._process(documents, log_probs)
        scores = torch.stack([d.running_scores for d in documents])  # (docs, beams)
        top_scores, position = best_candidates(
            log_probs.view(count, beams, vocab), scores, config.candidates
        )
        parents = torch.div(position, vocab, rounding_mode="floor")
        tokens = position - parents * vocab

        # Every document's search state, stacked: a few operations for the whole step
        # instead of a few dozen per document (each a kernel launch on a GPU), and one
        # copy to the host at the end instead of a wait at each document's decisions.
        max_new = config.max_new_tokens
        running_tokens = torch.stack([d.running_tokens for d in documents])  # (docs, beams, new)
        finished_scores = torch.stack([d.finished_scores for d in documents])  # (docs, beams)
        finished_tokens = torch.stack([d.finished_tokens for d in documents])
        finished_lengths = torch.stack([d.finished_lengths for d in documents])
        is_finished = torch.stack([d.is_finished for d in documents])
        at = torch.tensor([d.generated for d in documents], device=self.device)[:, None]
        closed = torch.tensor([not d.can_improve for d in documents], device=self.device)
        # The length penalty of a hypothesis ending now, per document.
        penalty = [(d.generated + 1) ** config.length_penalty for d in documents]

        candidates = running_tokens.gather(1, parents[:, :, None].expand(-1, -1, max_new))
        candidates.scatter_(2, at[:, :, None].expand(-1, config.candidates, 1), tokens[:, :, None])
        ends = torch.isin(tokens, self.eos) | (at + 1 >= max_new)  # (docs, candidates)

        # The beams that go on: the best candidates that did not end.
        going_on = top_scores + ends.to(torch.float32) * NEG
        chosen = torch.topk(going_on, k=beams, dim=1)[1]  # (docs, beams)
        running_tokens = candidates.gather(1, chosen[:, :, None].expand(-1, -1, max_new))
        running_scores = going_on.gather(1, chosen)
        chosen_parents = parents.gather(1, chosen)
        chosen_tokens = tokens.gather(1, chosen)

        # The finished hypotheses: the best of the kept ones and the candidates that just
        # ended among the top `beams` (as transformers does, in its order). A document
        # whose hypotheses are all in (with early stopping) or that cannot improve takes
        # none; the same additions, in the same order, as transformers makes.
        candidate_rank = torch.arange(config.candidates, device=self.device)
        just_ended = ends & (candidate_rank < beams)
        ended_scores = _divide(top_scores, penalty)
        if config.early_stopping is True:
            full = is_finished.all(dim=1, keepdim=True)
            ended_scores = ended_scores + full.to(torch.float32) * NEG
        ended_scores = ended_scores + closed[:, None].to(torch.float32) * NEG
        ended_scores = ended_scores + (~just_ended).to(torch.float32) * NEG
        merged_scores = torch.cat([finished_scores, ended_scores], dim=1)
        merged_tokens = torch.cat([finished_tokens, candidates], dim=1)
        merged_lengths = torch.cat([finished_lengths, (at + 1).expand_as(ended_scores)], dim=1)
        merged_finished = torch.cat([is_finished, just_ended], dim=1)
        best = torch.topk(merged_scores, k=beams, dim=1)[1]
        finished_scores = merged_scores.gather(1, best)
        finished_tokens = merged_tokens.gather(1, best[:, :, None].expand(-1, -1, max_new))
        finished_lengths = merged_lengths.gather(1, best)
        is_finished = merged_finished.gather(1, best)

        # Can a running beam still beat the worst finished one? (transformers' heuristic)
        best_possible = _divide(running_scores[:, :1], penalty)
        worst = torch.where(is_finished, finished_scores.min(dim=1, keepdim=True).values, NEG)
        decided = [
            (best_possible > worst).any(dim=1),  # can still improve
            is_finished.all(dim=1) & (config.early_stopping is True),  # all hypotheses in
            ends.all(dim=1),  # every candidate ended
        ]
        # One copy to the host: the bans' tokens and the loop's decisions.
        host = torch.cat(
            [chosen_parents, chosen_tokens, torch.stack(decided, dim=1).to(chosen_parents.dtype)],
            dim=1,
        ).tolist()
        for index, document in enumerate(documents):
            picked_parents = host[index][:beams]
            picked_tokens = host[index][beams : 2 * beams]
            improves, all_finished, all_ended = (bool(v) for v in host[index][2 * beams :])
            document.running_tokens = running_tokens[index]
            document.running_scores = running_scores[index]
            document.finished_scores = finished_scores[index]
            document.finished_tokens = finished_tokens[index]
            document.finished_lengths = finished_lengths[index]
            document.is_finished = is_finished[index]
            if document.ngrams:
                document.ngrams = [
                    document.ngrams[p].then(t)
                    for p, t in zip(picked_parents, picked_tokens, strict=True)
                ]
            if document.seen:
                document.seen = [
                    torch.cat([document.seen[p], chosen_tokens[index, beam].view(1)])
                    for beam, p in enumerate(picked_parents)
                ]
            document.generated += 1
            document.can_improve = document.can_improve and improves
            document.done = (not document.can_improve) or all_finished or all_ended
            request = document.request
            if request.refuse is not None:
                for beam, token in enumerate(picked_tokens):
                    if token in request.refuse_after and request.refuse(
                        document.running_tokens[beam, : document.generated].tolist()
                    ):
                        document.running_scores[beam] = NEG
            if request.watch is not None:
                leader = int(document.running_scores.argmax())
                if picked_tokens[leader] in request.watch_after:
                    best = document.running_tokens[leader, : document.generated].tolist()
                    if request.watch(best):
                        document.stopped = best
                        document.stopped_score = float(document.running_scores[leader])
                        document.done = True
        rows = torch.arange(count, device=self.device)[:, None] * beams
        return (chosen_parents + rows).view(-1), chosen_tokens.reshape(-1)

    def _process(self, documents: list[_Document], log_probs: torch.Tensor) -> None:
        """The logits processors of the preset, on log-probabilities, in place."""
        beams = self.config.num_beams
        for index, document in enumerate(documents):
            if document.banned is not None:
                log_probs[index * beams : (index + 1) * beams, document.banned] = -math.inf
            if document.guarded is not None and document.generated:
                guard = document.request.guard
                history = document.running_tokens[:, : document.generated].tolist()
                for beam, tokens in enumerate(history):
                    if guard(tokens):
                        log_probs[index * beams + beam, document.guarded] = -math.inf
        penalty = self.config.repetition_penalty
        if penalty != 1.0:
            for index, document in enumerate(documents):
                for beam, seen in enumerate(document.seen):
                    row = log_probs[index * beams + beam]
                    picked = row[seen]
                    row[seen] = torch.where(picked < 0, picked * penalty, picked / penalty)
        if self.config.no_repeat_ngram_size > 0:
            rows, banned = [], []
            for index, document in enumerate(documents):
                for beam, history in enumerate(document.ngrams):
                    found = history.banned()
                    if found:
                        rows.extend([index * beams + beam] * len(found))
                        banned.extend(found)
            if rows:
                device = log_probs.device
                log_probs[
                    torch.tensor(rows, device=device), torch.tensor(banned, device=device)
                ] = -math.inf

    def _result(self, document: _Document) -> Finished:
        beams = self.config.num_beams
        if document.stopped is not None:
            scores = document.running_scores.tolist()
            others = [
                tokens
                for beam in range(beams)
                if scores[beam] > NEG / 2
                and (tokens := document.running_tokens[beam, : document.generated].tolist())
                != document.stopped
            ]
            return Finished(
                key=document.request.key,
                token_ids=document.stopped,
                score=document.stopped_score / len(document.stopped),
                steps=document.generated,
                others=others,
            )
        lengths = document.finished_lengths.tolist()
        scores = document.finished_scores.tolist()
        return Finished(
            key=document.request.key,
            token_ids=document.finished_tokens[0, : lengths[0]].tolist(),
            score=float(scores[0]),
            steps=document.generated,
            others=[
                document.finished_tokens[beam, : lengths[beam]].tolist()
                for beam in range(1, beams)
                if scores[beam] > NEG / 2
            ],
        )


def _divide(values: torch.Tensor, divisors: list[float]) -> torch.Tensor:
    """Each row of `values` divided by its divisor, rounded as `values / divisor` would
    round with a Python number: transformers divides by one, and on a GPU PyTorch
    multiplies by the number's reciprocal instead (on a CPU it divides)."""
    divisor = torch.tensor(divisors, dtype=torch.float32, device=values.device)[:, None]
    if values.device.type == "cuda":
        return values * (1.0 / divisor)
    return values / divisor


# The vocabulary is searched in chunks of this many tokens (or the largest power of two
# below it that divides the vocabulary; a vocabulary no chunk of MIN_CHUNK divides is
# searched whole).
CHUNK, MIN_CHUNK = 1024, 64


def best_candidates(
    log_probs: torch.Tensor, scores: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each document's `k` best candidates over its beams x vocabulary.

    `log_probs`: (documents, beams, vocabulary); `scores`: (documents, beams), the
    beams' running scores. A candidate's score is `log_probs + scores`, added in
    float32 as transformers adds them. Returns the scores and flat indices (beam x
    vocabulary + token), best first; of equal scores, the lower index first (a
    fixed rule where `torch.topk` leaves the order of ties open).

    `torch.topk` over 262,144 tokens takes 0.2 ms a row (17 ms a step for 16
    documents), ten times a pass that takes each chunk's maximum. A chunk holding
    one of the `k` best holds a value at least that high, and fewer than `k`
    other chunks can, so the best are in the `k` chunks with the highest maxima:
    only those are searched. Adding a beam's score keeps the order of its values
    (rounding is monotone), so a chunk's best candidate is its best log-probability
    plus the score, and the full rows of candidate scores are never written.
    """
    count, beams, vocab = log_probs.shape
    size = CHUNK
    while vocab % size:
        size //= 2
    chunks = vocab // size
    if size < MIN_CHUNK or beams * chunks < 4 * k:
        every = (log_probs + scores[:, :, None]).view(count, -1)
        if torch.isnan(every).any():  # a broken model: the order NaN has in torch.topk
            return torch.topk(every, k, dim=1)
        return _ranked_top(every, k)
    blocks = log_probs.view(count, beams * chunks, size)
    peaks = blocks.amax(dim=2).view(count, beams, chunks).add_(scores[:, :, None])
    if torch.isnan(peaks).any():
        every = (log_probs + scores[:, :, None]).view(count, -1)
        return torch.topk(every, k, dim=1)
    _, chosen = _ranked_top(peaks.view(count, -1), k)
    chosen = chosen.sort(dim=1).values  # in vocabulary order, so ties keep the lower index
    rows = torch.arange(count, device=log_probs.device)[:, None]
    searched = blocks[rows, chosen] + scores.gather(1, chosen // chunks)[:, :, None]
    best, where = _ranked_top(searched.view(count, -1), k)
    return best, chosen.gather(1, where // size) * size + where % size


def _ranked_top(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The `k` highest of each row of `values` (no NaN) and their indices: highest first,
    of equal values the lower index first (torch.topk orders ties as it likes)."""
    cut = torch.topk(values, k, dim=1).values[:, -1:]
    above = values > cut
    at_cut = values == cut
    room = k - above.sum(dim=1, keepdim=True)
    kept = above | (at_cut & (at_cut.cumsum(dim=1) <= room))
    index = kept.nonzero()[:, 1].view(values.shape[0], k)  # ascending in each row
    picked = values.gather(1, index)
    order = torch.sort(picked, dim=1, descending=True, stable=True).indices
    return picked.gather(1, order), index.gather(1, order)


# Joining prompts are read together when padding them to the longest adds at most this
# share of their tokens: one pass over the weights for many short prompts, and little
# wasted work on long ones of different lengths.
PREFILL_PADDING = 0.25
# ... and while the pass reads at most this many tokens (padding included): the
# activations of a pass grow with its tokens, the gain from one pass does not.
PREFILL_TOKENS = 2048


def _prefill_groups(documents: list[_Document]) -> list[list[_Document]]:
    """Split joining documents, by prompt length, into groups read in one pass each:
    the longest first, as a pass's activations and keys and values (hundreds of
    megabytes for 2,000 tokens) are then beside the fewest joined documents' caches."""
    groups: list[list[_Document]] = []
    group: list[_Document] = []
    for document in sorted(documents, key=lambda d: d.prompt_length):
        real = sum(d.prompt_length for d in group) + document.prompt_length
        padded = (len(group) + 1) * document.prompt_length  # sorted: it is the longest
        if group and (padded > (1 + PREFILL_PADDING) * real or padded > PREFILL_TOKENS):
            groups.append(group)
            group = []
        group.append(document)
    if group:
        groups.append(group)
    return groups[::-1]


def folding_agrees(model, device, prompts: list[list[int]]) -> bool:
    """Whether `model`, routed through `folded_attention`, gives the numbers it gives alone.

    Two documents decode two steps, their beams fed different tokens and reordered
    in between, once per cache; the logits must agree to within the dtype's rounding.
    A model whose layers do not hand the folded cache to their attention fails here
    (and is decoded with `SharedPromptCache` instead).
    """
    config = BeamConfig(num_beams=2, max_new_tokens=4, eos_token_ids=())
    outputs = []
    for folded in (False, True):
        loop = BeamSearchLoop(model, config, device=device, folded=folded)
        documents = [loop._start(Request(key, ids)) for key, ids in enumerate(prompts)]
        _, prefilled = loop._prefill(documents)
        cache = loop._new_cache(prefilled)
        cache.add(prefilled, [document.prompt_length for document in documents])
        tokens = torch.tensor(
            [ids[row % len(ids)] for ids in prompts for row in range(2)], device=device
        )
        logits = []
        for _ in range(2):
            try:
                logits.append(loop._forward(tokens[:, None], cache, **cache.forward_inputs(device)))
            except (RuntimeError, ValueError, TypeError, IndexError):
                return False
            cache.stepped()
            cache.reorder_cache(torch.tensor([1, 1, 2, 3][: len(tokens)], device=device))
            tokens = tokens.flip(0)
        outputs.append(torch.cat(logits))
    plain, folded = outputs
    tolerance = 1e-3 if model.dtype == torch.float32 else 5e-2
    scale = plain.abs().max().clamp(min=1.0)
    return bool(((plain - folded).abs().max() / scale) <= tolerance)
