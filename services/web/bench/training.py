"""Benchmark: fine-tuning the production model with LoRA and in full, side by side.

The examples are the realistic documents of bench/documents.jsonl, each with
the paragraph its author wrote next as the "editor's final text": the same
shape as the reviews srcflask learns from. A fifth of the documents is held
out (the split a training run makes). Each method runs in a process of its
own, so its peak memory is its own; the table gives the median seconds per
optimizer step, the whole time, peak resident memory, and the held-out bits
per character before and after.

    SRCFLASK_INSTANCE_PATH=... python bench/training.py --methods lora,full --epochs 2
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def examples():
    from srcflask.ml.quality import load_documents
    from srcflask.ml.training import Example

    return [
        Example(key=index, document_id=index, context=doc.prompt, target=doc.continuation)
        for index, doc in enumerate(load_documents(HERE / "documents.jsonl"))
    ]


def child(method: str, epochs: int, learning_rate: float, max_tokens: int) -> dict:
    """Train with `method` in this process; the figures as a dict."""
    sys.path.insert(0, str(HERE))
    import torch
    from generation import production_model

    from srcflask.ml.engine import PromptFormat, TextGenerator
    from srcflask.ml.training import (
        FineTuner,
        Hyperparameters,
        heldout_scores,
        split_by_document,
    )

    folder, prompt_format, system_prompt, label = production_model()
    hyper = Hyperparameters(
        method=method, epochs=epochs, learning_rate=learning_rate, max_tokens=max_tokens
    )
    training, heldout = split_by_document(examples(), hyper.heldout_share, hyper.seed)
    generator = TextGenerator(
        folder,
        label=label,
        prompt_format=PromptFormat(prompt_format, system_prompt),
        dtype="float32",
    )
    before = heldout_scores(generator, heldout)["bits_per_char"]
    loaded_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    steps: list[float] = []
    last = [time.perf_counter()]
    losses: list[float] = []

    def progress(step) -> bool:
        now = time.perf_counter()
        steps.append(now - last[0])
        last[0] = now
        losses.append(step.loss)
        print(
            f"  {method} step {step.step}/{step.total_steps} loss {step.loss:.3f} "
            f"{steps[-1]:.1f} s",
            file=sys.stderr,
            flush=True,
        )
        return True

    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        tuner = FineTuner(generator, training, hyper, Path(workdir))
        tuner.run(progress)
        seconds = time.perf_counter() - started
    trainable = sum(p.numel() for p in tuner.peft_model.parameters() if p.requires_grad)
    after = heldout_scores(generator, heldout)["bits_per_char"]
    return {
        "method": method,
        "model": label,
        "train_examples": len(training),
        "heldout_examples": len(heldout),
        "steps": len(steps),
        "median_step_s": statistics.median(steps),
        "total_s": seconds,
        "trainable_parameters": trainable,
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "loaded_mib": loaded_mib,
        "heldout_bpc_before": before,
        "heldout_bpc_after": after,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "threads": torch.get_num_threads(),
        "hyperparameters": hyper.as_dict(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default="lora,full")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, help="default: 2e-4 LoRA, 2e-5 full")
    parser.add_argument("--max-tokens", type=int, default=384)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rates = {"lora": 2e-4, "full": 2e-5}
    if args.child:
        rate = args.learning_rate or rates[args.child]
        print(json.dumps(child(args.child, args.epochs, rate, args.max_tokens)))
        return
    results = []
    for method in args.methods.split(","):
        command = [
            sys.executable,
            __file__,
            "--child",
            method,
            "--epochs",
            str(args.epochs),
            "--max-tokens",
            str(args.max_tokens),
        ]
        if args.learning_rate:
            command += ["--learning-rate", str(args.learning_rate)]
        done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first = results[0]
    print(
        f"model {first['model']}, {first['train_examples']} documents to learn from, "
        f"{first['heldout_examples']} held out, {args.epochs} epochs, "
        f"{first['threads']} threads"
    )
    print(
        f"{'method':<6} {'trainable':>12} {'s/step':>8} {'total s':>8} {'peak MiB':>9} "
        f"{'bpc before':>11} {'bpc after':>10}"
    )
    for r in results:
        print(
            f"{r['method']:<6} {r['trainable_parameters']:>12,} {r['median_step_s']:>8.1f} "
            f"{r['total_s']:>8.0f} {r['peak_mib']:>9.0f} {r['heldout_bpc_before']:>11.3f} "
            f"{r['heldout_bpc_after']:>10.3f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
