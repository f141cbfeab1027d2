"""A KV cache that holds each document's prompt once, however many beams continue it.

A `transformers` cache repeats a prompt's keys and values for every beam, so five
beams of a 1,000-token document hold 5,000 tokens per layer, and reordering the
beams copies all of them at every step. Here a document's prompt is kept once
(as the prefill left it); each beam keeps only the tokens it generated, and a
reorder moves only those.

The model still sees an ordinary cache: at each layer, `update` lays every
row's history out right-aligned (left padding, masked) and returns it with the
new token, so the attention is the model's own and the numbers are those of a
repeated cache. That layout lives only while its layer runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


@dataclass
class _Rows:
    """What every layer shares: per running document, its beams and its history length."""

    beams: int
    lengths: list[int]  # tokens before the one being decoded (prompt + generated)

    @property
    def history(self) -> int:
        return max(self.lengths, default=0)


class _Layer(CacheLayerMixin):
    """One layer: per document, the prompt's keys/values (1 row) and its beams' generated ones."""

    is_compileable = False
    is_croppable = False

    def __init__(self, rows: _Rows, sliding_window: int | None):
        super().__init__()
        self.rows = rows
        self.is_sliding = sliding_window is not None
        self.sliding_window = sliding_window
        # Only the last `sliding_window - 1` positions matter to a sliding layer's next token.
        self.keep = sliding_window - 1 if sliding_window else None
        self.prompts: list[tuple[torch.Tensor, torch.Tensor]] = []  # (1, heads, n, dim) each
        self.generated: list[tuple[torch.Tensor, torch.Tensor]] = []  # (beams, heads, n, dim)
        self.is_initialized = True

    def lazy_initialization(self, key_states, value_states) -> None:  # never lazy
        pass

    def add(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        """A joining document's prompt keys/values (1, heads, its real positions, dim)."""
        if self.keep is not None:
            keys, values = keys[:, :, -self.keep :], values[:, :, -self.keep :]
        self.prompts.append((keys, values))
        empty = keys.new_empty((self.rows.beams, keys.shape[1], 0, keys.shape[3]))
        self.generated.append((empty, empty))

    def select(self, documents: list[int]) -> None:
        self.prompts = [self.prompts[i] for i in documents]
        self.generated = [self.generated[i] for i in documents]

    def reorder(self, parents: list[torch.Tensor | None]) -> None:
        """Each document's beams now continue these of its beams (None: unchanged)."""
        for i, local in enumerate(parents):
            if local is not None:
                keys, values = self.generated[i]
                self.generated[i] = (keys.index_select(0, local), values.index_select(0, local))

    def visible(self) -> int:
        """Positions of history the layer shows the next token (before left padding)."""
        history = self.rows.history
        return history if self.keep is None else min(history, self.keep)

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        beams, width = self.rows.beams, self.visible()
        rows, heads, _, dim = key_states.shape
        keys = key_states.new_empty((rows, heads, width + 1, dim))
        values = value_states.new_empty((rows, heads, width + 1, dim))
        for i, length in enumerate(self.rows.lengths):
            block = slice(i * beams, (i + 1) * beams)
            (prompt_keys, prompt_values) = self.prompts[i]
            (own_keys, own_values) = self.generated[i]
            shown = length if self.keep is None else min(length, self.keep)
            from_own = min(own_keys.shape[2], shown)
            from_prompt = shown - from_own
            start = width - shown
            keys[block, :, :start] = 0  # padding: masked, but must not be NaN
            values[block, :, :start] = 0
            if from_prompt:
                cut = prompt_keys.shape[2] - from_prompt
                keys[block, :, start : start + from_prompt] = prompt_keys[:, :, cut:]
                values[block, :, start : start + from_prompt] = prompt_values[:, :, cut:]
            if from_own:
                keys[block, :, width - from_own : width] = own_keys[:, :, -from_own:]
                values[block, :, width - from_own : width] = own_values[:, :, -from_own:]
            own_keys = torch.cat([own_keys, key_states[block]], dim=2)
            own_values = torch.cat([own_values, value_states[block]], dim=2)
            if self.keep is not None and own_keys.shape[2] > self.keep:
                own_keys, own_values = own_keys[:, :, -self.keep :], own_values[:, :, -self.keep :]
            self.generated[i] = (own_keys, own_values)
        keys[:, :, width] = key_states[:, :, -1]
        values[:, :, width] = value_states[:, :, -1]
        return keys, values

    # What the model's mask code asks: the same answers as transformers' dynamic layers.
    def get_seq_length(self) -> int:
        return self.rows.history

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        history = self.rows.history
        shown = self.visible()
        return shown + query_length, history - shown

    def get_max_length(self) -> int:
        return self.sliding_window or -1


class SharedPromptCache(Cache):
    """The running documents' cache, in `BeamSearchLoop`'s row order (documents x beams).

    Rows are laid out right-aligned: `attention_mask()` gives the mask the model
    needs with it, and the last column is the token being decoded.
    """

    def __init__(self, sliding_windows: list[int | None], beams: int):
        self.rows = _Rows(beams=beams, lengths=[])
        super().__init__(layers=[_Layer(self.rows, window) for window in sliding_windows])

    @classmethod
    def like(cls, cache: Cache, beams: int) -> SharedPromptCache:
        """An empty cache with the layers (full or sliding) of a model's `cache`."""
        windows = [getattr(layer, "sliding_window", None) for layer in cache.layers]
        return cls([w if w else None for w in windows], beams)

    def add(self, prefilled: Cache, lengths: list[int]) -> None:
        """Documents prefilled together (`prefilled`: one left-padded row each) join."""
        for layer, source in zip(self.layers, prefilled.layers, strict=True):
            for row, length in enumerate(lengths):
                shown = min(length, source.keys.shape[2])  # a sliding layer keeps its window
                # Copied out, so the prefill's padded batch (and the positions a
                # sliding layer no longer needs) can be freed.
                start = source.keys.shape[2] - shown
                keys = source.keys[row : row + 1, :, start:].clone()
                values = source.values[row : row + 1, :, start:].clone()
                layer.add(keys, values)
        self.rows.lengths.extend(lengths)

    def select(self, documents: list[int]) -> None:
        """Keep only these documents (indices in the current order), in that order."""
        for layer in self.layers:
            layer.select(documents)
        self.rows.lengths = [self.rows.lengths[i] for i in documents]

    def reorder_cache(self, sources: torch.Tensor) -> None:
        """Row `r` now continues row `sources[r]`; beams never move between documents."""
        beams = self.rows.beams
        local = sources.view(-1, beams) - torch.arange(
            0, sources.numel(), beams, device=sources.device
        ).view(-1, 1)
        identity = torch.arange(beams, device=sources.device)
        parents = [None if torch.equal(row, identity) else row for row in local]
        for layer in self.layers:
            layer.reorder(parents)

    def stepped(self) -> None:
        """Every running document's history grew by the token just decoded."""
        self.rows.lengths = [length + 1 for length in self.rows.lengths]

    def attention_mask(self, device) -> torch.Tensor:
        """(rows, history + 1): each row's real positions at its right end, then the new token."""
        lengths = torch.tensor(self.rows.lengths, device=device).repeat_interleave(self.rows.beams)
        columns = torch.arange(self.rows.history + 1, device=device)
        return (columns[None, :] >= (self.rows.history - lengths)[:, None]).to(torch.long)

    @property
    def documents(self) -> int:
        return len(self.rows.lengths)
