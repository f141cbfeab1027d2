"""Giving memory back to the system: after decoding steps, and while loading weights.

A step allocates and frees many megabytes (each layer's activations, the keys
and values of a growing cache). glibc's allocator keeps much of what is freed
in its heap, so a process that has decoded for a while holds hundreds of
megabytes it does not use. `malloc_trim` returns them. The call is quick, but
every page it gives back is faulted in again when next used: the decoding loop
trims after a prefill, when documents leave, and every few steps, not after
each step (see `decoding.TRIM_EVERY`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import mmap
import sys
from pathlib import Path


@functools.cache
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def _trim():
    return getattr(_libc(), "malloc_trim", None)  # glibc only: musl has none


def release_freed_memory(model=None) -> None:
    """Return the allocator's free memory to the system, where the C library can; with
    `model`, also the pages it has read since from its weights left in their files
    (`keep_in_file`)."""
    trim = _trim()
    if trim is not None:
        trim(0)
    for tensor, mapped in getattr(model, "_srcflask_in_files", ()):
        drop_file_pages(tensor, mapped)


def keep_in_file(model, tensor, mapped: list[tuple[int, int]], reader=None) -> None:
    """Mark `tensor`, a weight of `model` read from a file mapped at one of `mapped`
    (never written), as one whose pages `release_freed_memory(model)` lets go of. The
    mapping lasts as long as the tensor, which the mark holds: found once, not at every
    release. With `reader`, the module that looks rows up in `tensor`, its pages also
    go as soon as each of its lookups is done.

    A looked-up row is faulted in with its neighbours (64 kB at a time), so the
    rows of a vocabulary's embeddings that a model reads would otherwise stay in
    its resident memory, and reach the whole table over time. Within a pass they
    are no less: a prefill of 1,800 tokens of Gemma 3 faulted in 110 MiB of its
    embeddings, held beside the pass's activations until the loop's next release.
    Letting them go after each lookup costs a twentieth of a millisecond.
    """
    model._srcflask_in_files = [*getattr(model, "_srcflask_in_files", ()), (tensor, mapped)]
    if reader is not None:

        def let_go(module, args, output) -> None:  # (returning None keeps the output)
            drop_file_pages(tensor, mapped)

        reader.register_forward_hook(let_go)


def drop_tokenizer_copies(tokenizer) -> bool:
    """Let go of the Python copies of a BPE vocabulary and its merges that some of
    `transformers`' tokenizers (Gemma's, Llama's, GPT-2's, ...) keep beside the
    `tokenizers` model built from them; whether it did.

    The Rust model holds both and does all the encoding and decoding (and saving):
    for Gemma 3's 262,144 tokens and 514,906 merges, the copies are 145 MiB.
    A tokenizer whose class reads them later (one that writes its own vocabulary
    files, or another kind of model) keeps them.
    """
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    if not isinstance(tokenizer, TokenizersBackend):
        return False
    kind = type(tokenizer.backend_tokenizer.model).__name__
    own_files = type(tokenizer).save_vocabulary is not TokenizersBackend.save_vocabulary
    if kind != "BPE" or own_files or not isinstance(getattr(tokenizer, "_vocab", None), dict):
        return False
    tokenizer._vocab = {}
    tokenizer._merges = []
    return True


# -- loading weights in a narrower dtype than the file's ----------------------------------
#
# A float32 model loaded as bfloat16 holds, at the peak, every float32 page of the file
# (mapped, and resident once read) beside the new bfloat16 copies: 1.6 GB for a 1.1 GB
# file. Converting one weight at a time and dropping the pages of the file it was read
# from keeps the peak near the bfloat16 model's own size.

_MADV_DONTNEED = 4


def file_mappings(files) -> list[tuple[int, int]]:
    """The address ranges where this process has `files` mapped (Linux; else none)."""
    names = {str(Path(f).resolve()) for f in files}
    ranges = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                parts = line.split(maxsplit=5)
                if len(parts) == 6 and parts[5].strip() in names:
                    start, end = (int(x, 16) for x in parts[0].split("-"))
                    ranges.append((start, end))
    except OSError:
        return []
    return ranges


def _drop_pages(address: int, length: int, mapped: list[tuple[int, int]]) -> bool:
    """Let the kernel drop the whole pages of [address, address + length) if they are
    pages of a mapped file (never written, so read again if ever touched). Whether it did."""
    libc = _libc()
    if libc is None or not any(s <= address and address + length <= e for s, e in mapped):
        return False
    page = mmap.PAGESIZE
    start = -(-address // page) * page
    end = (address + length) // page * page
    if end <= start:
        return True  # less than a page: nothing whole to drop
    return libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED) == 0


def in_file_pages(tensor, mapped: list[tuple[int, int]]) -> bool:
    """Whether a CPU tensor's data lies in one of the `mapped` file ranges."""
    if tensor.device.type != "cpu" or tensor.is_mkldnn:
        return False
    start, length = _extent(tensor)
    return any(s <= start and start + length <= e for s, e in mapped)


def drop_file_pages(tensor, mapped: list[tuple[int, int]]) -> bool:
    """Let the kernel drop the pages of a file-backed CPU tensor no longer read; whether
    it could (the tensor must be in `mapped`, the weights' files as `file_mappings` found
    them). Its values stay the same: a page is read again from the file if touched."""
    if not in_file_pages(tensor, mapped):
        return False
    return _drop_pages(*_extent(tensor), mapped)


def _extent(tensor) -> tuple[int, int]:
    size = tensor.element_size()
    return tensor.untyped_storage().data_ptr() + tensor.storage_offset() * size, (
        tensor.numel() * size
    )


def convert_parameters(model, dtype, files) -> None:
    """Turn `model`'s floating-point parameters into `dtype`, one at a time, letting go
    of the pages of `files` (the weights it was loaded from) each one was read from.

    Buffers stay as the model made them (as `from_pretrained(dtype=...)` leaves them);
    tied parameters are one parameter and are converted once.
    """
    import torch

    mapped = file_mappings(files)
    with torch.no_grad():
        for parameter in model.parameters():
            source = parameter.data
            if not source.is_floating_point() or source.dtype == dtype:
                continue
            parameter.data = source.to(dtype)
            drop_file_pages(source, mapped)
            del source
    model.config.dtype = dtype
