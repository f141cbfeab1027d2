"""The generation engine on tiny models: batching, settings, truncation, safety."""

from __future__ import annotations

import threading

import pytest

from srcflask.ml.artifacts import UnsafeArtifactError
from srcflask.ml.engine import PromptError, PromptFormat, TextGenerator
from srcflask.ml.settings import DEFAULT_PRESET, PRESETS, GenerationSettings, SettingsError

from .tinymodels import SENTENCES, write_pickle_only_model

PROMPTS = [
    "How do I mow my lawn?",
    "Quarterly report on sales in the northern region",
    "Dear customer, thank you for your order. Unfortunately the bicycle",
    "Hi",
    "Safety procedures for the warehouse loading dock",
]
GREEDY = GenerationSettings(strategy="greedy", max_new_tokens=20, no_repeat_ngram_size=0)
BEAM = GenerationSettings(max_new_tokens=20)  # the original system's preset


@pytest.fixture(scope="module")
def generators(tiny_models) -> dict[str, TextGenerator]:
    return {
        "gpt2": TextGenerator(tiny_models["gpt2"], label="tiny-gpt2:1"),
        "llama": TextGenerator(tiny_models["llama"], label="tiny-llama:1"),
        "llama-chat": TextGenerator(
            tiny_models["llama-chat"],
            label="tiny-chat:1",
            prompt_format=PromptFormat("chat", "Continue the document."),
        ),
    }


def test_loads_gpt2_and_llama_on_the_cpu(generators):
    assert type(generators["gpt2"].model).__name__ == "GPT2LMHeadModel"
    assert type(generators["llama"].model).__name__ == "LlamaForCausalLM"
    for name, generator in generators.items():
        assert generator.device == "cpu"
        assert generator.context_length == (512 if name == "llama-chat" else 128)
        assert generator.tokenizer.padding_side == "left"
        assert generator.tokenizer.pad_token_id is not None


@pytest.mark.parametrize("kind", ["gpt2", "llama", "llama-chat"])
@pytest.mark.parametrize("settings", [GREEDY, BEAM], ids=["greedy", "beam"])
def test_a_prompt_in_a_batch_gets_the_same_text_as_alone(generators, kind, settings):
    generator = generators[kind]

    batched = generator.generate(PROMPTS, settings)
    alone = [generator.generate([prompt], settings)[0] for prompt in PROMPTS]

    assert [r.text for r in batched] == [r.text for r in alone]
    assert [r.token_ids for r in batched] == [r.token_ids for r in alone]
    assert all(r.batch_size == len(PROMPTS) for r in batched)
    assert any(r.generated_tokens > 0 for r in batched)


def repeated_ngrams(ids: tuple[int, ...], n: int) -> int:
    grams = [ids[i : i + n] for i in range(len(ids) - n + 1)]
    return len(grams) - len(set(grams))


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_beam_search_never_repeats_a_4_gram(generators, kind):
    generator = generators[kind]
    long_beam = BEAM.replace(max_new_tokens=60)

    loose = generator.generate(PROMPTS, long_beam.replace(no_repeat_ngram_size=0))
    strict = generator.generate(PROMPTS, long_beam)

    # A tiny random model loops: without the setting it repeats itself, with it never.
    assert sum(repeated_ngrams(r.token_ids, 4) for r in loose) > 0
    assert all(repeated_ngrams(r.token_ids, 4) == 0 for r in strict)


def test_the_result_is_the_continuation_only(generators):
    generator = generators["gpt2"]
    prompt = SENTENCES[5]

    [result] = generator.generate([prompt], GREEDY)

    assert result.prompt_tokens == len(generator.tokenizer(prompt)["input_ids"])
    assert result.text == generator.tokenizer.decode(result.token_ids, skip_special_tokens=True)
    assert result.generated_tokens == len(result.token_ids) <= GREEDY.max_new_tokens
    assert result.finish_reason in ("eos", "length")
    assert result.model_version == "tiny-gpt2:1"
    assert result.settings == GREEDY.to_dict()
    assert result.seconds > 0 and not result.truncated


def test_chat_format_wraps_the_document_in_the_template(generators):
    generator = generators["llama-chat"]
    prefix, document, suffix = generator.format_prompt("My document")
    assert document == "My document"
    assert "Continue the document." in prefix and prefix.endswith("user\n")
    assert suffix.endswith("assistant\n")
    [result] = generator.generate(["My document"], GREEDY)
    expected = len(
        generator.tokenizer(prefix + "My document" + suffix, add_special_tokens=False)["input_ids"]
    )
    assert abs(result.prompt_tokens - expected) <= 2  # token boundaries at the joins may differ


@pytest.mark.parametrize("kind", ["gpt2", "llama-chat"])
def test_long_prompts_keep_their_most_recent_tokens(generators, kind):
    generator = generators[kind]
    long_prompt = " ".join(SENTENCES * 10) + " The end is near"
    settings = GREEDY.replace(max_new_tokens=16)

    [result] = generator.generate([long_prompt], settings)

    assert result.truncated
    assert result.prompt_tokens <= generator.context_length - settings.max_new_tokens
    assert result.prompt_tokens >= generator.context_length - settings.max_new_tokens - 2
    batch = generator.preprocess([long_prompt], settings)
    tail = generator.tokenizer.decode(batch.input_ids[0])
    assert "The end is near" in tail and not tail.startswith("How do I mow")


def test_max_input_tokens_caps_the_prompt(tiny_models):
    generator = TextGenerator(tiny_models["gpt2"], max_input_tokens=10)
    [result] = generator.generate([" ".join(SENTENCES)], GREEDY)
    assert result.truncated and result.prompt_tokens == 10


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t \n"])
def test_empty_prompts_are_refused(generators, prompt):
    with pytest.raises(PromptError, match="the prompt is empty"):
        generators["gpt2"].generate([prompt])
    with pytest.raises(PromptError, match="prompt 2 is empty"):
        generators["gpt2"].generate(["fine", prompt])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"strategy": "telepathy"}, "strategy: must be one of beam, greedy, sample"),
        ({"max_new_tokens": 0}, "max_new_tokens: must be between 1 and 1024, got 0"),
        ({"max_new_tokens": 5000}, "max_new_tokens: must be between 1 and 1024, got 5000"),
        ({"max_new_tokens": 2.5}, "max_new_tokens: must be a whole number between 1 and 1024"),
        ({"num_beams": 1}, "num_beams: must be between 2 and 16 for beam search"),
        ({"num_beams": 17}, "num_beams: must be between 1 and 16, got 17"),
        ({"temperature": 0}, "temperature: must be between 0.01 and 5, got 0"),
        ({"top_p": 1.5}, "top_p: must be between 0.01 and 1, got 1.5"),
        ({"top_k": -1}, "top_k: must be between 0 and 1000, got -1"),
        ({"seed": -3}, "seed: must be between 0 and 4294967295, got -3"),
        ({"no_repeat_ngram_size": "4"}, "no_repeat_ngram_size: must be a whole number"),
        ({"early_stopping": "yes"}, "early_stopping: must be true or false"),
        ({"repetition_penalty": 0.5}, "repetition_penalty: must be between 1 and 3, got 0.5"),
    ],
)
def test_invalid_settings_name_the_setting_and_its_range(changes, message):
    with pytest.raises(SettingsError) as caught:
        GenerationSettings(**changes)
    assert str(caught.value).startswith(message)
    assert caught.value.setting == next(iter(changes))


def test_settings_from_a_mapping_refuse_unknown_names():
    with pytest.raises(SettingsError, match="beams: is not a generation setting"):
        GenerationSettings.from_dict({"beams": 3})
    assert GenerationSettings.from_dict({"max_new_tokens": 30.0}).max_new_tokens == 30


def test_the_default_preset_is_the_original_beam_search_stopping_where_an_editor_would():
    assert PRESETS[DEFAULT_PRESET] == PRESETS["original"].replace(
        stop_at="paragraph", ban_markup=True, max_new_tokens=120
    )
    settings = GenerationSettings()
    assert settings == PRESETS["original"]
    assert settings.generate_kwargs() == {
        "max_new_tokens": 100,
        "no_repeat_ngram_size": 4,
        "repetition_penalty": 1.0,
        "do_sample": False,
        "num_beams": 5,
        "early_stopping": True,
    }


def test_max_new_tokens_must_leave_room_for_the_prompt(generators):
    with pytest.raises(SettingsError, match="max_new_tokens: must leave room"):
        generators["gpt2"].generate(["Hi"], GREEDY.replace(max_new_tokens=125))


def test_sampling_with_a_seed_is_repeatable(generators):
    settings = PRESETS["creative"].replace(max_new_tokens=15, seed=42)
    first = generators["llama"].generate(PROMPTS[:2], settings)
    second = generators["llama"].generate(PROMPTS[:2], settings)
    other = generators["llama"].generate(PROMPTS[:2], settings.replace(seed=43))
    assert [r.text for r in first] == [r.text for r in second]
    assert [r.text for r in first] != [r.text for r in other]


def test_progress_is_reported_step_by_step(generators):
    seen: list[tuple[int, int]] = []
    settings = GREEDY.replace(max_new_tokens=12)
    generators["gpt2"].generate(["How do I"], settings, progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (1, 12)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert all(total == 12 for _, total in seen)


def test_calls_from_several_threads_give_the_same_results(generators):
    generator = generators["llama"]
    expected = {p: generator.generate([p], GREEDY)[0].text for p in PROMPTS}
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def work(prompt: str) -> None:
        try:
            results[prompt] = generator.generate([prompt], GREEDY)[0].text
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(p,)) for p in PROMPTS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert results == expected


def test_a_pickle_only_folder_is_refused(tiny_models, tmp_path):
    folder = write_pickle_only_model(tiny_models["gpt2"], tmp_path / "pickled")
    with pytest.raises(UnsafeArtifactError, match="only pickle weights"):
        TextGenerator(folder)


def test_chat_format_needs_a_chat_template(tiny_models):
    from srcflask.ml.engine import ModelLoadError

    with pytest.raises(ModelLoadError, match="has no chat template"):
        TextGenerator(tiny_models["gpt2"], prompt_format=PromptFormat("chat"))


def test_the_ml_package_imports_nothing_from_flask_or_the_web_app():
    import ast
    from pathlib import Path

    import srcflask.ml

    for module in Path(srcflask.ml.__file__).parent.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            else:
                continue
            for name in names:
                assert not name.startswith(("flask", "srcflask", "..")), f"{module.name}: {name}"


def test_machine_text_never_holds_the_nul_a_byte_token_decodes_to(tiny_models):
    # Sampling can pick the byte token for NUL, which Postgres cannot store: a job whose
    # text held one failed with a server error when its result was written.
    generator = TextGenerator(tiny_models["gemma3"])
    nul = next(i for i in range(len(generator.tokenizer)) if generator.decode([i]) == "\x00")
    words = generator.tokenizer(" The board met", add_special_tokens=False)["input_ids"]
    settings = GenerationSettings(strategy="sample", max_new_tokens=8)
    batch = generator.preprocess(["Minutes."], settings)
    [result] = generator.postprocess(batch, [[*words, nul, *words]], 0.1)
    assert "\x00" in result.raw_text
    assert "\x00" not in result.text and result.text.count("The board met") == 2


def _gemma_tokenizer():
    """A `transformers` GemmaTokenizer, built (as it builds itself) from a BPE vocabulary
    and merges: the tiny models' own, so every one of their ids is in it."""
    import json

    from transformers import GemmaTokenizer

    from .tinymodels import train_tokenizer

    model = json.loads(train_tokenizer().to_str())["model"]
    special = {"unk_token": "<|endoftext|>", "bos_token": "<|endoftext|>"}
    special |= {"eos_token": "<|endoftext|>", "pad_token": "<pad>", "mask_token": "<pad>"}
    merges = [tuple(merge) for merge in model["merges"]]
    return GemmaTokenizer(vocab=model["vocab"], merges=merges, **special)


def test_a_generator_lets_go_of_its_tokenizers_python_copies_of_the_vocabulary(
    tiny_models, tmp_path
):
    import shutil

    from transformers import AutoTokenizer

    folder = tmp_path / "gemma-tokenizer"
    shutil.copytree(tiny_models["gemma3"], folder)
    _gemma_tokenizer().save_pretrained(folder)
    fresh = AutoTokenizer.from_pretrained(folder)
    assert len(fresh._vocab) > 300 and len(fresh._merges) > 30  # what it holds twice

    generator = TextGenerator(folder)
    assert generator.tokenizer._vocab == {} and generator.tokenizer._merges == []
    texts = [*SENTENCES[:4], "an  unseen word: überraschend 😀\n\nnext"]
    for text in texts:  # the tokenizer works as before: the Rust model holds both
        ids = fresh(text)["input_ids"]
        assert generator.tokenizer(text)["input_ids"] == ids
        assert generator.tokenizer.decode(ids) == fresh.decode(ids)
    assert generator.tokenizer.get_vocab() == fresh.get_vocab()
    # ... and saves as before (a trained model's folder gets its generator's tokenizer).
    generator.tokenizer.save_pretrained(tmp_path / "saved")
    saved = AutoTokenizer.from_pretrained(tmp_path / "saved")
    assert [saved(text)["input_ids"] for text in texts] == [fresh(t)["input_ids"] for t in texts]
    assert generator.generate([PROMPTS[1]], GREEDY)[0].text


def test_a_tokenizer_that_reads_its_vocabulary_again_keeps_it():
    from srcflask.ml.memory import drop_tokenizer_copies

    tokenizer = _gemma_tokenizer()

    class OwnVocabularyFiles(type(tokenizer)):
        def save_vocabulary(self, save_directory, filename_prefix=None):  # reads self._vocab
            return ()

    keeps = OwnVocabularyFiles(
        vocab=dict(tokenizer._vocab),
        merges=list(tokenizer._merges),
        **{name: getattr(tokenizer, name) for name in ("unk_token", "bos_token", "eos_token")},
        pad_token=tokenizer.pad_token,
        mask_token=tokenizer.mask_token,
    )
    assert not drop_tokenizer_copies(keeps) and keeps._vocab and keeps._merges
    assert drop_tokenizer_copies(tokenizer) and not tokenizer._vocab and not tokenizer._merges
