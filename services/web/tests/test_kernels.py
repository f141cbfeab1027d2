"""The kernels float32 linear layers run on a CPU: oneDNN by default, the BLAS as the fallback."""

from __future__ import annotations

import copy
import mmap
import random
import struct
from pathlib import Path

import pytest
import torch

from srcflask.ml import kernels
from srcflask.ml.engine import ModelLoadError, TextGenerator
from srcflask.ml.kernels import PAD_FROM, PAD_TO, onednn_linear, onednn_linear_class
from srcflask.ml.memory import file_mappings, in_file_pages, release_freed_memory

from .test_decoding import random_prompt, random_settings

needs_onednn = pytest.mark.skipif(
    not kernels.onednn_linear_agrees(), reason="this PyTorch has no oneDNN linear op"
)


@needs_onednn
@pytest.mark.parametrize("rows", [1, 2, 5, 7, 16, 40])
@pytest.mark.parametrize("bias", [True, False])
def test_a_onednn_product_is_the_linear_layers_product(rows, bias):
    layer = torch.nn.Linear(96, 300, bias=bias)
    hidden = torch.randn(rows, 3, 96)
    with torch.no_grad():
        expected = layer(hidden)
        ours = onednn_linear(hidden, layer.weight, layer.bias)
        # A view that is not contiguous (every other position) is taken too.
        strided = onednn_linear(hidden[:, ::2], layer.weight, layer.bias)
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(strided, expected[:, ::2])


needs_packing = pytest.mark.skipif(
    not kernels.packed_linear_agrees(), reason="this PyTorch does not pack weights for oneDNN"
)


@needs_onednn
def test_a_float32_cpu_generator_runs_its_linear_layers_on_onednn(tiny_models):
    generator = TextGenerator(tiny_models["gemma3"])
    assert generator.cpu_linear == "onednn"
    linears = [m for m in generator.model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(type(m) is onednn_linear_class() for m in linears)
    # Nothing renamed, and the same numbers as PyTorch's own products.
    reference = TextGenerator(tiny_models["gemma3"], cpu_linear="blas")
    assert generator.model.state_dict().keys() == reference.model.state_dict().keys()
    assert not getattr(generator.model.lm_head, "_srcflask_padded", False)
    ids = torch.tensor([[2, 40, 41, 42, 43]])
    with torch.no_grad():
        torch.testing.assert_close(generator.model(ids).logits, reference.model(ids).logits)


@needs_packing
def test_a_generator_packs_its_weights_and_keeps_one_copy_of_the_vocabulary(tiny_models):
    generator = TextGenerator(tiny_models["gemma3"])
    model = generator.model
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert all(m.weight.is_mkldnn and not m.weight.requires_grad for m in linears)
    # The output layer shared its weight with the embeddings; now it has a packed copy,
    # and the embeddings read their rows from the weights' file, not from a second copy.
    embeddings = model.get_input_embeddings().weight
    assert not embeddings.is_mkldnn
    files = list(Path(tiny_models["gemma3"]).glob("*.safetensors"))
    assert in_file_pages(embeddings, file_mappings(files))
    ids = torch.tensor([[2, 40, 41, 42, 43]])
    plain = TextGenerator(tiny_models["gemma3"], pack_weights=False)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, plain.model(ids).logits)


def mapped_pages(tensor) -> int:
    """How many of the pages holding `tensor` are mapped in this process now."""
    start = tensor.untyped_storage().data_ptr()
    first, last = start // mmap.PAGESIZE, (start + tensor.nbytes - 1) // mmap.PAGESIZE
    with open("/proc/self/pagemap", "rb") as pagemap:
        pagemap.seek(first * 8)
        entries = pagemap.read((last - first + 1) * 8)
    return sum(entry >> 63 for (entry,) in struct.iter_unpack("<Q", entries))


@needs_packing
@pytest.mark.skipif(not Path("/proc/self/pagemap").exists(), reason="Linux only")
def test_the_embedding_rows_a_generator_reads_from_its_file_are_let_go(tiny_models):
    """As soon as the lookup is done: a long prompt's rows are not held through its pass."""
    generator = TextGenerator(tiny_models["gemma3"])
    model = generator.model
    lookup = model.get_input_embeddings()
    embeddings = lookup.weight
    edges = 2  # the first and last pages may hold other weights, which stay
    assert mapped_pages(embeddings) <= edges  # let go of once packed
    seen = []
    # Before srcflask's own hook runs (prepended), and when the first layer starts.
    lookup.register_forward_hook(
        lambda *_: seen.append(("looked up", mapped_pages(embeddings))), prepend=True
    )
    model.model.layers[0].register_forward_pre_hook(
        lambda *_: seen.append(("first layer", mapped_pages(embeddings)))
    )
    ids = torch.arange(2, embeddings.shape[0]).view(1, -1)
    with torch.no_grad():
        before = model(ids).logits
    (_, read), (_, held) = seen
    assert read > edges  # the rows looked up were read from the file
    assert held <= edges  # and let go before the layers ran
    assert mapped_pages(embeddings) <= edges
    release_freed_memory(model)  # (a release lets them go too, as before)
    with torch.no_grad():  # and read again, the same
        assert torch.equal(model(ids).logits, before)
    assert mapped_pages(embeddings) <= edges


@needs_packing
def test_a_shared_output_layer_outside_the_files_is_left_unpacked(tiny_models):
    """Packing an output layer whose weight the embeddings keep in memory would hold the
    vocabulary's weights twice: it stays plain; the other layers are packed."""
    model = TextGenerator(tiny_models["gemma3"], pack_weights=False).model
    layers = sum(type(m) is onednn_linear_class() for m in model.modules())
    assert kernels.pack_linear_weights(model, files=[]) == layers - 1
    assert model.lm_head.weight is model.get_input_embeddings().weight
    assert not model.lm_head.weight.is_mkldnn


@needs_onednn
def test_a_generator_for_training_keeps_plain_weights_that_copy_and_learn(tiny_models):
    model = TextGenerator(tiny_models["gemma3"], pack_weights=False).model
    assert model.lm_head.weight is model.get_input_embeddings().weight
    assert not any(p.is_mkldnn for p in model.parameters())
    duplicate = copy.deepcopy(model)  # as training's checkpoints might make
    ids = torch.tensor([[2, 40, 41, 42, 43]])
    loss = duplicate(ids, labels=ids).loss
    loss.backward()
    assert duplicate.lm_head.weight.grad is not None
    with torch.no_grad():
        torch.testing.assert_close(duplicate(ids).logits, model(ids).logits)


@needs_packing
@pytest.mark.parametrize("rows", [1, 2, 3, 5, 7, 16, 40, 41, 300])
@pytest.mark.parametrize("bias", [True, False])
def test_a_packed_weight_gives_the_plain_weights_products_number_for_number(rows, bias):
    """Exactly equal, so packing changes no token; a single row is computed as two, as
    oneDNN's one-row path rounds differently and a row must not depend on its company."""
    layer = torch.nn.Linear(2048, 640, bias=bias)  # a shape where one row goes its own way
    hidden = torch.randn(rows, 2048)
    packed = kernels.pack_weight(layer.weight)
    with torch.no_grad():
        expected = onednn_linear(hidden.repeat(2, 1), layer.weight, layer.bias)[:rows]
        ours = onednn_linear(hidden, packed, layer.bias)
        alone = [onednn_linear(hidden[row : row + 1], packed, layer.bias) for row in range(rows)]
    assert torch.equal(ours, expected)
    assert torch.equal(torch.cat(alone), expected)


@needs_onednn
def test_a_onednn_layer_still_trains_with_pytorchs_own_gradients():
    layer = torch.nn.Linear(32, 8)
    trained = copy.deepcopy(layer)
    trained.__class__ = onednn_linear_class()
    hidden = torch.randn(4, 32, requires_grad=True)
    layer(hidden).square().sum().backward()
    expected = (hidden.grad.clone(), layer.weight.grad.clone())
    hidden.grad = None
    trained(hidden).square().sum().backward()
    torch.testing.assert_close(hidden.grad, expected[0])
    torch.testing.assert_close(trained.weight.grad, expected[1])


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(
    ("kernel", "packed"), [("onednn", True), ("onednn", False), ("blas", False)]
)
def test_the_same_tokens_as_transformers_beam_search_on_either_kernel(
    tiny_models, kernel, packed, seed
):
    """Our search and transformers' give the same tokens when both run on the same kernel,
    ours on packed weights or plain ones, transformers' on plain ones."""
    if kernel == "onednn" and not kernels.onednn_linear_agrees():
        pytest.skip("this PyTorch has no oneDNN linear op")
    reference = TextGenerator(
        tiny_models["gemma3"], own_beam_search=False, cpu_linear=kernel, pack_weights=False
    )
    own = TextGenerator(tiny_models["gemma3"], cpu_linear=kernel, pack_weights=packed)
    assert own.cpu_linear == reference.cpu_linear == kernel
    rng = random.Random(f"kernel-{kernel}-{seed}")
    settings = random_settings(rng)
    prompts = [random_prompt(rng) for _ in range(rng.randint(2, 6))]
    expected = [reference.generate([prompt], settings)[0].token_ids for prompt in prompts]
    assert [r.token_ids for r in own.generate(prompts, settings)] == expected


def test_without_onednn_the_blas_output_layer_pads_a_few_rows(tiny_models, monkeypatch):
    monkeypatch.setattr(kernels, "onednn_linear_agrees", lambda: False)
    generator = TextGenerator(tiny_models["llama"])  # asked for oneDNN, which is "missing"
    assert generator.cpu_linear == "blas"
    assert not any(type(m) is onednn_linear_class() for m in generator.model.modules())
    layer = generator.model.get_output_embeddings()
    assert layer._srcflask_padded
    seen = []
    probe = layer.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape))
    try:
        for rows in (1, PAD_FROM - 1, PAD_FROM, PAD_TO - 1, PAD_TO, 40):
            hidden = torch.randn(rows, 1, layer.in_features)
            with torch.no_grad():
                output = layer(hidden)
                expected = hidden @ layer.weight.T
            assert output.shape == (rows, 1, layer.out_features)
            torch.testing.assert_close(output, expected)
    finally:
        probe.remove()
    # The product ran on PAD_TO rows exactly where the slow shapes were.
    padded = [shape[0] == PAD_TO for shape in seen]
    assert padded == [False, False, True, True, True, False]


def test_an_unknown_kernel_is_refused_before_loading(tiny_models):
    with pytest.raises(ModelLoadError, match="GENERATION_CPU_LINEAR must be one of onednn, blas"):
        TextGenerator(tiny_models["llama"], cpu_linear="fast")


def test_bfloat16_layers_are_left_to_pytorch(tiny_models):
    generator = TextGenerator(tiny_models["llama"], dtype="bfloat16")
    assert generator.cpu_linear is None
    assert not any(type(m) is onednn_linear_class() for m in generator.model.modules())
