"""Check: srcflask's beam search against transformers' on the tiny test models, on any device.

The test suite runs this comparison on the CPU (tests/test_decoding.py). This
script runs it where the tests do not: on a CUDA GPU, in float32 and in
bfloat16, with random prompts and presets, and also with documents joining a
running batch (`generate_continuously`). It prints, per model and dtype, how
many outputs are token-for-token identical, and exits 1 if the loop raised.
Not a test: run it by hand on the machine to check.

    cd services/web
    ../../.venv/bin/python bench/identity.py --device cuda --cases 12
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.append(str(HERE.parent))  # tests.tinymodels (after an installed srcflask)

KINDS = ("gpt2", "llama", "gemma3")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cases", type=int, default=12, help="random cases per model and dtype")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--show", action="store_true", help="describe each output that differs")
    args = parser.parse_args()

    from srcflask.ml.engine import TextGenerator
    from tests.test_decoding import random_prompt, random_settings
    from tests.tinymodels import build_model

    failures = 0
    with tempfile.TemporaryDirectory() as root:
        for kind in KINDS:
            folder = build_model(kind, Path(root) / kind)
            for dtype in args.dtypes.split(","):
                options = {"device": args.device, "dtype": dtype}
                reference = TextGenerator(folder, own_beam_search=False, **options)
                own = TextGenerator(folder, own_beam_search=True, **options)
                rng = random.Random(f"{kind}-{dtype}")
                same = total = 0
                started = time.perf_counter()
                for _ in range(args.cases):
                    settings = random_settings(rng)  # the test suite's random cases
                    prompts = [random_prompt(rng) for _ in range(rng.randint(1, 7))]
                    expected = [r.token_ids for r in reference.generate(prompts, settings)]
                    try:
                        got = [r.token_ids for r in own.generate(prompts, settings)]
                        joined = joining(own, prompts, settings)
                    except Exception as error:  # report every model and dtype, then fail
                        failures += 1
                        print(f"  {kind} {dtype}: the loop raised {error!r}")
                        continue
                    for number, (want, have, late) in enumerate(
                        zip(expected, got, joined, strict=True)
                    ):
                        same += (want == have) + (want == late)
                        total += 2
                        for way, tokens in (("in one batch", have), ("joining", late)):
                            if args.show and tokens != want:
                                # transformers pads a batch's prompts: its repetition
                                # penalty and n-gram bans see the padding too.
                                [alone] = reference.generate([prompts[number]], settings)
                                print(
                                    f"  differs {way}: prompt {number} of {len(prompts)}, "
                                    f"{settings}; at token {first_difference(want, tokens)}; "
                                    "the same as transformers' for the prompt alone: "
                                    f"{alone.token_ids == tokens}"
                                )
                print(
                    f"{kind:<7} {dtype:<9} on {own.device}: {same} of {total} outputs identical "
                    f"to transformers' ({time.perf_counter() - started:.1f} s, folded "
                    f"attention: {own.folded})",
                    flush=True,
                )
    return 1 if failures else 0


def first_difference(a, b) -> int:
    return next(
        (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
    )


def joining(generator, prompts, settings) -> list[tuple[int, ...]]:
    """The prompts fed one a step into a running batch (`generate_continuously`)."""
    results = {}
    waiting = list(enumerate(prompts))

    def more(count):
        taken = waiting[:1] if count else []
        del waiting[: len(taken)]
        return taken

    generator.generate_continuously(
        [waiting.pop(0)],
        settings,
        more=more,
        on_result=lambda key, result: results.__setitem__(key, result.token_ids),
    )
    return [results[index] for index in range(len(prompts))]


if __name__ == "__main__":
    sys.exit(main())
