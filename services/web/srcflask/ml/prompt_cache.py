"""A KV cache that holds each document's prompt once, however many beams continue it.

A `transformers` cache repeats a prompt's keys and values for every beam, so five
beams of a 1,000-token document hold 5,000 tokens per layer, and reordering the
beams copies all of them at every step. Here a document's prompt is kept once
(as the prefill left it); each beam keeps only the tokens it generated, and a
reorder moves only those.

Two ways to attend over it:

- `FoldedPromptCache` (used when the model agrees with it, checked at load):
  one buffer per layer with a row per document, and `folded_attention` runs
  a document's beams as one query block over that row. Nothing is copied per
  beam, and a reorder copies nothing: each beam's mask follows its ancestry.
- `SharedPromptCache` (the fallback): the model sees an ordinary cache. At
  each layer, `update` lays every row's history out right-aligned (left
  padding, masked) and returns it with the new token, so the attention is the
  model's own, whatever it is. That layout lives only while its layer runs,
  but it copies each beam's history at every layer of every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from .memory import release_freed_memory


@dataclass
class _Rows:
    """What every layer shares: per running document, its beams and its history length."""

    beams: int
    lengths: list[int]  # tokens before the one being decoded (prompt + generated)

    @property
    def history(self) -> int:
        return max(self.lengths, default=0)


class _PromptLayer(CacheLayerMixin):
    """What both caches' layers share: the rows, and the layer's sliding window if any."""

    is_compileable = False
    is_croppable = False

    def __init__(self, rows: _Rows, sliding_window: int | None):
        super().__init__()
        self.rows = rows
        self.is_sliding = sliding_window is not None
        self.sliding_window = sliding_window
        # Only the last `sliding_window - 1` positions matter to a sliding layer's next token.
        self.keep = sliding_window - 1 if sliding_window else None
        self.is_initialized = True

    def lazy_initialization(self, key_states, value_states) -> None:  # never lazy
        pass

    def get_seq_length(self) -> int:
        return self.rows.history

    def get_max_length(self) -> int:
        return self.sliding_window or -1


def _sliding_windows(cache: Cache) -> list[int | None]:
    """Each layer's sliding window in a model's `cache` (None for a full layer)."""
    return [getattr(layer, "sliding_window", None) or None for layer in cache.layers]


def _prompt_rows(source, lengths: list[int]):
    """Each document's real positions in a prefill layer (left-padded rows), as views."""
    for row, length in enumerate(lengths):
        start = source.keys.shape[2] - min(length, source.keys.shape[2])  # sliding: its window
        yield source.keys[row : row + 1, :, start:], source.values[row : row + 1, :, start:]


class _Layer(_PromptLayer):
    """One layer: per document, the prompt's keys/values (1 row) and its beams' generated ones."""

    def __init__(self, rows: _Rows, sliding_window: int | None):
        super().__init__(rows, sliding_window)
        self.prompts: list[tuple[torch.Tensor, torch.Tensor]] = []  # (1, heads, n, dim) each
        self.generated: list[tuple[torch.Tensor, torch.Tensor]] = []  # (beams, heads, n, dim)

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
    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        history = self.rows.history
        shown = self.visible()
        return shown + query_length, history - shown


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
        return cls(_sliding_windows(cache), beams)

    def add(self, prefilled: Cache, lengths: list[int]) -> None:
        """Documents prefilled together (`prefilled`: one left-padded row each) join."""
        for layer, source in zip(self.layers, prefilled.layers, strict=True):
            for keys, values in _prompt_rows(source, lengths):
                # Copied out, so the prefill's padded batch (and the positions a
                # sliding layer no longer needs) can be freed.
                layer.add(keys.clone(), values.clone())
        self.rows.lengths.extend(lengths)

    def select(self, documents: list[int]) -> None:
        """Keep only these documents (indices in the current order), in that order."""
        for layer in self.layers:
            layer.select(documents)
        self.rows.lengths = [self.rows.lengths[i] for i in documents]

    def reorder_cache(self, sources: torch.Tensor) -> None:
        """Row `r` now continues row `sources[r]`; beams never move between documents."""
        parents = _local_parents(sources, self.rows.beams)
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

    def forward_inputs(self, device) -> dict:
        """The model's arguments for a decoding step beside its input ids."""
        lengths = torch.tensor(self.rows.lengths, device=device).repeat_interleave(self.rows.beams)
        return {"attention_mask": self.attention_mask(device), "position_ids": lengths[:, None]}

    @property
    def documents(self) -> int:
        return len(self.rows.lengths)


def _parents(sources: torch.Tensor, beams: int) -> torch.Tensor:
    """(documents, beams): the beam of its own document each new beam continues, from
    `sources`, the cache row each new row continues."""
    first_rows = torch.arange(0, sources.numel(), beams, device=sources.device)
    return sources.view(-1, beams) - first_rows.view(-1, 1)


def _local_parents(sources: torch.Tensor, beams: int) -> list[torch.Tensor | None]:
    """Per document, the beam each of its new beams continues (None where none moved)."""
    identity = torch.arange(beams, device=sources.device)
    return [None if torch.equal(row, identity) else row for row in _parents(sources, beams)]


# -- folded beams: one attention call per document, over its prompt kept once -----------
#
# `SharedPromptCache` still copies each beam's whole history into a fresh layout at every
# layer of every step: on a document of 1,000 tokens with 5 beams, that is most of a
# step's memory traffic. `FoldedPromptCache` keeps each layer's keys and values in one
# persistent buffer, one row per *document*:
#
#     [ prompt, right-aligned (padding on the left) | the beams' tokens, in slots ]
#       columns 0 .. width-1                          column width + slot
#
# and the attention (`folded_attention`, registered with transformers as FOLDED) folds a
# document's beams into the query axis, so all of them attend over that one row; a mask
# shows each beam the prompt and only its own tokens. The scores are the same set as a
# repeated cache's, the softmax runs over the same keys: only the order of a sum differs.
#
# A token's keys and values stay where they were written, in a column (a "slot") of
# its document's beam region. When the beams reorder, nothing is copied: each beam's
# ancestry (for every token it has, the slot holding it) is taken from its parent's, and
# the mask shows each beam the slots of its ancestry. Beams soon share most of their
# history, so most slots written are no beam's after a few steps (on realistic documents
# of Gemma 3 270M, three quarters of them): each step writes its new tokens into slots
# no beam holds, and the region grows only when a document has fewer free than beams.

FOLDED = "srcflask_folded"
FOLDED_KWARG = "srcflask_folded_cache"
# A folded buffer's beam region grows by this many slots at a time, as the beams need
# them: room for all 100 tokens of 5 beams would be 288 MiB of float32 keys and values
# for 16 documents of Gemma 3 270M, and attention reads every column, used or not.
GROWTH = 32
# A sliding layer's prompt columns that no running beam will show again (they slid out of
# the window of every document's next token) are cut when the layer's buffers are
# replaced anyway, or once this many have slid out: on realistic documents of Gemma 3
# 270M, 15 of its 18 layers keep a prompt of 511 columns, of which each step retires one.
SLID_OUT_CUT = GROWTH


class _FoldedLayer(_PromptLayer):
    """One layer's keys/values: (documents, kv_heads, width + slots, dim)."""

    def __init__(self, rows: _FoldedRows, sliding_window: int | None):
        super().__init__(rows, sliding_window)
        self.width = 0  # columns of the prompt region
        self.stored: list[int] = []  # prompt positions each document keeps (right-aligned)
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    def add(self, prompts: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Joining documents' prompt keys/values, (1, kv_heads, real positions, dim) each."""
        if self.keep is not None:
            prompts = [(k[:, :, -self.keep :], v[:, :, -self.keep :]) for k, v in prompts]
        sample = prompts[0][0]
        old = len(self.stored)
        stored = self.stored + [keys.shape[2] for keys, _ in prompts]
        width = max(stored)
        columns = width + self.rows.slots
        shape = (len(stored), sample.shape[1], columns, sample.shape[3])
        # Zeros: padding and unwritten columns are masked, but 0 x NaN would still be NaN.
        keys, values = sample.new_zeros(shape), sample.new_zeros(shape)
        if old:
            shift = width - self.width
            for new, current in ((keys, self.keys), (values, self.values)):
                new[:old, :, shift:width] = current[:, :, : self.width]
                new[:old, :, width:] = current[:, :, self.width :]
        for row, (prompt_keys, prompt_values) in enumerate(prompts, start=old):
            keys[row, :, width - prompt_keys.shape[2] : width] = prompt_keys[0]
            values[row, :, width - prompt_values.shape[2] : width] = prompt_values[0]
        self.keys, self.values, self.width, self.stored = keys, values, width, stored

    def select(self, documents: list[int]) -> None:
        """Keep `documents`, with the rows' slots (at most there were)."""
        self.stored = [self.stored[i] for i in documents]
        index = torch.tensor(documents, device=self.keys.device)
        cut = self._unused_prompt_columns()  # of those the remaining documents have
        end = self.width + self.rows.slots
        self.keys = self.keys[:, :, cut:end].index_select(0, index)
        self.values = self.values[:, :, cut:end].index_select(0, index)
        self._cut(cut)

    def fit(self) -> bool:
        """Make room for the rows' slots (appended: a slot's column stays where it is in
        the beam region), and cut the prompt columns slid out of a sliding layer's
        window, whenever the buffers are replaced or `SLID_OUT_CUT` have slid out.
        Whether the buffers were replaced."""
        columns, current = self.width + self.rows.slots, self.keys.shape[2]
        cut = self._unused_prompt_columns()
        if columns <= current and cut < SLID_OUT_CUT:
            return False
        fitted = []
        for buffer in (self.keys, self.values):
            new = buffer.new_empty((*buffer.shape[:2], columns - cut, buffer.shape[3]))
            new[:, :, : current - cut] = buffer[:, :, cut:]
            new[:, :, current - cut :] = 0  # unwritten columns are masked, but 0 x NaN is NaN
            fitted.append(new)
        self.keys, self.values = fitted
        self._cut(cut)
        return True

    def _unused_prompt_columns(self) -> int:
        """The first prompt columns that no beam of the running documents shows again:
        left of every document's prompt, or (a sliding layer) out of every one's window."""
        unused = self.width - max(self.stored)
        if self.is_sliding:
            unused = max(unused, self.rows.slid_out(self.width, self.stored, self.sliding_window))
        return unused

    def _cut(self, columns: int) -> None:
        """The buffers lost their first `columns` prompt columns."""
        self.width -= columns
        self.stored = [min(stored, self.width) for stored in self.stored]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        """Store each row's new token in its slot; the whole buffer is the history."""
        documents, columns = self.rows.write_index(self.width)
        self.keys[documents, :, columns] = key_states[:, :, -1]
        self.values[documents, :, columns] = value_states[:, :, -1]
        return self.keys, self.values

    def mask(self, groups: int) -> torch.Tensor:
        """(documents, 1, beams x groups, columns): what each beam's queries may see."""
        return self.rows.folded_mask(self.width, self.stored, self.sliding_window, groups)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        # transformers builds a mask from this; `folded_attention` uses `mask()` instead.
        return self.rows.history + query_length, 0


class _FoldedRows(_Rows):
    """`_Rows`, plus what the folded layers share within one step: the slots of the beam
    region, which of them hold each beam's tokens, and which each beam writes next."""

    def __init__(self, beams: int, limit: int, device):
        super().__init__(beams=beams, lengths=[])
        self.limit = limit  # the most tokens a beam generates
        self.slots = min(GROWTH, beams * limit)  # columns of the beam region
        self.device = device
        self.prompt_lengths: list[int] = []
        # (documents, beams, limit): for each beam and each of its tokens, the slot
        # holding it (see the note above `FOLDED`); entries past its tokens are unused.
        self.ancestry = torch.zeros((0, beams, limit), dtype=torch.long, device=device)
        # (documents, beams): the slot each beam's next token is written into.
        self.writing = torch.zeros((0, beams), dtype=torch.long, device=device)
        self._step: dict = {}  # index tensors and masks of the current step, by shape

    @property
    def generated(self) -> list[int]:
        """Tokens each document's beams have stored."""
        return [n - p for n, p in zip(self.lengths, self.prompt_lengths, strict=True)]

    def changed(self) -> None:
        self._step = {}

    def joined(self, count: int) -> None:
        """`count` documents joined, with no tokens yet."""
        new = self.ancestry.new_zeros((count, *self.ancestry.shape[1:]))
        self.ancestry = torch.cat([self.ancestry, new])
        self.writing = torch.cat([self.writing, self.writing.new_zeros((count, self.beams))])

    def kept(self, documents: list[int]) -> None:
        """Only `documents` (indices in the current order) go on, in that order."""
        index = torch.tensor(documents, device=self.device)
        self.ancestry = self.ancestry[index]
        self.writing = self.writing[index]

    def reorder(self, sources: torch.Tensor) -> None:
        """Row `r` now continues row `sources[r]` (a beam of the same document).

        A new beam's ancestry is its parent's, and the token the parent just stored
        (its token number `generated - 1`) is in the slot the parent wrote it to. For
        every document at once, with no copy of keys or values and no wait for the device.
        """
        beams, limit = self.beams, self.ancestry.shape[2]
        parents = _parents(sources, beams)
        ancestry = self.ancestry.gather(1, parents[:, :, None].expand(-1, -1, limit))
        # A document that stored no token yet writes its step 0, rewritten at its next step.
        written = (torch.tensor(self.generated, device=self.device) - 1).clamp(min=0)
        slots = self.writing.gather(1, parents)
        ancestry.scatter_(2, written[:, None, None].expand(-1, beams, 1), slots[:, :, None])
        self.ancestry = ancestry

    def _held(self) -> torch.Tensor:
        """(documents, beams, limit): the slot of each token the beams have, else `slots`
        (one past the region: a column nothing shows)."""
        if "held" not in self._step:
            generated = torch.tensor(self.generated, device=self.device)[:, None, None]
            token = torch.arange(self.ancestry.shape[2], device=self.device)[None, None, :]
            self._step["held"] = torch.where(token < generated, self.ancestry, self.slots)
        return self._step["held"]

    def slid_out(self, width: int, stored: list[int], window: int) -> int:
        """Of a sliding layer's `width` prompt columns, how many, from the first, every
        document's next token is past the window of (or has none of its prompt in)."""
        key = ("slid", width, tuple(stored), window)
        if key not in self._step:
            # A document's token number `generated` sees prompt column c if
            # c > generated + width - window (as in `folded_mask`).
            unseen = [
                max(width - kept, generated + width - window + 1)
                for kept, generated in zip(stored, self.generated, strict=True)
            ]
            self._step[key] = max(0, min([width, *unseen]))
        return self._step[key]

    def fitted(self) -> int:
        """The fewest slots, in whole GROWTHs, that keep every slot a beam holds (at most
        there are): what documents that stay need once others have left."""
        held = self._held()
        in_use = held[held < self.slots]
        highest = int(in_use.max()) + 1 if in_use.numel() else 0
        return min(max(GROWTH, -(-highest // GROWTH) * GROWTH), self.slots)

    def choose_slots(self) -> None:
        """Pick the slot each beam writes its next token into: the lowest that no beam of
        its document holds, growing the beam region if too few are free (by GROWTH
        slots at a time, never past `limit` tokens for each beam)."""
        documents, beams = len(self.lengths), self.beams
        held = self._held()
        free = ~_marked(held.flatten(1), self.slots)
        fewest = int(free.sum(dim=1).min()) if documents else beams
        grown = fewest < beams
        if grown:
            more = -(-(beams - fewest) // GROWTH) * GROWTH
            self.slots = min(self.slots + more, beams * self.limit)
            free = torch.cat([free, free.new_ones((documents, self.slots - free.shape[1]))], 1)
        lowest = free & (free.cumsum(dim=1) <= beams)
        self.writing = lowest.nonzero()[:, 1].view(documents, beams)
        # What depends on the slots written is stale; the slots held are not, unless the
        # region grew (`slots` marks none).
        self._step = {} if grown else {"held": held}

    def write_index(self, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per row (documents x beams): its document and the column of its new token."""
        key = ("write", width)
        if key not in self._step:
            documents = torch.arange(len(self.lengths), device=self.device)
            columns = width + self.writing.flatten()
            self._step[key] = (documents.repeat_interleave(self.beams), columns)
        return self._step[key]

    def folded_mask(
        self, width: int, stored: list[int], window: int | None, groups: int
    ) -> torch.Tensor:
        key = ("mask", width, tuple(stored), window, groups)
        if key in self._step:
            return self._step[key]
        beams, device, slots = self.beams, self.device, self.slots
        # The token being decoded is the beam's token number `generated` (counting from 0).
        step = torch.tensor(self.generated, device=device)[:, None]
        prompt = torch.arange(width, device=device)[None, :]
        shows_prompt = prompt >= width - torch.tensor(stored, device=device)[:, None]
        held = self._held()  # (documents, beams, tokens)
        if window is not None:  # a key is seen while the query is less than `window` after it
            shows_prompt &= prompt > step + width - window
            token = torch.arange(held.shape[2], device=device)[None, None, :]
            held = torch.where(step[:, :, None] - token < window, held, slots)
        # Its tokens' slots, and the slot of the token it is decoding now.
        own = _marked(torch.cat([held, self.writing[:, :, None]], dim=2), slots)
        mask = torch.cat(
            [shows_prompt[:, None, :].expand(-1, beams, -1), own], dim=2
        )  # (documents, beams, columns)
        columns = mask.shape[2]
        mask = mask[:, :, None, :].expand(-1, -1, groups, -1).reshape(len(stored), 1, -1, columns)
        self._step[key] = mask
        return mask


def _marked(indices: torch.Tensor, slots: int) -> torch.Tensor:
    """(..., slots) booleans: True at each slot in `indices` (..., n); an index of
    `slots` marks nothing."""
    marks = indices.new_zeros((*indices.shape[:-1], slots + 1), dtype=torch.bool)
    return marks.scatter_(-1, indices, True)[..., :slots]


def _give_back_layer_buffers() -> None:
    """After a layer's buffers are replaced by new ones (documents joined or left, or the
    beam region grew): the old ones are free, but the allocator's heap would hold them
    (each is under its threshold for mapping apart) until the loop's next trim, every
    layer's at once beside all the new ones. For 16 documents of Gemma 3 270M that was
    hundreds of megabytes at the peak."""
    release_freed_memory()


class FoldedPromptCache(Cache):
    """The running documents' cache for `folded_attention`, in the loop's document order.

    Same interface as `SharedPromptCache` for the loop; `forward_inputs()` gives what a
    decoding step passes to the model with it.
    """

    def __init__(self, sliding_windows: list[int | None], beams: int, limit: int, device):
        self.rows = _FoldedRows(beams, limit, device)
        super().__init__(layers=[_FoldedLayer(self.rows, window) for window in sliding_windows])

    @classmethod
    def like(cls, cache: Cache, beams: int, limit: int, device) -> FoldedPromptCache:
        """An empty cache with `cache`'s layers, for beams of at most `limit` new tokens."""
        return cls(_sliding_windows(cache), beams, limit, device)

    def add(self, prefilled: Cache, lengths: list[int]) -> None:
        """Documents prefilled together (`prefilled`: one left-padded row each) join."""
        for layer, source in zip(self.layers, prefilled.layers, strict=True):
            layer.add(list(_prompt_rows(source, lengths)))  # copied into the layer's buffer
            _give_back_layer_buffers()
        self.rows.lengths.extend(lengths)
        self.rows.prompt_lengths.extend(lengths)
        self.rows.joined(len(lengths))
        self.rows.changed()

    def select(self, documents: list[int]) -> None:
        rows = self.rows
        rows.lengths = [rows.lengths[i] for i in documents]
        rows.prompt_lengths = [rows.prompt_lengths[i] for i in documents]
        rows.kept(documents)
        rows.changed()
        # The slots past the highest one a remaining beam holds go too (new tokens take
        # the lowest free slots, so the highest are the first to fall free).
        rows.slots = rows.fitted()
        for layer in self.layers:
            layer.select(documents)
            _give_back_layer_buffers()
        rows.changed()

    def reorder_cache(self, sources: torch.Tensor) -> None:
        """Row `r` now continues row `sources[r]`; beams never move between documents.

        No key or value moves: each beam takes its parent's ancestry, which the
        mask follows (see the note above `FOLDED`).
        """
        self.rows.reorder(sources)
        self.rows.changed()

    def stepped(self) -> None:
        self.rows.lengths = [length + 1 for length in self.rows.lengths]
        self.rows.changed()

    def forward_inputs(self, device) -> dict:
        """The model's arguments for a decoding step beside its input ids."""
        rows = self.rows
        rows.choose_slots()
        for layer in self.layers:
            if layer.fit():  # more slots, or fewer prompt columns in the window
                _give_back_layer_buffers()
        positions = torch.tensor(rows.lengths, device=device).repeat_interleave(rows.beams)
        return {"position_ids": positions[:, None], FOLDED_KWARG: self}

    @property
    def documents(self) -> int:
        return len(self.rows.lengths)


def folded_attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
    """The model's attention; in a step of `FoldedPromptCache`, once per document.

    `query`: (rows, heads, 1, dim), rows being documents x beams; `key` and `value`:
    (documents, kv_heads, columns, dim), the cache's buffers.
    """
    cache = kwargs.pop(FOLDED_KWARG, None)
    if cache is None:  # a prefill, or any other forward: transformers' own SDPA attention
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(
            module, query, key, value, attention_mask, scaling=scaling, **kwargs
        )
    documents, kv_heads, _, dim = key.shape
    rows, heads = query.shape[:2]
    beams, groups = rows // documents, heads // kv_heads
    # Query heads share key heads in groups (head h reads key head h // groups).
    folded = query.reshape(documents, beams, kv_heads, groups, dim).transpose(1, 2)
    folded = folded.reshape(documents, kv_heads, beams * groups, dim)
    mask = cache.layers[module.layer_idx].mask(groups)
    output = torch.nn.functional.scaled_dot_product_attention(
        folded, key, value, attn_mask=mask, scale=scaling
    )
    output = output.view(documents, kv_heads, beams, groups, dim).transpose(1, 2)
    return output.reshape(rows, 1, heads, dim), None


def fold_beams(model) -> bool:
    """Route `model`'s attention through `folded_attention`, if it uses SDPA attention.

    Every other forward still gets transformers' SDPA attention (and its masks).
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    if model.config._attn_implementation == FOLDED:
        return True
    if model.config._attn_implementation != "sdpa":
        return False
    AttentionInterface.register(FOLDED, folded_attention)
    AttentionMaskInterface.register(FOLDED, sdpa_mask)
    model.set_attn_implementation(FOLDED)
    return True


def unfold_beams(model) -> None:
    if model.config._attn_implementation == FOLDED:
        model.set_attn_implementation("sdpa")
