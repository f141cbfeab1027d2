"""The kernels float32 linear layers run on a CPU: oneDNN by default, the BLAS as the fallback."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from srcflask.ml import kernels
from srcflask.ml.engine import ModelLoadError, TextGenerator
from srcflask.ml.kernels import PAD_FROM, PAD_TO, onednn_linear, onednn_linear_class

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


@needs_onednn
def test_a_float32_cpu_generator_runs_its_linear_layers_on_onednn(tiny_models):
    generator = TextGenerator(tiny_models["gemma3"])
    assert generator.cpu_linear == "onednn"
    linears = [m for m in generator.model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(type(m) is onednn_linear_class() for m in linears)
    # Its weights and state dict are the model's own: nothing copied, nothing renamed.
    reference = TextGenerator(tiny_models["gemma3"], cpu_linear="blas")
    assert generator.model.state_dict().keys() == reference.model.state_dict().keys()
    assert generator.model.lm_head.weight is generator.model.model.embed_tokens.weight
    assert not getattr(generator.model.lm_head, "_srcflask_padded", False)
    ids = torch.tensor([[2, 40, 41, 42, 43]])
    with torch.no_grad():
        torch.testing.assert_close(generator.model(ids).logits, reference.model(ids).logits)
    # A copy (as training or a cache might make) keeps working.
    duplicate = copy.deepcopy(generator.model)
    with torch.no_grad():
        torch.testing.assert_close(duplicate(ids).logits, reference.model(ids).logits)


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
@pytest.mark.parametrize("kernel", ["onednn", "blas"])
def test_the_same_tokens_as_transformers_beam_search_on_either_kernel(tiny_models, kernel, seed):
    """Our search and transformers' give the same tokens when both run on the same kernel."""
    if kernel == "onednn" and not kernels.onednn_linear_agrees():
        pytest.skip("this PyTorch has no oneDNN linear op")
    reference = TextGenerator(tiny_models["gemma3"], own_beam_search=False, cpu_linear=kernel)
    own = TextGenerator(tiny_models["gemma3"], cpu_linear=kernel)
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
