"""The text generation engine: a causal language model loaded once, generating in batches.

Shaped like the `transformers` text-generation pipeline: `preprocess` checks,
formats, tokenizes and truncates the prompts; `_forward` runs `generate()` on
the right device; `postprocess` turns token ids into `GenerationResult`s.
Nothing here imports Flask, so a web process, a worker or a notebook can use it.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import check_loadable_folder, without_progress_bars
from .continuation import (
    BROKEN_CHARACTER,
    clean_output,
    split_sentences,
    without_broken_characters,
)
from .kernels import CPU_LINEAR_KERNELS, use_cpu_linear_kernel
from .memory import convert_parameters, drop_tokenizer_copies, release_freed_memory
from .settings import GenerationSettings, SettingsError
from .stopping import DocumentRules, VocabularyRules
from .turns import ModelTurns

log = logging.getLogger(__name__)

# Beams decoded together in one step at most, by default (documents x beams).
DEFAULT_MAX_ROWS = 80
# Called as progress(tokens_generated_so_far, max_new_tokens) after every decoding step.
ProgressCallback = Callable[[int, int], None]

DEFAULT_SYSTEM_PROMPT = (
    "You are a writing assistant. Continue the user's document in the same voice. "
    "Write only the continuation."
)
_SENTINEL = "\u2063SRCFLASK-DOCUMENT\u2063"
# How documents are put to a model (a property of each model version):
PROMPT_FORMATS = {
    "raw": "the document as it is, for the model to continue (base models)",
    "chat": "the chat template: a system line, then the document as the user's message",
    "continue": "the chat template, with the assistant's turn already begun with the "
    "document's last sentence, so the model carries on writing instead of replying",
}
# The most of the document's end that the `continue` format repeats in the assistant's turn.
CONTINUE_TAIL_CHARS = 300


class PromptError(ValueError):
    """A prompt that cannot be generated for (empty, whitespace only)."""


class ModelLoadError(RuntimeError):
    """A model folder that cannot or must not be loaded; the message says why."""


@dataclass(frozen=True)
class PromptFormat:
    """How a document becomes model input: `raw` text, or a `chat` template after a system line."""

    kind: str = "raw"
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in PROMPT_FORMATS:
            raise ValueError(
                f"prompt format must be one of {', '.join(PROMPT_FORMATS)}, not {self.kind!r}"
            )

    @property
    def templated(self) -> bool:
        """Whether documents go through the tokenizer's chat template."""
        return self.kind != "raw"


@dataclass(frozen=True)
class GenerationResult:
    """The continuation written for one prompt (without the prompt itself).

    `text` is the machine text after clean-up (`continuation.clean_output`);
    `raw_text` is what the model wrote, decoded.
    """

    text: str
    prompt_tokens: int
    generated_tokens: int
    truncated: bool
    finish_reason: str  # "eos" when the model ended, "length" at max_new_tokens
    seconds: float  # wall time of the whole batch this prompt was part of
    batch_size: int
    model_version: str
    settings: dict[str, Any] = field(default_factory=dict)
    token_ids: tuple[int, ...] = ()
    raw_text: str = ""
    # Up to two clearly different texts the search also wrote (usefulness.distinct_alternatives).
    alternatives: tuple[str, ...] = ()

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds else 0.0


@dataclass
class PreparedBatch:
    input_ids: list[list[int]]
    truncated: list[bool]
    settings: GenerationSettings
    # Each document's stopping and banning rules (ml.stopping); None where the settings
    # ask for none.
    rules: list[DocumentRules | None] = field(default_factory=list)
    # Each document's seed (ml.sampling.document_seed), stored with sampled texts; empty for
    # the engine's own beam search.
    seeds: list[int] = field(default_factory=list)
    # What picked the tokens of greedy decoding and sampling, with their log-probabilities.
    decoder: Any = None
    # Per document, the other hypotheses beam search held at its end (token ids, best first).
    others: list[list[list[int]]] = field(default_factory=list)


def pick_device(requested: str = "auto") -> str:
    """Return the torch device to use: CUDA when asked for `auto` and present, else CPU."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"device {requested!r} asked for, but no CUDA GPU is available")
    return requested


class TextGenerator:
    """A loaded model and tokenizer, generating continuations for batches of prompts.

    Build one per process and reuse it: loading is the slow part. Calls from
    several threads take turns at the model (`ml.turns`): one batch at a time,
    and a short call (`generate(..., short=True)`) runs between two decoding
    steps of a batch instead of waiting for all of it.

    On a CPU in float32 its linear layers' weights are packed for oneDNN
    (`kernels.pack_linear_weights`): they compute, and cannot be trained. A
    generator for fine-tuning is built with `pack_weights=False`.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        label: str = "",
        prompt_format: PromptFormat | None = None,
        device: str = "auto",
        threads: int | None = None,
        max_input_tokens: int | None = None,
        dtype: str = "auto",
        max_rows: int | None = None,
        own_beam_search: bool = True,
        cpu_linear: str = "onednn",
        pack_weights: bool = True,
    ):
        import torch

        from .lazy import model_classes, one_load_at_a_time

        AutoModelForCausalLM, AutoTokenizer = model_classes()

        self.model_dir = Path(model_dir)
        self.label = label or self.model_dir.name
        self.prompt_format = prompt_format or PromptFormat()
        check_loadable_folder(self.model_dir)
        if threads:
            torch.set_num_threads(threads)
        self.device = pick_device(device)
        torch_dtype = self._pick_dtype(dtype, torch)
        if cpu_linear not in CPU_LINEAR_KERNELS:
            raise ModelLoadError(
                f"GENERATION_CPU_LINEAR must be one of {', '.join(CPU_LINEAR_KERNELS)}; "
                f"got {cpu_linear!r}"
            )

        started = time.perf_counter()
        try:
            with one_load_at_a_time(), without_progress_bars():
                self.tokenizer = AutoTokenizer.from_pretrained(
                    self.model_dir, local_files_only=True, trust_remote_code=False
                )
                drop_tokenizer_copies(self.tokenizer)
                # A float32 file wanted narrower on the CPU is converted a weight at a
                # time (memory.convert_parameters), not all of it beside its copy.
                narrowed = self.device == "cpu" and torch_dtype != torch.float32
                self.model = AutoModelForCausalLM.from_pretrained(
                    self.model_dir,
                    local_files_only=True,
                    trust_remote_code=False,
                    use_safetensors=True,
                    dtype=torch.float32 if narrowed and self._stored_float32() else torch_dtype,
                )
                if self.model.dtype != torch_dtype:
                    convert_parameters(
                        self.model, torch_dtype, self.model_dir.glob("*.safetensors")
                    )
        except (OSError, ValueError, KeyError) as error:
            raise ModelLoadError(f"cannot load the model in {self.model_dir}: {error}") from error
        self.model.to(self.device).eval()
        # The kernel of float32 linear layers on a CPU (see ml.kernels); None elsewhere.
        self.cpu_linear = None
        if self.device == "cpu" and self.model.dtype == torch.float32:
            self.cpu_linear = use_cpu_linear_kernel(
                self.model,
                cpu_linear,
                pack=pack_weights,
                files=list(self.model_dir.glob("*.safetensors")),
            )
        self.load_seconds = time.perf_counter() - started

        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self._check_format(self.prompt_format)
        self.context_length = self._context_length()
        self.max_input_tokens = max_input_tokens
        # Beam search runs in srcflask's own loop (ml.decoding): each prompt prefilled once,
        # every document's beams decoded together, at most `max_rows` beams per step.
        self.own_beam_search = own_beam_search
        self.max_rows = max_rows or DEFAULT_MAX_ROWS
        # ... with each document's beams attending over its prompt once (see prompt_cache).
        self.folded = own_beam_search and self._fold_beams()
        # What parsing the tokenizer and the weights left behind, and the pages the
        # check of the folded attention read from the weights' files.
        release_freed_memory(self.model)
        # Re-entrant for batches: a caller holding `reserved()` may then call generate().
        self._turns = ModelTurns()
        log.info(
            "Loaded %s on %s in %.2fs (context %d tokens)",
            self.label,
            self.device,
            self.load_seconds,
            self.context_length,
        )

    def with_prompt_format(self, prompt_format: PromptFormat) -> TextGenerator:
        """The same loaded model, putting documents to it in another format."""
        self._check_format(prompt_format)
        other = copy.copy(self)  # shares the model, tokenizer and turns
        other.prompt_format = prompt_format
        return other

    def _check_format(self, prompt_format: PromptFormat) -> None:
        if prompt_format.templated and not self.tokenizer.chat_template:
            raise ModelLoadError(
                f"{self.label} has no chat template; use the raw prompt format for it"
            )

    def reserved(self):
        """Hold the model if it is free, without waiting: yields True, or False when busy."""
        return self._turns.reserved()

    # -- the pipeline ------------------------------------------------------------
    def generate(
        self,
        prompts: Sequence[str],
        settings: GenerationSettings | None = None,
        progress: ProgressCallback | None = None,
        *,
        short: bool = False,
    ) -> list[GenerationResult]:
        """Generate a continuation for every prompt, as one batch.

        A `short` call (an admin trying a prompt) does not wait for a running batch:
        it runs between two of the batch's decoding steps. Each result's `seconds`
        is the time spent generating, without any wait for the model.
        """
        settings = settings or GenerationSettings()
        if not prompts:
            return []
        batch = self.preprocess(prompts, settings)
        if short:
            with self._turns.short_call():
                started = time.perf_counter()
                output = self._forward(batch, progress)
                seconds = time.perf_counter() - started
        else:
            with self._turns.batch():
                started = time.perf_counter()
                output = self._forward(batch, progress, give_way=self._turns.give_way)
                seconds = time.perf_counter() - started
        return self.postprocess(batch, output, seconds)

    def generate_continuously(
        self,
        first: Sequence[tuple[Any, str]],
        settings: GenerationSettings,
        *,
        more: Callable[[int], Sequence[tuple[Any, str]]] | None = None,
        on_result: Callable[[Any, GenerationResult], None],
        on_progress: Callable[[dict[Any, int]], None] | None = None,
    ) -> None:
        """Generate for `(key, prompt)` pairs, taking more as room frees; hand each over when done.

        With beam search (srcflask's own loop) `more(n)` is asked at every step
        boundary for up to `n` new prompts, which join the running batch at once,
        and `on_result(key, result)` is called the step a document ends.
        `on_progress({key: tokens})` follows every step. Other strategies run
        batch after batch: `first`, then whatever `more` hands over, until nothing.
        A prompt that cannot be prepared (empty) raises PromptError for its batch.
        """
        if settings.strategy != "beam" or not self.own_beam_search:
            batch = list(first)
            while batch:
                progress = None
                if on_progress is not None:
                    keys = [key for key, _ in batch]

                    def progress(done: int, total: int, keys=keys) -> None:
                        on_progress(dict.fromkeys(keys, done))

                results = self.generate([prompt for _, prompt in batch], settings, progress)
                for (key, _), result in zip(batch, results, strict=True):
                    on_result(key, result)
                room = max(1, self.max_rows // settings.num_beams)
                batch = list(more(room)) if more else []
            return
        from .decoding import Request

        prepared: dict[Any, tuple[PreparedBatch, float, int]] = {}
        running: set[Any] = set()

        def requests(pairs) -> list[Request]:
            pairs = list(pairs)
            sharing = len(running) + len(pairs)  # documents in the batch it joins
            out = []
            for key, prompt in pairs:
                batch = self.preprocess([prompt], settings)
                prepared[key] = (batch, time.perf_counter(), sharing)
                out.append(self._request(key, batch, 0))
            running.update(r.key for r in out)
            return out

        def on_step(documents) -> None:
            if on_progress is not None:
                try:
                    on_progress({d.request.key: d.generated for d in documents})
                except Exception:  # progress is a nicety: never let it break generation
                    log.exception("progress callback failed")
            self._turns.give_way()

        def finished(done) -> None:
            batch, started, companions = prepared.pop(done.key)
            running.discard(done.key)
            [result] = self.postprocess(
                batch, [done.token_ids], time.perf_counter() - started, others=[done.others]
            )
            on_result(done.key, dataclasses.replace(result, batch_size=companions))

        loop = self._beam_loop(settings)
        with self._turns.batch():
            loop.run(
                requests(first),
                more=(lambda count: requests(more(count))) if more else None,
                on_result=finished,
                on_step=on_step,
            )

    def preprocess(self, prompts: Sequence[str], settings: GenerationSettings) -> PreparedBatch:
        """Check, format, tokenize and truncate the prompts."""
        for index, prompt in enumerate(prompts):
            self.check_prompt(prompt, index=index if len(prompts) > 1 else None)
        budget = self.input_budget(settings)
        input_ids, truncated = [], []
        for prompt in prompts:
            ids, was_truncated = self._encode(prompt, budget)
            input_ids.append(ids)
            truncated.append(was_truncated)
        rules: list[DocumentRules | None] = [None] * len(prompts)
        if settings.stop_at != "length" or settings.ban_markup:
            vocabulary = self.vocabulary_rules()
            rules = [
                vocabulary.for_document(
                    prompt, stop_at=settings.stop_at, ban_markup=settings.ban_markup
                )
                for prompt in prompts
            ]
        seeds = []
        if settings.strategy != "beam" or not self.own_beam_search:
            from .sampling import document_seed

            seeds = [document_seed(settings, prompt) for prompt in prompts]
        return PreparedBatch(input_ids, truncated, settings, rules, seeds)

    def vocabulary_rules(self) -> VocabularyRules:
        """The vocabulary read for stopping and banning rules (once per loaded model)."""
        if getattr(self, "_vocabulary_rules", None) is None:
            size = self.model.get_output_embeddings().weight.shape[0]
            self._vocabulary_rules = VocabularyRules(self.tokenizer, min(size, len(self.tokenizer)))
        return self._vocabulary_rules

    def _guard(self, rules: DocumentRules | None):
        """What the beam loop calls to keep a beam from starting an invented phone number."""
        if rules is None or not rules.digits:
            return None
        return lambda token_ids: rules.guards_digits(self.decode(token_ids[-40:]))

    def _refuse(self, rules: DocumentRules | None):
        """What the beam loop calls to drop a beam that invents contact details."""
        if rules is None or not rules.digits:
            return None
        return lambda token_ids: rules.invents_contact(self.decode(token_ids))

    def _watch(self, rules: DocumentRules | None):
        """What the beam loop calls to ask whether a document's text should end here."""
        if rules is None or not rules.watches:
            return None
        return lambda token_ids: rules.stop(self.decode(token_ids)) is not None

    def _forward(
        self,
        batch: PreparedBatch,
        progress: ProgressCallback | None,
        give_way: Callable[[], None] | None = None,
    ):
        if batch.settings.strategy == "beam" and self.own_beam_search:
            return self._forward_beams(batch, progress, give_way)
        return self._forward_with_transformers(batch, progress, give_way)

    def _forward_beams(
        self,
        batch: PreparedBatch,
        progress: ProgressCallback | None,
        give_way: Callable[[], None] | None,
    ) -> list[list[int]]:
        """Beam search in srcflask's loop: the same tokens as `generate()`, in less time."""
        settings = batch.settings
        loop = self._beam_loop(settings)

        def on_step(documents) -> None:
            if progress is not None:
                # The least advanced document: exact for documents that started together.
                done = min(document.generated for document in documents)
                try:
                    progress(min(done, settings.max_new_tokens), settings.max_new_tokens)
                except Exception:  # progress is a nicety: never let it break generation
                    log.exception("progress callback failed")
            if give_way is not None:
                give_way()

        requests = [self._request(index, batch, index) for index in range(len(batch.input_ids))]
        finished = {result.key: result for result in loop.run(requests, on_step=on_step)}
        batch.others = [finished[index].others for index in range(len(requests))]
        return [finished[index].token_ids for index in range(len(requests))]

    def _request(self, key, batch: PreparedBatch, index: int):
        from .decoding import Request

        rules = batch.rules[index] if batch.rules else None
        return Request(
            key,
            batch.input_ids[index],
            banned=rules.banned if rules else (),
            watch=self._watch(rules),
            watch_after=rules.boundary if rules and rules.watches else frozenset(),
            refuse=self._refuse(rules),
            refuse_after=rules.digits if rules else frozenset(),
            guard=self._guard(rules),
            guarded=tuple(sorted(rules.digits)) if rules else (),
        )

    def _beam_loop(self, settings: GenerationSettings):
        from .decoding import BeamConfig, BeamSearchLoop

        config = BeamConfig(
            num_beams=settings.num_beams,
            max_new_tokens=settings.max_new_tokens,
            eos_token_ids=tuple(self._eos_token_ids()),
            no_repeat_ngram_size=settings.no_repeat_ngram_size,
            repetition_penalty=settings.repetition_penalty,
            early_stopping=settings.early_stopping,
        )
        return BeamSearchLoop(
            self.model, config, device=self.device, max_rows=self.max_rows, folded=self.folded
        )

    def _fold_beams(self) -> bool:
        """Route beam search's attention through `folded_attention` where the model agrees."""
        from .decoding import folding_agrees
        from .prompt_cache import fold_beams, unfold_beams

        if not fold_beams(self.model):
            return False
        ids = self.tokenizer("The quick brown fox jumps over the lazy dog.")["input_ids"]
        if folding_agrees(self.model, self.device, [ids, ids[:3]]):
            return True
        log.warning("%s: folded attention disagrees with the model's; not folding", self.label)
        unfold_beams(self.model)
        return False

    def _forward_with_transformers(
        self,
        batch: PreparedBatch,
        progress: ProgressCallback | None,
        give_way: Callable[[], None] | None = None,
    ):
        """Greedy decoding and sampling through `generate()`, each row picked by `RowDecoder`
        (`ml.sampling`): a seed per document, and `best_of` candidates per document.

        Beam search goes here only for a generator made with `own_beam_search=False`:
        transformers' own search, the reference the engine's loop is tested against,
        with the stopping rules applied to its text afterwards."""
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        from .sampling import BanTokens, GuardTokens, RowDecoder, StopRows

        settings = batch.settings
        if settings.strategy == "beam":
            return self._reference_beam_search(batch, progress, give_way)
        copies = settings.best_of
        rows = [ids for ids in batch.input_ids for _ in range(copies)]
        padded = self.tokenizer.pad({"input_ids": rows}, padding=True, return_tensors="pt").to(
            self.device
        )
        prompt_length = padded["input_ids"].shape[1]
        config = GenerationConfig(
            max_new_tokens=settings.max_new_tokens,
            no_repeat_ngram_size=settings.no_repeat_ngram_size,
            repetition_penalty=settings.repetition_penalty,
            do_sample=False,
            num_beams=1,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self._eos_token_ids(),
            bos_token_id=self.tokenizer.bos_token_id,
        )
        seeds = [seed + candidate for seed in batch.seeds for candidate in range(copies)]
        rules = [
            rule for rule in batch.rules or [None] * len(batch.input_ids) for _ in range(copies)
        ]
        decoder = RowDecoder(settings, seeds, self.device)
        processors = LogitsProcessorList()
        if any(rule and rule.banned for rule in rules):
            processors.append(
                BanTokens([rule.banned if rule else () for rule in rules], self.device)
            )
        if any(rule and rule.digits for rule in rules):
            processors.append(GuardTokens(rules, prompt_length, self.decode, self.device))
        processors.append(decoder)
        criteria = StoppingCriteriaList()
        if any(rule and rule.watches for rule in rules):
            criteria.append(StopRows(rules, prompt_length, self.decode))
        if progress is not None:
            criteria.append(_ProgressReporter(prompt_length, settings, progress))
        if give_way is not None:
            criteria.append(_GiveWay(give_way))
        with torch.inference_mode():
            output = self.model.generate(
                **padded,
                generation_config=config,
                logits_processor=processors,
                stopping_criteria=criteria,
            )
        batch.decoder = decoder
        return output[:, prompt_length:].cpu()

    def _reference_beam_search(self, batch: PreparedBatch, progress, give_way):
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        settings = batch.settings
        padded = self.tokenizer.pad(
            {"input_ids": batch.input_ids}, padding=True, return_tensors="pt"
        ).to(self.device)
        config = GenerationConfig(
            **settings.generate_kwargs(),
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self._eos_token_ids(),
            bos_token_id=self.tokenizer.bos_token_id,
        )
        criteria = StoppingCriteriaList()
        if progress is not None:
            criteria.append(_ProgressReporter(padded["input_ids"].shape[1], settings, progress))
        if give_way is not None:
            criteria.append(_GiveWay(give_way))
        with torch.inference_mode():
            output = self.model.generate(
                **padded, generation_config=config, stopping_criteria=criteria
            )
        return output[:, padded["input_ids"].shape[1] :].cpu()

    def postprocess(
        self,
        batch: PreparedBatch,
        output,
        seconds: float,
        *,
        others: list[list[list[int]]] | None = None,
    ) -> list[GenerationResult]:
        """Turn generated token ids into machine text (continuation only, cleaned up).

        With `best_of`, each document's candidates are ranked by the model's mean
        log-probability less a penalty for each check they fail (`candidate_score`),
        and the best is kept. The other candidates, or the other hypotheses of beam
        search (`others`, else `batch.others`), give each result its clearly
        different `alternatives` (`usefulness.distinct_alternatives`).
        """
        from .usefulness import distinct_alternatives

        others = others if others is not None else batch.others
        rows = output.tolist() if hasattr(output, "tolist") else output
        copies = len(rows) // max(len(batch.input_ids), 1) if rows else 1
        decoder = batch.decoder if copies > 1 else None
        results = []
        for index, (prompt_ids, truncated) in enumerate(
            zip(batch.input_ids, batch.truncated, strict=True)
        ):
            rules = batch.rules[index] if batch.rules else None
            candidates = []
            for candidate in range(copies):
                row = index * copies + candidate
                result = self._result(
                    batch, index, rows[row], prompt_ids, truncated, rules, seconds
                )
                score = 0.0
                if decoder is not None:
                    score = candidate_score(
                        decoder.mean_log_prob(row, result.generated_tokens),
                        result.text,
                        rules.document if rules else "",
                    )
                candidates.append((score, -candidate, result))
            ranked = [c[2] for c in sorted(candidates, key=lambda c: c[:2], reverse=True)]
            texts = [other.text for other in ranked[1:]]
            for ids in others[index] if others else []:
                other = self._result(batch, index, ids, prompt_ids, truncated, rules, seconds)
                texts.append(other.text)
            document = rules.document if rules else ""
            alternatives = tuple(distinct_alternatives(ranked[0].text, texts, document))
            results.append(dataclasses.replace(ranked[0], alternatives=alternatives))
        return results

    def _result(self, batch, index, row, prompt_ids, truncated, rules, seconds):
        stop_ids = set(self._eos_token_ids()) | {self.tokenizer.pad_token_id}
        new_ids, finish = [], "length"
        for token in row:
            if token in stop_ids:
                finish = "eos"
                break
            new_ids.append(token)
        raw_text = self.decode(new_ids)
        text, cut = raw_text, None
        if rules is not None:  # on the raw text: the paragraph break it ended at counts
            text, cut = rules.finish(without_broken_characters(raw_text))
            finish = cut or finish
        text = clean_output(
            text,
            cut_by_length=finish == "length",
            strip_replies=self.prompt_format.templated,
        )
        settings = batch.settings.to_dict()
        if batch.seeds and batch.settings.strategy == "sample":  # greedy needs no seed
            settings["seed"] = batch.seeds[index]
        return GenerationResult(
            text=text,
            prompt_tokens=len(prompt_ids),
            generated_tokens=len(new_ids),
            truncated=truncated,
            finish_reason=finish,
            seconds=seconds,
            batch_size=len(batch.input_ids),
            model_version=self.label,
            settings=settings,
            token_ids=tuple(new_ids),
            raw_text=raw_text,
        )

    def decode(self, token_ids: Sequence[int]) -> str:
        """Decode generated tokens, leaving out a character whose bytes were cut off."""
        ids = list(token_ids)
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        # A multi-byte character split across tokens decodes to U+FFFD until its last
        # byte arrives: when the cap cut it, drop its first bytes (at most three tokens).
        for _ in range(3):
            if not (ids and text.endswith(BROKEN_CHARACTER)):
                break
            ids.pop()
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return text

    def score(self, context: str, continuation: str) -> tuple[float, int]:
        """Bits the model needs to write `continuation` after `context`, and over how many chars.

        The context is formatted as for generation (raw, chat or continue); the
        continuation follows it, after a paragraph break in the raw format.
        Bits divided by characters is bits per character, which compares across
        tokenizers. When the two do not fit in the model's context, the
        oldest tokens go, and only the continuation's characters still there count.
        """
        import torch

        ids, first, chars = self.continuation_ids(context, continuation)
        with self._turns.batch(), torch.inference_mode():
            input_ids = torch.tensor([ids], device=self.device)
            logits = self.model(input_ids).logits[0, first - 1 : -1].float()
            log_probs = torch.log_softmax(logits, dim=-1)
            targets = input_ids[0, first:]
            nats = -log_probs.gather(1, targets.unsqueeze(1)).sum().item()
        return nats / math.log(2), chars

    def continuation_ids(self, context: str, continuation: str) -> tuple[list[int], int, int]:
        """Token ids of `context` formatted as for generation, then `continuation`.

        Returns the ids, the index of the continuation's first token and how many
        of its characters the ids still hold (the oldest tokens go when the two do
        not fit in the model's context). Scoring and fine-tuning both use this.
        """
        prefix, document, suffix = self.format_prompt(context)
        if not self.prompt_format.templated:
            suffix += "\n\n"
        head = prefix + document + suffix
        encoded = self.tokenizer(
            head + continuation,
            add_special_tokens=not self.prompt_format.templated,
            return_offsets_mapping=True,
        )
        ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
        # Tokens that end inside the continuation are its tokens (one straddling the
        # boundary counts as the continuation's).
        first = next(i for i, (_, end) in enumerate(offsets) if end > len(head))
        dropped = max(0, len(ids) - self.context_length)
        ids, offsets = ids[dropped:], offsets[dropped:]
        first = max(1, first - dropped)
        chars = len(head) + len(continuation) - max(len(head), offsets[first][0])
        return ids, first, chars

    # -- helpers -----------------------------------------------------------------
    @staticmethod
    def check_prompt(prompt: str, index: int | None = None) -> None:
        """Refuse a prompt that is not text or holds nothing but whitespace."""
        where = f"prompt {index + 1}" if index is not None else "the prompt"
        if not isinstance(prompt, str):
            raise PromptError(f"{where} must be text")
        if not prompt.strip():
            raise PromptError(f"{where} is empty: there is nothing to continue")

    def input_budget(self, settings: GenerationSettings) -> int:
        """How many prompt tokens fit beside `max_new_tokens` in the model's context."""
        limit = self.context_length
        if self.max_input_tokens:
            limit = min(limit, self.max_input_tokens + settings.max_new_tokens)
        budget = limit - settings.max_new_tokens
        if budget < 8:
            raise SettingsError(
                "max_new_tokens",
                f"must leave room for the prompt in this model's {self.context_length}-token "
                f"context (at most {self.context_length - 8})",
            )
        return budget

    def format_prompt(self, document: str) -> tuple[str, str, str]:
        """Split the model input around the document: (prefix, document, suffix)."""
        if not self.prompt_format.templated:
            return "", document, ""
        messages = [
            {
                "role": "system",
                "content": self.prompt_format.system_prompt or DEFAULT_SYSTEM_PROMPT,
            },
            {"role": "user", "content": _SENTINEL},
        ]
        templated = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        prefix, _, suffix = templated.partition(_SENTINEL)
        if self.prompt_format.kind == "continue":
            suffix += document_tail(document)
        return prefix, document, suffix

    def _encode(self, prompt: str, budget: int) -> tuple[list[int], bool]:
        prefix, document, suffix = self.format_prompt(prompt)
        if not self.prompt_format.templated:
            ids = self.tokenizer(document)["input_ids"]
            head = []
            if (
                ids
                and ids[0] == self.tokenizer.bos_token_id
                and self.tokenizer.bos_token_id is not None
            ):
                head, ids = ids[:1], ids[1:]  # keep the start-of-text token when cutting
            room = budget - len(head)
            return head + ids[-room:], len(ids) > room
        encode = self.tokenizer
        prefix_ids = encode(prefix, add_special_tokens=False)["input_ids"]
        document_ids = encode(document, add_special_tokens=False)["input_ids"]
        suffix_ids = encode(suffix, add_special_tokens=False)["input_ids"]
        room = budget - len(prefix_ids) - len(suffix_ids)
        if room < 1:
            raise SettingsError("max_new_tokens", "leaves no room for the document in the context")
        return prefix_ids + document_ids[-room:] + suffix_ids, len(document_ids) > room

    def _eos_token_ids(self) -> list[int]:
        configured = self.model.generation_config.eos_token_id
        ids = configured if isinstance(configured, list) else [configured]
        ids = [i for i in ids if i is not None]
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    def _context_length(self) -> int:
        config = self.model.config
        for name in ("max_position_embeddings", "n_positions", "n_ctx"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return min(self.tokenizer.model_max_length, 2048)

    def _stored_float32(self) -> bool:
        """Whether the folder's weights are float32 (its config says so)."""
        try:
            config = json.loads((self.model_dir / "config.json").read_text())
        except (OSError, ValueError):
            return False
        return (config.get("dtype") or config.get("torch_dtype")) == "float32"

    def _pick_dtype(self, dtype: str, torch):
        if dtype == "auto":
            # bfloat16 on a GPU is fast and accurate enough; CPUs are fastest in float32.
            return torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        known = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
        if dtype not in known:
            raise ModelLoadError(
                f"GENERATION_DTYPE must be auto, {', '.join(known)}; got {dtype!r}"
            )
        return known[dtype]


# What a failed check costs a best-of-N candidate, in nats per token of the model's score.
CHECK_PENALTY = 1.0
SPECIFIC_PENALTY = 0.1


def candidate_score(mean_log_prob: float, text: str, document: str) -> float:
    """How good a sampled candidate is: the model's mean log-probability of it, less a
    penalty for each editor's check it fails (`ml.usefulness`)."""
    from . import usefulness
    from .continuation import ends_cleanly

    if not text.strip():
        return -math.inf
    found = usefulness.assess(text, document)
    failed = found.degenerate + bool(found.markup) + bool(found.contacts) + (not ends_cleanly(text))
    return mean_log_prob - CHECK_PENALTY * failed - SPECIFIC_PENALTY * len(found.specifics)


def document_prompt(title: str, body: str) -> str:
    """What the model continues for a document: the title, then the body."""
    return f"{title}\n\n{body}".strip()


def has_text_to_continue(body: str) -> bool:
    """Whether a body holds anything to continue (an empty one is never sent to the model)."""
    return bool(body and body.strip())


def document_tail(document: str) -> str:
    """The document's last sentence (at most CONTINUE_TAIL_CHARS), to begin the assistant's turn."""
    last_paragraph = document.rstrip().rsplit("\n\n", 1)[-1]
    sentences = split_sentences(last_paragraph)
    tail = sentences[-1].strip() if sentences else ""
    return tail[-CONTINUE_TAIL_CHARS:].lstrip()


class _GiveWay:
    """A stopping criterion that never stops: between two steps, it lets short calls run."""

    def __init__(self, give_way: Callable[[], None]):
        self.give_way = give_way

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        self.give_way()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class _ProgressReporter:
    """A stopping criterion that never stops: it reports how many tokens exist so far."""

    def __init__(
        self, prompt_length: int, settings: GenerationSettings, callback: ProgressCallback
    ):
        self.prompt_length = prompt_length
        self.max_new_tokens = settings.max_new_tokens
        self.callback = callback

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = input_ids.shape[1] - self.prompt_length
        try:
            self.callback(min(done, self.max_new_tokens), self.max_new_tokens)
        except Exception:  # progress is a nicety: never let it break generation
            log.exception("progress callback failed")
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
