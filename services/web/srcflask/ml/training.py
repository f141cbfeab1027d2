"""Fine-tuning a model version on its reviewed machine text (no Flask).

The examples are reviews an editor accepted or edited: the document as the
model saw it, then the editor's final text. Training teaches the model to
write that final text after the document (the loss counts only its tokens),
with LoRA adapters (`peft`) on every linear projection of attention and MLP:
a few million trainable numbers instead of the whole model, so a step is cheaper,
the optimizer state is small, and a checkpoint is a few megabytes. At the end
the adapters are merged into the weights, and the result is an ordinary model
folder that the registry imports as a new version.

Training saves a checkpoint every few steps (adapters, optimizer, step); a
run started again with the same folder resumes from it. `on_progress` is
called after every step and may stop the run by returning False.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .engine import TextGenerator

CHECKPOINT = "checkpoint.pt"


class TrainingCancelled(Exception):
    """The run was asked to stop; its last checkpoint is kept."""


@dataclass(frozen=True)
class Example:
    """One reviewed machine text: the document as the model saw it and the editor's text."""

    key: int  # the review's id
    document_id: int
    context: str
    target: str


@dataclass(frozen=True)
class Hyperparameters:
    method: str = "lora"  # or "full": every weight trained (bench/training.py compares them)
    epochs: int = 2
    learning_rate: float = 2e-4
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    batch_size: int = 4  # examples per optimizer step (gradients accumulated)
    max_tokens: int = 384  # longest example; the oldest context tokens go first
    heldout_share: float = 0.2
    seed: int = 0
    checkpoint_every: int = 5  # optimizer steps

    def __post_init__(self) -> None:
        problems = []
        if self.method not in ("lora", "full"):
            problems.append(f"method must be lora or full, not {self.method!r}")
        if not (math.isfinite(self.learning_rate) and 0 < self.learning_rate <= 1):
            problems.append("learning_rate must be a number above 0 and at most 1")
        for name in ("epochs", "lora_rank", "lora_alpha", "batch_size", "checkpoint_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1")
        if self.max_tokens < 32:
            problems.append("max_tokens must be at least 32")
        if not 0 < self.heldout_share < 1:
            problems.append("heldout_share must be between 0 and 1")
        if problems:
            raise ValueError("; ".join(problems))

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Progress:
    step: int
    total_steps: int
    loss: float | None  # mean loss per target token over the last step


def split_by_document(
    examples: Sequence[Example], heldout_share: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """(training, held out): every review of a document falls on the same side."""
    documents = sorted({example.document_id for example in examples})
    random.Random(seed).shuffle(documents)  # noqa: S311 - reproducible, not secret
    count = max(1, round(len(documents) * heldout_share)) if len(documents) > 1 else 0
    heldout = set(documents[:count])
    return (
        [e for e in examples if e.document_id not in heldout],
        [e for e in examples if e.document_id in heldout],
    )


def snapshot(training: Sequence[Example], heldout: Sequence[Example]) -> dict:
    """The dataset as lineage records it: review ids on each side and a hash of the texts."""
    digest = hashlib.sha256()
    for side, examples in (("train", training), ("heldout", heldout)):
        for example in examples:
            record = [side, example.key, example.document_id, example.context, example.target]
            digest.update(json.dumps(record, ensure_ascii=False).encode())
    return {
        "train_review_ids": [e.key for e in training],
        "heldout_review_ids": [e.key for e in heldout],
        "train_documents": len({e.document_id for e in training}),
        "heldout_documents": len({e.document_id for e in heldout}),
        "sha256": digest.hexdigest(),
    }


class FineTuner:
    """Fine-tunes the model of `generator` on `training`; see the module's docstring."""

    def __init__(
        self,
        generator: TextGenerator,
        training: Sequence[Example],
        hyper: Hyperparameters,
        workdir: Path,
    ):
        if any(parameter.is_mkldnn for parameter in generator.model.parameters()):
            raise ValueError(
                "this generator's weights are packed for generating and cannot be trained: "
                "build the one to fine-tune with TextGenerator(..., pack_weights=False)"
            )
        self.generator = generator
        self.training = list(training)
        self.hyper = hyper
        self.workdir = Path(workdir)
        self.steps_per_epoch = math.ceil(len(self.training) / hyper.batch_size)
        self.total_steps = self.steps_for(len(self.training), hyper)

    @staticmethod
    def steps_for(examples: int, hyper: Hyperparameters) -> int:
        """Optimizer steps of a run over `examples` training examples."""
        return math.ceil(examples / hyper.batch_size) * hyper.epochs

    # -- encoding ------------------------------------------------------------------
    def encode(self, example: Example) -> tuple[list[int], int]:
        """The example's ids, cut to `max_tokens` from the left, and its first target index."""
        ids, first, _ = self.generator.continuation_ids(example.context, example.target)
        dropped = max(0, len(ids) - self.hyper.max_tokens)
        return ids[dropped:], max(1, first - dropped)

    def _order(self, epoch: int) -> list[Example]:
        order = list(self.training)
        random.Random(f"{self.hyper.seed}-{epoch}").shuffle(order)  # noqa: S311
        return order

    # -- training ------------------------------------------------------------------
    def run(self, on_progress: Callable[[Progress], bool] | None = None) -> int:
        """Train to the end (or from the last checkpoint); return the steps done in this call."""
        import torch
        from peft import LoraConfig, get_peft_model

        torch.manual_seed(self.hyper.seed)
        model = self.generator.model
        model.train()
        if self.hyper.method == "full":
            self.peft_model = model
        elif self.hyper.method == "lora":
            config = LoraConfig(
                r=self.hyper.lora_rank,
                lora_alpha=self.hyper.lora_alpha,
                lora_dropout=self.hyper.lora_dropout,
                target_modules="all-linear",  # attention and MLP projections, not the head
                task_type="CAUSAL_LM",
            )
            self.peft_model = get_peft_model(model, config)
        else:
            raise ValueError(f"method must be lora or full, not {self.hyper.method!r}")
        trainable = [p for p in self.peft_model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=self.hyper.learning_rate, weight_decay=0.0)
        step = self.started_at_step = self._resume(optimizer)
        done_here = 0
        while step < self.total_steps:
            epoch, index = divmod(step, self.steps_per_epoch)
            batch = self._order(epoch)[
                index * self.hyper.batch_size : (index + 1) * self.hyper.batch_size
            ]
            loss = self._step(batch, optimizer)
            step += 1
            done_here += 1
            if step % self.hyper.checkpoint_every == 0 or step == self.total_steps:
                self._save_checkpoint(step, optimizer)
            if on_progress is not None and not on_progress(
                Progress(step=step, total_steps=self.total_steps, loss=loss)
            ):
                self._save_checkpoint(step, optimizer)
                raise TrainingCancelled(f"stopped after step {step} of {self.total_steps}")
        self.peft_model.eval()
        return done_here

    def _step(self, batch: Sequence[Example], optimizer) -> float:
        import torch

        optimizer.zero_grad(set_to_none=True)
        encoded = [self.encode(example) for example in batch]
        targets = sum(len(ids) - first for ids, first in encoded)
        total = 0.0
        for ids, first in encoded:
            input_ids = torch.tensor([ids], device=self.generator.device)
            logits = self.peft_model(input_ids=input_ids).logits[0, first - 1 : -1].float()
            nats = torch.nn.functional.cross_entropy(logits, input_ids[0, first:], reduction="sum")
            (nats / targets).backward()  # the batch's mean loss per target token
            total += nats.item()
        optimizer.step()
        return total / max(targets, 1)

    def _save_checkpoint(self, step: int, optimizer) -> None:
        import torch
        from peft import get_peft_model_state_dict

        self.workdir.mkdir(parents=True, exist_ok=True)
        full = self.hyper.method == "full"
        state = {
            "step": step,
            "adapters": (
                self.peft_model.state_dict() if full else get_peft_model_state_dict(self.peft_model)
            ),
            "optimizer": optimizer.state_dict(),
            "hyperparameters": self.hyper.as_dict(),
        }
        partial = self.workdir / (CHECKPOINT + ".partial")
        torch.save(state, partial)
        partial.replace(self.workdir / CHECKPOINT)  # a worker killed mid-write leaves the old one

    def _resume(self, optimizer) -> int:
        import torch
        from peft import set_peft_model_state_dict

        path = self.workdir / CHECKPOINT
        if not path.exists():
            return 0
        state = torch.load(path, map_location=self.generator.device, weights_only=True)
        if state.get("hyperparameters") != self.hyper.as_dict():
            return 0  # another run's checkpoint: start over
        if self.hyper.method == "full":
            self.peft_model.load_state_dict(state["adapters"])
        else:
            set_peft_model_state_dict(self.peft_model, state["adapters"])
        optimizer.load_state_dict(state["optimizer"])
        return int(state["step"])

    @property
    def resumable_step(self) -> int:
        """The step the last checkpoint holds (0: none)."""
        import torch

        path = self.workdir / CHECKPOINT
        if not path.exists():
            return 0
        return int(torch.load(path, map_location="cpu", weights_only=True)["step"])

    def save_merged(self, folder: Path) -> Path:
        """Merge the adapters into the weights and save an ordinary model folder."""
        full = self.hyper.method == "full"
        merged = self.peft_model if full else self.peft_model.merge_and_unload()
        merged.eval()
        folder.mkdir(parents=True, exist_ok=True)
        merged.save_pretrained(folder, safe_serialization=True)
        self.generator.tokenizer.save_pretrained(folder)
        return folder


def heldout_scores(generator: TextGenerator, examples: Sequence[Example]) -> dict:
    """Bits per character of the editors' final texts after their documents (lower is better)."""
    bits = chars = 0.0
    for example in examples:
        example_bits, example_chars = generator.score(example.context, example.target)
        bits += example_bits
        chars += example_chars
    return {
        "examples": len(examples),
        "bits_per_char": bits / chars if chars else None,
    }
