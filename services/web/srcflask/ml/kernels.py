"""Which kernels a float32 model's linear layers run on a CPU.

A decoding step is mostly matrix products with a few rows: each running
beam's hidden state times every linear layer, and then times the output
layer (for Gemma 3, 262,144 x 640 float32 weights). PyTorch sends float32
products on a CPU to its BLAS (MKL), whose kernels for such short, wide
products are slow on some CPUs. Measured on 2 cores (torch 2.13), the output
layer's product:

| rows | AMD EPYC (Zen 4), MKL | same, oneDNN | Intel Xeon (AMX), MKL | same, oneDNN |
| ---: | ---: | ---: | ---: | ---: |
| 5 | 104 ms | 38 ms | 49 ms | 39 ms |
| 7 to 15 | 117 to 191 ms | 45 to 61 ms | 72 to 132 ms | 38 to 45 ms |
| 16 | | | 50 ms | 46 ms |
| 40 | 182 ms | 109 ms | 81 ms | 74 ms |
| 80 | | | 155 ms | 120 ms |

oneDNN, which PyTorch already uses for bfloat16, has no such cliffs, so the
engine runs float32 linear layers on it (`CPU_LINEAR_KERNELS`, setting
GENERATION_CPU_LINEAR). One Gemma 3 270M document went from 19.2 s to 11.0 s
on the EPYC, and from 10.6 s to 9.4 s on the Xeon; 8 documents at once, 55.5
s to 35.0 s on the EPYC, 25.4 s to 25.1 s on the Xeon (there MKL is a little
faster for the small layers' few rows, oneDNN for the output layer's). Where
oneDNN is missing, or disagrees with PyTorch's own product at load, the
layers stay on the BLAS, and the output layer's product is padded from 7-15
rows to 16 (`pad_output_rows`), the fast shape there.

Either kernel rounds the sums of a product in its own order, so the two give
logits that differ in the last bits; a generator's text is the same whether
its beam search is srcflask's or transformers', on the same kernels.
"""

from __future__ import annotations

import functools
import logging

log = logging.getLogger(__name__)

CPU_LINEAR_KERNELS = ("onednn", "blas")
PAD_FROM, PAD_TO = 7, 16  # products of PAD_FROM to PAD_TO - 1 rows are padded
PACKED_FOR_ROWS = 40  # the rows oneDNN lays a packed weight out for


def use_cpu_linear_kernel(model, kernel: str, *, pack: bool = False, files=()) -> str:
    """Run a float32 CPU `model`'s linear layers on `kernel`; return the kernel in use.

    "onednn" falls back to "blas" where the op is missing or gives other numbers.
    With `pack`, oneDNN's weights are also laid out in its own blocks
    (`pack_linear_weights`; `files` are the weights' files): for a model that
    only generates, never for one being trained.
    """
    if kernel not in CPU_LINEAR_KERNELS:
        raise ValueError(
            f"GENERATION_CPU_LINEAR must be one of {', '.join(CPU_LINEAR_KERNELS)}; got {kernel!r}"
        )
    if kernel == "onednn":
        if onednn_linear_agrees():
            use_onednn_linears(model)
            if pack and packed_linear_agrees():
                pack_linear_weights(model, files)
            return "onednn"
        log.warning("oneDNN linear products are unavailable or disagree: using the BLAS")
    pad_output_rows(model)
    return "blas"


def onednn_linear(hidden, weight, bias=None):
    """`torch.nn.functional.linear(hidden, weight, bias)`, computed by oneDNN.

    `weight` is a plain tensor or one packed by `pack_weight`. A packed weight
    times a single row is computed as two rows: oneDNN takes another path for
    one row, whose sums round differently, and a row's product must not depend
    on how many rows it came with (a prompt read alone or beside others, or
    copied to its beams as `transformers` does).
    """
    import torch

    flat = hidden.reshape(-1, hidden.shape[-1])
    single = weight.is_mkldnn and flat.shape[0] == 1
    if single:
        flat = flat.expand(2, -1)
    if not flat.is_contiguous():
        flat = flat.contiguous()
    product = torch.ops.mkldnn._linear_pointwise(flat, weight, bias, "none", [], "")
    if single:
        product = product[:1]
    return product.reshape(*hidden.shape[:-1], weight.shape[0])


def onednn_linear_agrees() -> bool:
    """Whether this PyTorch has oneDNN's linear op and it computes what `F.linear` does."""
    import torch

    if not torch.backends.mkldnn.is_available():
        return False
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(48, 64, generator=generator)
    bias = torch.randn(48, generator=generator)
    hidden = torch.randn(2, 5, 64, generator=generator)
    try:
        with torch.no_grad():
            ours = onednn_linear(hidden, weight, bias)
    except (RuntimeError, AttributeError, NotImplementedError):
        return False
    expected = torch.nn.functional.linear(hidden, weight, bias)
    return ours.shape == expected.shape and torch.allclose(ours, expected, rtol=1e-4, atol=1e-4)


def pack_weight(weight):
    """`weight` (out x in, float32) laid out in oneDNN's blocks for products of a few
    dozen rows: a decoding step's rows, documents x beams. The products are the
    same as with the plain weight, for any number of rows from two."""
    import torch

    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), PACKED_FOR_ROWS)


@functools.cache
def packed_linear_agrees() -> bool:
    """Whether this PyTorch packs weights for oneDNN, and a packed weight's products are
    the plain weight's, number for number, for 2 to 40 rows and for one (as two)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(640, 2048, generator=generator)
    bias = torch.randn(640, generator=generator)
    hidden = torch.randn(40, 2048, generator=generator)
    try:
        with torch.no_grad():
            packed = pack_weight(weight)
            if not packed.is_mkldnn:
                return False
            for rows in (1, 2, 5, 17, 40):
                plain = onednn_linear(hidden[: max(rows, 2)], weight, bias)[:rows]
                if not torch.equal(onednn_linear(hidden[:rows], packed, bias), plain):
                    return False
    except (RuntimeError, AttributeError, NotImplementedError):
        return False
    return True


def pack_linear_weights(model, files=()) -> int:
    """Lay out the weights of `model`'s oneDNN layers in oneDNN's blocks; return how many.

    A plain weight is reordered into oneDNN's blocks at every product; packed
    once, the output layer's 5-row product (one document's beams) takes 26 ms
    instead of 41 on an Intel Xeon, 40 rows 50 ms instead of 61, and the other
    layers' a quarter less. Each packed weight replaces the plain one: the
    pages it was read from in `files` (the model's weights, mapped) are let go.
    An output layer that shares its weight with the input embeddings is packed
    only where that weight lies in `files`: the embeddings then read the rows
    they look up from the file, instead of keeping a second copy of the
    vocabulary's weights in memory.

    A packed layer computes, and cannot be trained or copied (`copy.deepcopy`).
    """
    import torch

    from .memory import drop_file_pages, file_mappings, in_file_pages, keep_in_file

    mapped = file_mappings(files)
    head = model.get_output_embeddings()
    shared = getattr(model.get_input_embeddings(), "weight", None)
    layers = [
        module
        for module in model.modules()
        if type(module) is onednn_linear_class() and not module.weight.is_mkldnn
    ]
    # The output layer (the largest) first, and no weight's file pages resident: while
    # a layer is packed, its plain and packed weights are both in memory, and the peak
    # is then the packed layers so far plus that layer twice, never the whole model too.
    layers.sort(key=lambda module: module is not head)
    for module in layers:
        drop_file_pages(module.weight.data, mapped)
    packed = 0
    for module in layers:
        source = module.weight.data
        if module is head and module.weight is shared:
            if not in_file_pages(source, mapped):
                continue  # it would be a second copy of the vocabulary's weights
            keep_in_file(model, shared, mapped, reader=model.get_input_embeddings())
        module.weight = torch.nn.Parameter(pack_weight(source), requires_grad=False)
        drop_file_pages(source, mapped)
        del source
        packed += 1
    return packed


@functools.cache
def onednn_linear_class():
    """`OneDnnLinear`: an `nn.Linear` whose product runs on oneDNN when no gradient is wanted."""
    import torch

    class OneDnnLinear(torch.nn.Linear):
        def forward(self, hidden):
            if self.weight.is_mkldnn:
                return onednn_linear(hidden, self.weight, self.bias)
            if torch.is_grad_enabled() and (hidden.requires_grad or self.weight.requires_grad):
                return super().forward(hidden)  # training: PyTorch's own, with autograd
            return onednn_linear(hidden, self.weight, self.bias)

    return OneDnnLinear


def use_onednn_linears(model) -> int:
    """Compute `model`'s float32 CPU `nn.Linear` layers with oneDNN; return how many.

    Each layer keeps its weights, state dict and `isinstance`; only its class
    changes, to `OneDnnLinear`. Subclasses of `nn.Linear` are left as they are.
    """
    import torch

    switched = 0
    for module in model.modules():
        if (
            type(module) is torch.nn.Linear
            and module.weight.dtype == torch.float32
            and module.weight.device.type == "cpu"
            and module.weight.is_contiguous()  # oneDNN reads the weight as stored
        ):
            module.__class__ = onednn_linear_class()
            switched += 1
    return switched


def pad_output_rows(model, pad_from: int = PAD_FROM, pad_to: int = PAD_TO) -> None:
    """Run `model`'s output layer on `pad_to` rows where it would have had
    `pad_from` to `pad_to - 1` (hooks; the weights are untouched)."""
    import torch

    layer = model.get_output_embeddings()
    if layer is None or getattr(layer, "_srcflask_padded", False):
        return
    shapes: list[tuple[torch.Size, int]] = []

    def pad(module, args):
        hidden = args[0]
        rows = hidden.numel() // hidden.shape[-1]
        if not pad_from <= rows < pad_to:
            shapes.append((hidden.shape, 0))
            return None
        shapes.append((hidden.shape, rows))
        flat = hidden.reshape(rows, hidden.shape[-1])
        return (torch.cat([flat, flat.new_zeros(pad_to - rows, flat.shape[1])]), *args[1:])

    def cut(module, args, output):
        shape, rows = shapes.pop()
        if not rows:
            return None
        return output[:rows].reshape(*shape[:-1], output.shape[-1])

    layer.register_forward_pre_hook(pad)
    layer.register_forward_hook(cut)
    layer._srcflask_padded = True
