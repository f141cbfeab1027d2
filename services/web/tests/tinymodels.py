"""Tiny language models built on the spot for tests: no network, a few hundred KB each.

A byte-level BPE tokenizer is trained with `tokenizers` on a few sentences;
GPT-2 and Llama models with two layers use it, and a Gemma 3 with sliding-window
layers (a window of 8 positions, so short prompts already slide), saved as
safetensors. A tiny
Llama is also written as a quantized GGUF file with the `gguf` package.
"""

from __future__ import annotations

import json
from pathlib import Path

SENTENCES = [
    "How do I mow my lawn?",
    "We have a lot of new SOCs in stock.",
    "Quarterly report on sales in the northern region.",
    "Meeting notes: the product launch has been moved to next spring because",
    "Dear customer, thank you for your order. Unfortunately",
    "The history of the bicycle begins in the early nineteenth century, when",
    "Safety procedures for the warehouse loading dock.",
    "Recipe: a simple vegetable soup for four people.",
    "A short guide to writing clear emails at work.",
]
SPECIAL_TOKENS = ["<|endoftext|>", "<pad>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|endoftext|>{{ m['role'] }}\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|endoftext|>assistant\n{% endif %}"
)
CONTEXT = 128


def train_tokenizer(vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(SENTENCES, trainer)
    return tokenizer


def hf_tokenizer(chat: bool):
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_tokenizer(),
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<pad>",
        padding_side="left",
    )
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_model(
    kind: str,
    folder: Path,
    *,
    chat: bool = False,
    seed: int = 0,
    context: int = CONTEXT,
    init_std: float = 0.02,
) -> Path:
    """Save a random small `gpt2`, `llama` or `gemma3` model with its tokenizer in `folder`."""
    import torch
    from transformers import (
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
    )

    tokenizer = hf_tokenizer(chat)
    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    torch.manual_seed(seed)
    if kind == "gpt2":
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_positions=context,
            n_embd=64,
            n_layer=2,
            n_head=2,
            **special,
        )
        model = GPT2LMHeadModel(config)
    elif kind == "gemma3":
        config = Gemma3TextConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=3,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=32,
            sliding_window=8,
            layer_types=["sliding_attention", "sliding_attention", "full_attention"],
            max_position_embeddings=context,
            **special,
        )
        model = Gemma3ForCausalLM(config)
    else:
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            max_position_embeddings=context,
            tie_word_embeddings=True,
            initializer_range=init_std,
            **special,
        )
        model = LlamaForCausalLM(config)
    model.eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def write_pickle_only_model(source: Path, folder: Path) -> Path:
    """A model folder whose weights exist only as a pickle (`pytorch_model.bin`)."""
    import torch
    from safetensors.torch import load_file

    folder.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.suffix != ".safetensors":
            (folder / path.name).write_bytes(path.read_bytes())
    torch.save(load_file(source / "model.safetensors"), folder / "pytorch_model.bin")
    return folder


# llama.cpp's tensor names for a Hugging Face Llama layer.
_GGUF_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def _permute(weights, heads: int):
    # llama.cpp stores q/k rotated pair-wise; transformers undoes this when loading a GGUF.
    return (
        weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_gguf(path: Path, *, seed: int = 1) -> Path:
    """Write a tiny Llama with a GPT-2 style tokenizer as a Q8_0 GGUF file."""
    import gguf
    import numpy as np
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = train_tokenizer()
    vocab = tokenizer.get_vocab()
    tokens = sorted(vocab, key=vocab.get)
    merges = json.loads(tokenizer.to_str())["model"]["merges"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in merges]
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokens),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=CONTEXT,
        tie_word_embeddings=True,
    )
    state = LlamaForCausalLM(config).eval().state_dict()
    quant = gguf.GGMLQuantizationType.Q8_0

    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_name("tiny-llama")
    writer.add_context_length(CONTEXT)
    writer.add_embedding_length(64)
    writer.add_block_count(2)
    writer.add_feed_forward_length(128)
    writer.add_head_count(2)
    writer.add_head_count_kv(1)
    writer.add_rope_dimension_count(32)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_vocab_size(len(tokens))
    writer.add_file_type(int(gguf.LlamaFileType.MOSTLY_Q8_0))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [
            int(gguf.TokenType.CONTROL) if t in SPECIAL_TOKENS else int(gguf.TokenType.NORMAL)
            for t in tokens
        ]
    )
    writer.add_token_merges(merges)
    writer.add_bos_token_id(vocab["<|endoftext|>"])
    writer.add_eos_token_id(vocab["<|endoftext|>"])
    writer.add_unk_token_id(vocab["<|endoftext|>"])
    writer.add_pad_token_id(vocab["<pad>"])
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)

    def put(name: str, tensor) -> None:
        array = tensor.detach().float().numpy()
        if array.ndim == 2:
            writer.add_tensor(name, gguf.quants.quantize(array, quant), raw_dtype=quant)
        else:
            writer.add_tensor(name, array.astype(np.float32))

    put("token_embd.weight", state["model.embed_tokens.weight"])
    put("output_norm.weight", state["model.norm.weight"])
    for layer in range(2):
        for hf_name, gguf_name in _GGUF_NAMES.items():
            tensor = state[f"model.layers.{layer}.{hf_name}.weight"]
            if gguf_name == "attn_q":
                tensor = torch.from_numpy(_permute(tensor.numpy(), 2))
            elif gguf_name == "attn_k":
                tensor = torch.from_numpy(_permute(tensor.numpy(), 1))
            put(f"blk.{layer}.{gguf_name}.weight", tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
