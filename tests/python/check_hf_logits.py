#!/usr/bin/python3
"""Checks a longtrain HuggingFace export against longtrain's own logits.

For each CASE directory (written by test_hf_export's HfLogits tests):
  CASE/hf/          the fp32 export: config.json, model.safetensors
  CASE/hf_bf16/     the same checkpoint exported as bf16 in shards with an index
  CASE/logits.bin   b"LTLOGIT1", int64 tokens, vocab, int32 tokens[tokens],
                    float32 logits[tokens][vocab] (longtrain's trained model on that input)

it parses the safetensors files with the standard library and numpy (no safetensors package),
builds a Llama / Qwen2 decoder in PyTorch from config.json alone, following transformers'
modeling code (RMSNorm, rotate-half RoPE with the default, linear and llama3 frequency rules,
GQA, SwiGLU, q/k/v biases for qwen2, tied or untied head), runs the tokens in fp32 and requires
the logits to match: max |diff| / max |logit| <= 1e-4, overall and at every position. It also
checks that the bf16 shards hold exactly the fp32 weights rounded to nearest even and that the
index lists every tensor with the right total size.

Usage: /usr/bin/python3 check_hf_logits.py CASE [CASE ...]   (Debian's python3-torch, numpy)
"""
import json
import math
import os
import struct
import sys

import numpy as np

try:
    import torch
except ImportError:
    sys.exit("check_hf_logits.py needs PyTorch: run it with Debian's /usr/bin/python3 "
             "(apt-get install python3-torch python3-numpy)")

TOLERANCE = 1e-4
NUMPY_DTYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2")}


class CheckFailed(Exception):
    pass


def read_safetensors(path):
    """{name: (dtype, array)} and the metadata; BF16 arrays hold the raw uint16 bits."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", None)
    data = memoryview(blob)[8 + n:]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype=NUMPY_DTYPES[info["dtype"]])
        tensors[name] = (info["dtype"], array.reshape(info["shape"]))
    return metadata, tensors


def read_model_dir(hf_dir):
    """Every tensor of an HF directory (model.safetensors, or the index and its shards)."""
    index_path = os.path.join(hf_dir, "model.safetensors.index.json")
    if not os.path.exists(index_path):
        metadata, tensors = read_safetensors(os.path.join(hf_dir, "model.safetensors"))
        if metadata != {"format": "pt"}:
            raise CheckFailed(f"{hf_dir}/model.safetensors: metadata {metadata}")
        return tensors
    with open(index_path) as f:
        index = json.load(f)
    tensors = {}
    for file in sorted(set(index["weight_map"].values())):
        metadata, part = read_safetensors(os.path.join(hf_dir, file))
        if metadata != {"format": "pt"}:
            raise CheckFailed(f"{hf_dir}/{file}: metadata {metadata}")
        for name, value in part.items():
            if index["weight_map"].get(name) != file:
                raise CheckFailed(f"{hf_dir}/{file}: {name} is not mapped to it by the index")
            tensors[name] = value
    if set(tensors) != set(index["weight_map"]):
        raise CheckFailed(f"{index_path}: maps tensors no shard holds")
    total = sum(array.nbytes for _, array in tensors.values())
    if index["metadata"]["total_size"] != total:
        raise CheckFailed(f"{index_path}: total_size {index['metadata']['total_size']}, "
                          f"the shards hold {total} bytes")
    return tensors


def as_float32(dtype, array):
    if dtype == "BF16":
        return (array.astype(np.uint32) << 16).view(np.float32)
    return array.astype(np.float32)


def round_to_bf16(x):
    """fp32 -> bf16 bits, round to nearest even (finite values)."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def read_logits(path):
    with open(path, "rb") as f:
        if f.read(8) != b"LTLOGIT1":
            raise CheckFailed(f"{path}: bad magic")
        count, vocab = struct.unpack("<2q", f.read(16))
        tokens = np.frombuffer(f.read(4 * count), dtype="<i4").astype(np.int64)
        logits = np.frombuffer(f.read(4 * count * vocab), dtype="<f4").reshape(count, vocab)
    return tokens, logits


def inverse_frequencies(cfg, head_dim):
    """transformers' rope init functions: default, linear, llama3 (modeling_rope_utils.py)."""
    base = cfg.get("rope_theta", 10000.0)
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    scaling = cfg.get("rope_scaling")
    if not scaling:
        return inv_freq
    kind = scaling.get("rope_type", scaling.get("type"))
    factor = scaling["factor"]
    if kind == "linear":
        return inv_freq / factor
    if kind != "llama3":
        raise CheckFailed(f"rope_scaling type {kind} is not one this check knows")
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    old_len = scaling["original_max_position_embeddings"]
    low_wavelen, high_wavelen = old_len / low, old_len / high
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, scaled)


def rms_norm(x, weight, eps):
    variance = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(variance + eps))


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class Decoder:
    """LlamaForCausalLM / Qwen2ForCausalLM forward for one sequence, from config.json and the
    weights alone."""

    def __init__(self, cfg, weights, dtype):
        self.cfg, self.dtype = cfg, dtype
        self.w = {name: torch.from_numpy(np.array(value)).to(dtype)
                  for name, value in weights.items()}
        self.heads = cfg["num_attention_heads"]
        self.kv_heads = cfg.get("num_key_value_heads", self.heads)
        self.head_dim = cfg.get("head_dim") or cfg["hidden_size"] // self.heads
        self.eps = cfg["rms_norm_eps"]
        self.qkv_bias = cfg["model_type"] == "qwen2" or cfg.get("attention_bias", False)
        self.o_bias = cfg["model_type"] == "llama" and cfg.get("attention_bias", False)

    def linear(self, x, name, bias=False):
        y = x @ self.w[name + ".weight"].T
        return y + self.w[name + ".bias"] if bias else y

    def attention(self, x, p, cos, sin):
        t = x.shape[0]
        q = self.linear(x, p + "q_proj", self.qkv_bias).view(t, self.heads, self.head_dim)
        k = self.linear(x, p + "k_proj", self.qkv_bias).view(t, self.kv_heads, self.head_dim)
        v = self.linear(x, p + "v_proj", self.qkv_bias).view(t, self.kv_heads, self.head_dim)
        q, k, v = (a.transpose(0, 1) for a in (q, k, v))  # [heads, t, head_dim]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        groups = self.heads // self.kv_heads  # KV head j serves query heads j*groups ...
        k = k.repeat_interleave(groups, dim=0)
        v = v.repeat_interleave(groups, dim=0)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        probs = torch.softmax(scores.masked_fill(causal, float("-inf")), dim=-1)
        out = (probs @ v).transpose(0, 1).reshape(t, self.heads * self.head_dim)
        return self.linear(out, p + "o_proj", self.o_bias)

    def mlp(self, x, p):
        gate = self.linear(x, p + "gate_proj")
        return self.linear(torch.nn.functional.silu(gate) * self.linear(x, p + "up_proj"),
                           p + "down_proj")

    def logits(self, tokens):
        positions = torch.arange(len(tokens), dtype=torch.float32)
        freqs = positions[:, None] * inverse_frequencies(self.cfg, self.head_dim)[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos().to(self.dtype), emb.sin().to(self.dtype)
        x = self.w["model.embed_tokens.weight"][torch.from_numpy(tokens)]
        for layer in range(self.cfg["num_hidden_layers"]):
            p = f"model.layers.{layer}."
            h = rms_norm(x, self.w[p + "input_layernorm.weight"], self.eps)
            x = x + self.attention(h, p + "self_attn.", cos, sin)
            h = rms_norm(x, self.w[p + "post_attention_layernorm.weight"], self.eps)
            x = x + self.mlp(h, p + "mlp.")
        x = rms_norm(x, self.w["model.norm.weight"], self.eps)
        tied = self.cfg.get("tie_word_embeddings", False)
        head = self.w["model.embed_tokens.weight" if tied else "lm_head.weight"]
        return (x @ head.T).numpy()


def relative_differences(ours, reference):
    """max |diff| / max |reference| overall, and the worst of it per position."""
    diff = np.abs(ours.astype(np.float64) - reference.astype(np.float64))
    overall = diff.max() / np.abs(reference).max()
    per_position = (diff.max(axis=1) / np.abs(reference).max(axis=1)).max()
    return overall, per_position


def expected_tensors(cfg):
    names = {"model.embed_tokens.weight", "model.norm.weight"}
    if not cfg.get("tie_word_embeddings", False):
        names.add("lm_head.weight")
    per_layer = ["input_layernorm.weight", "post_attention_layernorm.weight"]
    per_layer += [f"self_attn.{p}_proj.weight" for p in "qkvo"]
    per_layer += [f"mlp.{p}_proj.weight" for p in ("gate", "up", "down")]
    if cfg["model_type"] == "qwen2":
        per_layer += [f"self_attn.{p}_proj.bias" for p in "qkv"]
    for layer in range(cfg["num_hidden_layers"]):
        names.update(f"model.layers.{layer}.{n}" for n in per_layer)
    return names


def check_bf16_export(case, fp32):
    with open(os.path.join(case, "hf_bf16", "config.json")) as f:
        if json.load(f)["torch_dtype"] != "bfloat16":
            raise CheckFailed(f"{case}/hf_bf16/config.json: torch_dtype is not bfloat16")
    bf16 = read_model_dir(os.path.join(case, "hf_bf16"))
    if set(bf16) != set(fp32):
        raise CheckFailed(f"{case}/hf_bf16: tensors differ from the fp32 export")
    for name, (dtype, bits) in bf16.items():
        if dtype != "BF16" or not np.array_equal(bits, round_to_bf16(fp32[name][1])):
            raise CheckFailed(f"{case}/hf_bf16: {name} is not the fp32 weight rounded to bf16")
    return len(bf16)


def check_case(case):
    with open(os.path.join(case, "hf", "config.json")) as f:
        cfg = json.load(f)
    weights = read_model_dir(os.path.join(case, "hf"))
    if set(weights) != expected_tensors(cfg):
        raise CheckFailed(f"{case}/hf: tensors {sorted(set(weights) ^ expected_tensors(cfg))} "
                          "differ from what config.json implies")
    if any(dtype != "F32" for dtype, _ in weights.values()):
        raise CheckFailed(f"{case}/hf: not every tensor is F32")
    tokens, ours = read_logits(os.path.join(case, "logits.bin"))
    fp32 = {name: as_float32(*value) for name, value in weights.items()}
    with torch.no_grad():
        reference = Decoder(cfg, fp32, torch.float32).logits(tokens)
        exact = Decoder(cfg, fp32, torch.float64).logits(tokens)
    if reference.shape != ours.shape:
        raise CheckFailed(f"{case}: logits {ours.shape}, PyTorch gives {reference.shape}")
    overall, per_position = relative_differences(ours, reference)
    overall64, per_position64 = relative_differences(ours, exact)
    shards = check_bf16_export(case, weights)
    print(f"{case}: {cfg['architectures'][0]}, {len(tokens)} tokens x {ours.shape[1]} logits: "
          f"max |diff| / max |logit| {overall:.3e} (per position, worst {per_position:.3e}) "
          f"against PyTorch fp32; {overall64:.3e} ({per_position64:.3e}) against float64; "
          f"bf16 shards: {shards} tensors rounded to nearest even")
    if not overall <= TOLERANCE or not per_position <= TOLERANCE:
        raise CheckFailed(f"{case}: logits differ from PyTorch's by more than {TOLERANCE} "
                          "relative")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    torch.set_num_threads(1)
    try:
        for case in sys.argv[1:]:
            check_case(case)
    except (CheckFailed, OSError, KeyError, ValueError) as e:
        sys.exit(f"FAILED: {e}")
    print("ok")


if __name__ == "__main__":
    main()
