"""Benchmark: ways of writing machine text for the same documents, side by side in one run.

Plans (all with the same model, prompts and preset):

- original: what the replaced system did, loading the model and tokenizer from
  disk for every document, one document at a time (slow; `--plans` picks it);
- plain:    `transformers` `generate()`, the model loaded once, one document at a time;
- batched:  `transformers` `generate()` on all documents in one padded batch;
- engine:   srcflask's TextGenerator: its own beam search, every prompt prefilled
  once and every document's beams decoded together; in float32 on a CPU its
  linear layers run on oneDNN (`--cpu-linear`, see srcflask/ml/kernels.py);
- engine-blas: the same engine with its float32 linear layers on PyTorch's BLAS,
  as plain and batched have them (a second copy of the model);
- engine-unpacked: the same engine on oneDNN with its weights as loaded, not
  packed in oneDNN's blocks (`pack_weights=False`; a second copy).

Two sets of inputs: `prompts` (the team's 16 short prompts, bench/prompts.txt)
and `documents` (the realistic documents of bench/documents.jsonl, hundreds of
tokens each, as a save puts them to the model: title, blank line, body).
Each plan runs REPEATS times in turn (1, 2, 3, 1, 2, 3, ...) so a noisy
neighbour hurts all of them alike; figures are medians, ratios are taken
between plans of the same run. The engine's texts are compared token for
token with plain `generate()`'s (engine-blas's and engine-unpacked's too). Not a
test: run it by hand.

    cd services/web
    ../../.venv/bin/python bench/generation.py --inputs documents --limit 8 --repeats 3

Without --model it uses the production model of the app's registry.
`--plans engine` alone also gives that plan's peak memory (the process's
maximum resident set, which the model's own weights are part of), and on
Linux the peak while loading and the peak while generating apart. On a GPU it
also gives the GPU memory the models hold and the peak while generating; each
plan first runs untimed on two inputs (`--warmup`), since a GPU's first
products pick their kernels, and plain and batched `generate()` run in
bfloat16 there unless `--plain-dtype float32` (for a float32 comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The team's 16 document-like benchmark prompts, one a line: figures compare across time.
PROMPTS_FILE = HERE / "prompts.txt"
DOCUMENTS_FILE = HERE / "documents.jsonl"
PLANS = ("original", "plain", "batched", "engine", "engine-blas", "engine-unpacked")


def load_inputs(kind: str, limit: int | None) -> list[str]:
    from srcflask.ml.engine import document_prompt
    from srcflask.ml.quality import load_documents

    if kind == "prompts":
        texts = [line.strip() for line in PROMPTS_FILE.read_text().splitlines() if line.strip()]
    else:
        texts = [document_prompt(d.title, d.body) for d in load_documents(DOCUMENTS_FILE)]
    return texts[:limit] if limit else texts


def production_model() -> tuple[Path, str, str | None, str]:
    """The production model's folder, prompt format, system line and label."""
    from srcflask import create_app
    from srcflask.registry import service as registry

    app = create_app()
    with app.app_context():
        version = registry.production_version()
        if version is None:
            raise SystemExit("No production model: run `flask --app srcflask models pull-default`")
        return (
            registry.artifact_path(version),
            version.prompt_format,
            version.system_prompt,
            version.label,
        )


def generate_alone(model, generator, ids: list[int], settings) -> list[int]:
    """Plain `generate()` for one prompt, as srcflask configures it; the new token ids."""
    import torch
    from transformers import GenerationConfig

    config = GenerationConfig(
        **settings.generate_kwargs(),
        pad_token_id=generator.tokenizer.pad_token_id,
        eos_token_id=generator._eos_token_ids(),
        bos_token_id=generator.tokenizer.bos_token_id,
    )
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([ids], device=model.device),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=model.device),
            generation_config=config,
        )
    return until_stop(out[0, len(ids) :].tolist(), generator)


def until_stop(row: list[int], generator) -> list[int]:
    stop = set(generator._eos_token_ids()) | {generator.tokenizer.pad_token_id}
    kept = []
    for token in row:
        if token in stop:
            break
        kept.append(token)
    return kept


def _status_mib(field: str) -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_resident_mib() -> float | None:
    """The process's peak resident memory since it started or since `reset_peak_resident`."""
    return _status_mib("VmHWM")


def reset_peak_resident() -> float | None:
    """Start the peak over from the current resident memory (Linux); that memory, or None."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return None
    return _status_mib("VmRSS")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--inputs", choices=["prompts", "documents"], default="prompts")
    parser.add_argument("--limit", type=int, help="only the first N inputs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--plans", default="plain,batched,engine", help=f"comma-separated, of {', '.join(PLANS)}"
    )
    parser.add_argument("--max-new-tokens", type=int, help="instead of the preset's 100")
    parser.add_argument("--dtype", default="float32", help="float32 or bfloat16 for the engine")
    parser.add_argument(
        "--plain-dtype",
        default="auto",
        help="the dtype of plain and batched generate(): auto (float32 on a CPU, bfloat16 "
        "on a GPU), float32 or bfloat16",
    )
    parser.add_argument(
        "--cpu-linear",
        default="onednn",
        help="the engine's float32 CPU linear kernel: onednn (the default) or blas",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        help="run each plan on this many inputs first, untimed (default: 2 on a GPU, 0 on a CPU)",
    )
    parser.add_argument("--model", type=Path, help="a model folder (default: production)")
    parser.add_argument("--prompt-format", choices=["raw", "chat", "continue"], default=None)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--reference",
        type=Path,
        help="a --json file of an earlier run: count the engine's texts identical to its",
    )
    args = parser.parse_args()
    plans = [p.strip() for p in args.plans.split(",") if p.strip()]
    unknown = set(plans) - set(PLANS)
    if unknown:
        parser.error(f"unknown plans: {', '.join(sorted(unknown))}")
    if args.reference and not args.reference.is_file():  # before minutes of generating
        parser.error(f"--reference: no file {args.reference}")

    import torch
    from transformers.utils import logging as hf_logging

    from srcflask.ml.engine import PromptFormat, TextGenerator
    from srcflask.ml.settings import GenerationSettings

    hf_logging.disable_progress_bar()
    if args.model:
        folder, fmt, system, label = args.model, args.prompt_format or "raw", None, args.model.name
    else:
        folder, fmt, system, label = production_model()
        fmt = args.prompt_format or fmt
    texts = load_inputs(args.inputs, args.limit)
    settings = GenerationSettings()  # the original system's beam search
    if args.max_new_tokens:
        settings = settings.replace(max_new_tokens=args.max_new_tokens)
    prompt_format = PromptFormat(fmt, system)

    def load(**changes) -> TextGenerator:
        """The engine as configured, with `changes` (each load counts in peak memory)."""
        options = {"dtype": args.dtype, "cpu_linear": args.cpu_linear, **changes}
        return TextGenerator(folder, label=label, prompt_format=prompt_format, **options)

    engine = load()
    batched = plain_model = engine_blas = unpacked = None
    # Loaded only when used: each counts in peak memory.
    if {"plain", "batched"} & set(plans):
        batched = load(dtype=args.plain_dtype, own_beam_search=False, cpu_linear="blas")
        plain_model = batched.model  # transformers' own generate() (float32 on a CPU)
    if "engine-blas" in plans:
        engine_blas = load(cpu_linear="blas")
    if "engine-unpacked" in plans:
        unpacked = load(pack_weights=False)
    prompt_ids = engine.preprocess(texts, settings).input_ids
    loading_peak_mib = peak_resident_mib()
    generating_from = reset_peak_resident()  # the resident memory the runs start from
    on_gpu = engine.device.startswith("cuda")
    if on_gpu:
        gpu_loaded_mib = torch.cuda.memory_allocated() / 2**20
        torch.cuda.reset_peak_memory_stats()
    lengths = sorted(len(ids) for ids in prompt_ids)

    print(f"model {label} ({fmt} prompts), {len(texts)} {args.inputs}, preset {settings}")
    print(
        f"prompt tokens: median {statistics.median(lengths):.0f}, "
        f"min {lengths[0]}, max {lengths[-1]}"
    )
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"device {engine.device}, engine dtype {engine.model.dtype}, "
        f"{args.repeats} repeats, load average {os.getloadavg()[0]:.2f}\n"
    )

    def run_original(count: int):
        from transformers import AutoModelForCausalLM as Auto

        out = []
        for ids in prompt_ids[:count]:
            model = Auto.from_pretrained(folder).eval()  # what every save used to do
            out.append(generate_alone(model, engine, ids, settings))
        return out

    def plain(count: int):
        return [generate_alone(plain_model, engine, ids, settings) for ids in prompt_ids[:count]]

    def through(generator):
        return lambda count: [r.token_ids for r in generator.generate(texts[:count], settings)]

    runs = {
        "original": run_original,
        "plain": plain,
        "batched": through(batched),
        "engine": through(engine),
        "engine-blas": through(engine_blas),
        "engine-unpacked": through(unpacked),
    }
    names = {
        "original": "original (load per document, one at a time)",
        "plain": "plain generate (loaded once, one at a time)",
        "batched": "generate, one padded batch",
        "engine": f"srcflask engine ({engine.cpu_linear or engine.model.dtype})",
        "engine-blas": "srcflask engine (blas)",
        "engine-unpacked": "srcflask engine (onednn, weights unpacked)",
    }
    seconds: dict[str, list[float]] = {name: [] for name in plans}
    outputs: dict[str, list[list[int]]] = {}
    warmup = args.warmup if args.warmup is not None else 2 * (engine.device != "cpu")
    if warmup:  # a GPU's first products pick their kernels: not part of any plan's time
        for name in plans:
            if name != "original":
                runs[name](min(warmup, len(texts)))
    for repeat in range(args.repeats):
        for name in plans:
            started = time.perf_counter()
            outputs[name] = [list(ids) for ids in runs[name](len(texts))]
            seconds[name].append(time.perf_counter() - started)
            print(
                f"  repeat {repeat + 1}: {names[name]:<46} {seconds[name][-1]:7.1f} s", flush=True
            )

    print(f"\n{'plan':<46} {'median s':>9} {'docs/min':>9} {'tokens/s':>9}")
    medians = {}
    for name in plans:
        median = medians[name] = statistics.median(seconds[name])
        tokens = sum(len(ids) for ids in outputs[name])
        print(
            f"{names[name]:<46} {median:9.1f} {len(texts) / median * 60:9.1f} "
            f"{tokens / median:9.1f}"
        )
    print()
    for name in plans:
        if name != "plain" and "plain" in medians:
            print(f"{name} vs plain one at a time: {medians['plain'] / medians[name]:.2f}x")
    for other in ("engine-blas", "engine-unpacked"):
        if "engine" in medians and other in medians:
            print(f"engine vs {other}: {medians[other] / medians['engine']:.2f}x")
    reference = outputs.get("plain") or outputs.get("batched")
    same = None
    if "engine" in outputs and reference is not None:
        same = sum(a == b for a, b in zip(outputs["engine"], reference, strict=True))
        print(f"engine texts identical to transformers': {same} of {len(texts)}")
    for other in ("engine-blas", "engine-unpacked"):
        if other in outputs and reference is not None:
            alike = sum(a == b for a, b in zip(outputs[other], reference, strict=True))
            print(f"{other} texts identical to transformers': {alike} of {len(texts)}")
    if "engine" in outputs and args.reference:
        earlier = json.loads(args.reference.read_text())
        theirs = earlier["outputs"]["engine"]
        matching = sum(a == b for a, b in zip(outputs["engine"], theirs, strict=False))
        print(
            f"engine texts identical to {args.reference.name}'s ({earlier['dtype']}): "
            f"{matching} of {min(len(theirs), len(texts))}"
        )
    # (The kernel's figure restarts with the peak: the loading peak counts too.)
    peak_mib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, loading_peak_mib or 0)
    print(f"peak resident memory of this process: {peak_mib:.0f} MiB")
    if generating_from is not None:
        print(
            f"  while loading the model(s): {loading_peak_mib:.0f} MiB; while generating: "
            f"{peak_resident_mib():.0f} MiB (from {generating_from:.0f} MiB loaded)"
        )
    gpu_peak_mib = None
    if on_gpu:
        gpu_peak_mib = torch.cuda.max_memory_allocated() / 2**20
        print(
            f"GPU memory: {gpu_loaded_mib:.0f} MiB allocated for the model(s), "
            f"{gpu_peak_mib:.0f} MiB at the peak of generating ({torch.cuda.get_device_name()})"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "model": label,
                    "inputs": args.inputs,
                    "count": len(texts),
                    "prompt_tokens": lengths,
                    "settings": settings.to_dict(),
                    "dtype": str(engine.model.dtype),
                    "cpu_linear": engine.cpu_linear,
                    "repeats": args.repeats,
                    "seconds": seconds,
                    "medians": medians,
                    "engine_identical": same,
                    "outputs": outputs,
                    "peak_mib": peak_mib,
                    "loading_peak_mib": loading_peak_mib,
                    "generating_peak_mib": peak_resident_mib() if generating_from else None,
                    "device": engine.device,
                    "gpu_peak_mib": gpu_peak_mib,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
