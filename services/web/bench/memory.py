"""Benchmark: where a run's resident memory goes, phase by phase of the decoding loop.

Runs the first N realistic documents (bench/documents.jsonl) through the engine
at once, as `generation.py --limit N --plans engine` does, while a thread
reads the process's resident memory (VmRSS) every few milliseconds. Each
sample is tagged with what the loop was doing then:

- prefill: reading joining prompts (a pass's activations, its padded cache);
- documents join / leave: the cache's buffers replaced for them;
- fit: the cache making room for the beams' tokens, or cutting columns;
- step forward: a decoding step's pass (its logits come out of it);
- step search: picking the next beams from those logits;
- loop: the rest (results handed over, memory given back).

For each phase it prints the highest sample and, at that moment, the step,
the documents running and the megabytes of the cache's keys and values. For
the highest sample of all it also splits the keys and values (srcflask's
folded cache): padding (each document's row is as wide as the longest
prompt's) and slots past the highest one a document's beams hold (the beam
region is as wide as the widest document needs).

Linux only (/proc/self/status). The sampler's thread and imports add tens
of megabytes to what `generation.py` reports. Not a test: run it by hand.

    cd services/web
    ../../.venv/bin/python bench/memory.py --limit 16
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # generation.py's helpers

MIB = 2**20


def resident_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise SystemExit("this benchmark reads /proc/self/status (Linux)")


def cache_layout(cache) -> dict:
    """The megabytes of a cache's keys and values, and (folded cache) how much of them
    is padding and slots past the highest one each document's beams hold."""
    if cache is None:
        return {"documents": 0, "kv": 0.0}
    rows = cache.rows
    layers = [layer for layer in cache.layers if getattr(layer, "keys", None) is not None]
    if not layers:  # the fallback cache: each document's prompt and beams apart
        total = sum(
            k.nbytes + v.nbytes
            for layer in cache.layers
            for part in (layer.prompts, layer.generated)
            for k, v in part
        )
        return {"documents": cache.documents, "kv": total / MIB}
    held = rows._held()  # (documents, beams, tokens): a slot, or `slots` for none
    in_use = [row[row < rows.slots] for row in held]
    needed = [int(slots.max()) + 1 if slots.numel() else 0 for slots in in_use]
    padding = unheld = total = 0
    for layer in layers:
        column = layer.keys[0, :, 0].nbytes * 2  # one document's keys and values, one position
        total += layer.keys.nbytes + layer.values.nbytes
        padding += sum(layer.width - stored for stored in layer.stored) * column
        unheld += sum(rows.slots - need for need in needed) * column
    return {
        "documents": cache.documents,
        "kv": total / MIB,
        "padding": padding / MIB,
        "unheld_slots": unheld / MIB,
        "slots": rows.slots,
    }


class Sampler:
    """Resident memory every `every` seconds, the highest per phase with the loop's state."""

    def __init__(self, every: float):
        self.every = every
        self.phase = "load"
        self.step = 0
        self.layout: dict = {"documents": 0, "kv": 0.0}
        self.peaks: dict[str, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        mib, phase = resident_mib(), self.phase
        if mib > self.peaks.get(phase, {}).get("mib", 0.0):
            self.peaks[phase] = {"mib": mib, "step": self.step, **self.layout}

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(self.every)

    @contextlib.contextmanager
    def during(self, phase: str):
        outer, self.phase = self.phase, phase
        try:
            yield
        finally:
            self.sample()  # the phase's last moment, however short it was
            self.phase = outer


@contextlib.contextmanager
def tagged(sampler: Sampler):
    """The decoding loop's and the folded cache's methods, tagging the sampler's phases
    (and restored afterwards)."""
    from srcflask.ml import decoding, prompt_cache

    loop, cache = decoding.BeamSearchLoop, prompt_cache.FoldedPromptCache
    originals = {
        (loop, "_prefill"): "prefill",
        (loop, "_step"): "step search",
        (loop, "_forward"): None,  # a step's pass, or a prefill's (tagged by _prefill)
        (cache, "add"): "documents join",
        (cache, "select"): "documents leave",
        (cache, "forward_inputs"): "fit",
    }
    saved = {key: getattr(*key) for key in originals}

    def wrap(key, phase):
        method = saved[key]

        def tagged_method(self, *args, **kwargs):
            if key == (loop, "_forward"):
                if kwargs.get("into") is None:
                    return method(self, *args, **kwargs)
                sampler.step += 1
                sampler.layout = cache_layout(args[1])  # figures only: the cache is not kept
                with sampler.during("step forward"):
                    return method(self, *args, **kwargs)
            with sampler.during(phase):
                result = method(self, *args, **kwargs)
            if key[0] is cache:
                sampler.layout = cache_layout(self)
            return result

        return tagged_method

    for key, phase in originals.items():
        setattr(*key, wrap(key, phase))
    try:
        yield
    finally:
        for (owner, name), method in saved.items():
            setattr(owner, name, method)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=16, help="the first N documents")
    parser.add_argument("--dtype", default="float32", help="float32 or bfloat16")
    parser.add_argument("--max-new-tokens", type=int, help="instead of the preset's 100")
    parser.add_argument("--every", type=float, default=4.0, help="milliseconds between samples")
    parser.add_argument("--model", type=Path, help="a model folder (default: production)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    sampler = Sampler(args.every / 1000)
    sampler.start()
    from generation import load_inputs, production_model

    from srcflask.ml.engine import PromptFormat, TextGenerator
    from srcflask.ml.memory import release_freed_memory
    from srcflask.ml.settings import GenerationSettings

    if args.model:
        folder, fmt, system, label = args.model, "raw", None, args.model.name
    else:
        folder, fmt, system, label = production_model()
    texts = load_inputs("documents", args.limit)
    settings = GenerationSettings()
    if args.max_new_tokens:
        settings = settings.replace(max_new_tokens=args.max_new_tokens)
    generator = TextGenerator(
        folder, label=label, prompt_format=PromptFormat(fmt, system), dtype=args.dtype
    )
    release_freed_memory(generator.model)
    time.sleep(0.05)
    loaded = resident_mib()
    sampler.phase = "loop"
    started = time.perf_counter()
    try:
        with tagged(sampler):
            results = generator.generate(texts, settings)
    finally:
        sampler.stop()
    seconds = time.perf_counter() - started

    peaks = sampler.peaks
    loading = peaks.pop("load", {}).get("mib")
    top_phase = max(peaks, key=lambda phase: peaks[phase]["mib"])
    top = peaks[top_phase]
    print(
        f"model {label}, {len(texts)} documents, {generator.model.dtype}, {seconds:.1f} s, "
        f"{len(results)} texts"
    )
    print(f"loaded: {loaded:,.0f} MiB (peak while loading {loading or 0:,.0f} MiB)\n")
    print(f"{'phase':<16} {'top MiB':>8} {'step':>5} {'documents':>9} {'keys+values MiB':>16}")
    for phase, peak in sorted(peaks.items(), key=lambda item: -item[1]["mib"]):
        print(
            f"{phase:<16} {peak['mib']:8,.0f} {peak['step']:5d} {peak['documents']:9d} "
            f"{peak['kv']:16,.0f}"
        )
    rest = top["mib"] - loaded - top["kv"]
    print(
        f"\nat the top ({top_phase}, step {top['step']}, {top['documents']} documents): "
        f"{loaded:,.0f} loaded + {top['kv']:,.0f} keys and values + {rest:,.0f} the rest "
        "(logits, activations, a prefill's own cache, the allocator's)"
    )
    if "padding" in top:
        print(
            f"  of the keys and values: padding {top['padding']:,.0f} MiB, slots past the "
            f"highest a document's beams hold {top['unheld_slots']:,.0f} MiB "
            f"(a beam region of {top['slots']} slots)"
        )
    report = {
        "model": label,
        "documents": len(texts),
        "dtype": str(generator.model.dtype).removeprefix("torch."),
        "seconds": seconds,
        "loaded_mib": loaded,
        "loading_peak_mib": loading,
        "top_phase": top_phase,
        "phases": peaks,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
