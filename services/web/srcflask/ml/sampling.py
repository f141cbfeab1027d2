"""Greedy decoding and sampling, row by row, inside `transformers`' `generate()`.

`generate()` runs its greedy loop; `RowDecoder`, the last logits processor,
picks every row's token itself and hands back scores in which only that
token is possible. That gives each row:

- its own random generator, seeded per document (`document_seed`), so a
  machine text is reproducible from the seed stored with it whatever batch it
  was written in, and best-of-N candidates differ by seed alone;
- the model's own log-probability of every token it wrote (before
  temperature and truncation), to rank best-of-N candidates;
- the samplers people compare: temperature, top-k, nucleus (top-p), min-p
  and locally typical sampling.

`BanTokens` removes the tokens a document's rules ban, `GuardTokens` the
digits of a phone number it would invent, and `StopRows` ends a row where its
rules say the text should end (`ml.stopping`).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import torch

from .settings import GenerationSettings
from .stopping import DocumentRules


def document_seed(settings: GenerationSettings, prompt: str) -> int:
    """The seed a document's text is sampled with: the settings' own, else one from its prompt."""
    if settings.seed is not None:
        return int(settings.seed)
    return zlib.crc32(prompt.encode("utf-8"))


class BanTokens:
    """A logits processor that gives the tokens each row's rules ban no probability."""

    def __init__(self, banned: Sequence[Sequence[int]], device):
        self.rows = [
            torch.tensor(list(ids), dtype=torch.long, device=device) if ids else None
            for ids in banned
        ]

    def __call__(self, input_ids, scores):
        for row, ids in enumerate(self.rows):
            if ids is not None:
                scores[row, ids] = -float("inf")
        return scores


class GuardTokens:
    """A logits processor that keeps a row from starting an invented phone number: where
    its rules' guard says so, its digit tokens get no probability."""

    def __init__(self, rules, prompt_length: int, decode: Callable[[list[int]], str], device):
        self.rules = rules
        self.prompt_length = prompt_length
        self.decode = decode
        self.ids = [
            torch.tensor(sorted(rule.digits), dtype=torch.long, device=device)
            if rule is not None and rule.digits
            else None
            for rule in rules
        ]

    def __call__(self, input_ids, scores):
        for row, ids in enumerate(self.ids):
            if ids is None or input_ids.shape[1] == self.prompt_length:
                continue
            text = self.decode(input_ids[row, self.prompt_length :][-40:].tolist())
            if self.rules[row].guards_digits(text):
                scores[row, ids] = -float("inf")
        return scores


class RowDecoder:
    """The last logits processor: choose each row's token (greedy or sampled) and keep
    the model's log-probability of it."""

    def __init__(self, settings: GenerationSettings, seeds: Sequence[int], device):
        self.settings = settings
        self.sample = settings.strategy == "sample"
        self.generators = []
        for seed in seeds:
            generator = torch.Generator(device=device)
            generator.manual_seed(int(seed))
            self.generators.append(generator)
        self.log_probs: list[list[float]] = [[] for _ in seeds]

    def __call__(self, input_ids, scores):
        scores = scores.float()
        log_probs = torch.log_softmax(scores, dim=-1)
        if self.sample:
            chosen = torch.stack(
                [
                    torch.multinomial(probabilities, 1, generator=generator)[0]
                    for probabilities, generator in zip(
                        self._probabilities(scores), self.generators, strict=True
                    )
                ]
            )
        else:
            chosen = scores.argmax(dim=-1)
        picked = log_probs.gather(1, chosen[:, None])[:, 0].tolist()
        for row, value in enumerate(picked):
            self.log_probs[row].append(value)
        out = torch.full_like(scores, -float("inf"))
        out.scatter_(1, chosen[:, None], 0.0)
        return out

    def _probabilities(self, scores: torch.Tensor) -> torch.Tensor:
        settings = self.settings
        logits = scores / settings.temperature
        if settings.top_k:
            kth = torch.topk(logits, min(settings.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, -float("inf"))
        probabilities = torch.softmax(logits, dim=-1)
        if settings.min_p > 0:
            floor = probabilities.max(dim=-1, keepdim=True).values * settings.min_p
            probabilities = probabilities.masked_fill(probabilities < floor, 0.0)
        if settings.typical_p < 1.0:
            probabilities = _typical(probabilities, settings.typical_p)
        if settings.top_p < 1.0:
            probabilities = _nucleus(probabilities, settings.top_p)
        return probabilities / probabilities.sum(dim=-1, keepdim=True)

    def mean_log_prob(self, row: int, tokens: int) -> float:
        """The model's mean log-probability (nats) of the row's first `tokens` tokens."""
        values = self.log_probs[row][: max(tokens, 1)]
        return sum(values) / len(values) if values else float("-inf")


def _nucleus(probabilities: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the most probable tokens that together hold `top_p` of the probability."""
    ordered, order = torch.sort(probabilities, descending=True, dim=-1)
    before = ordered.cumsum(dim=-1) - ordered  # probability of the tokens ranked above
    ordered = ordered.masked_fill(before > top_p, 0.0)
    return torch.zeros_like(probabilities).scatter(1, order, ordered)


def _typical(probabilities: torch.Tensor, mass: float) -> torch.Tensor:
    """Locally typical sampling: keep the tokens whose surprise is nearest the entropy."""
    logs = torch.log(probabilities.clamp_min(1e-30))
    entropy = -(probabilities * logs).sum(dim=-1, keepdim=True)
    distance = (-logs - entropy).abs()
    order = torch.argsort(distance, dim=-1)
    ordered = probabilities.gather(1, order)
    before = ordered.cumsum(dim=-1) - ordered
    ordered = ordered.masked_fill(before > mass, 0.0)
    return torch.zeros_like(probabilities).scatter(1, order, ordered)


class StopRows:
    """A stopping criterion: a row is done when its rules say its text should end there."""

    def __init__(
        self,
        rules: Sequence[DocumentRules | None],
        prompt_length: int,
        decode: Callable[[list[int]], str],
    ):
        self.rules = rules
        self.prompt_length = prompt_length
        self.decode = decode

    def __call__(self, input_ids, scores, **kwargs):
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        last = input_ids[:, -1].tolist()
        for row, rules in enumerate(self.rules):
            if rules is None or not rules.watches or not rules.may_stop_after(last[row]):
                continue
            text = self.decode(input_ids[row, self.prompt_length :].tolist())
            done[row] = rules.stop(text) is not None
        return done
