#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the generated seeds of the fuzz corpus (tests/fuzz/corpus/<target>/seed-*): small valid
and nearly valid files of each binary format, built here from the format descriptions so that no
model file is copied into the repository. Text seeds (configs, schedules, records, command lines)
and the regression inputs of fixed crashes are checked in as they are; this script leaves them
alone. Pure Python 3; deterministic.

  python3 tests/fuzz/make_corpus.py
"""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# ---- safetensors: u64 header length, JSON header, data ----------------------------------------
def safetensors(tensors, pad=True):
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-(8 + len(h)) % 8)
    return struct.pack("<Q", len(h)) + h + data


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def u16(*v):
    return struct.pack("<%dH" % len(v), *v)


put("safetensors", "f32", safetensors([("a", "F32", [2, 3], f32(1, -2, 3.5, 0, -0.5, 100)), ("b", "F32", [3], f32(7, 8, 9))]))
put("safetensors", "f16-bf16", safetensors([("h", "F16", [4], u16(0x3C00, 0x7BFF, 0x7C00, 0x8001)),
                                            ("b", "BF16", [2, 2], u16(0x3F80, 0xC0A0, 0x7F80, 0x0001))]))
put("safetensors", "empty-and-odd", safetensors([("pad", "F16", [1], u16(0x3C00)), ("x", "F32", [2], f32(1.5, -2.5)),
                                                 ("e", "F32", [0, 4], b"")], pad=False))
put("safetensors", "metadata-only", safetensors([]))

# ---- llama2.c checkpoints --------------------------------------------------------------------
# dim 4, hidden 6, 2 layers, 2 heads, 1 KV head, vocab 5, seq 3: the tests' tiny shape.
D, H, L, NH, NKV, V, S = 4, 6, 2, 2, 1, 5, 3
KV, HD = D // NH * NKV, D // NH


def llama2c(v1, tied, fill=lambda i: (i % 7) * 0.25 - 0.5):
    n = L * (2 * D + 2 * D * D + 2 * D * KV + 3 * D * H) + V * D * (1 if tied else 2) + D
    if not v1:
        n += S * HD
    body = f32(*[fill(i) for i in range(n)])
    if v1:
        head = struct.pack("<Ii7iB", 0x616B3432, 1, D, H, L, NH, NKV, V, S, 1 if tied else 0)
        head += b"\0" * (256 - len(head))
    else:
        head = struct.pack("<7i", D, H, L, NH, NKV, V if tied else -V, S)
    return head + body


for v1 in (False, True):
    for tied in (False, True):
        put("llama2c", "%s-%s" % ("v1" if v1 else "legacy", "tied" if tied else "untied"), llama2c(v1, tied))
# The model run is steered by the input's last byte (policy, sampler, layout); the fuzzer varies
# it. A NaN embedding (the case that once ran silently, printing id 0 for every token):
put("llama2c", "legacy-nan", llama2c(False, True, fill=lambda i: float("nan") if i < V * D else 0.125))
put("llama2c", "header-only", struct.pack("<7i", D, H, L, NH, NKV, V, S))
put("llama2c", "huge-dim", struct.pack("<7i", 1 << 30, 4, 1, 1 << 29, 1 << 29, 5, 3) + b"\0" * 12)

# ---- llama2.c tokenizer.bin, behind the target's 2-byte text length and the text ---------------
def tokenizer_bin(pieces, max_len=None):
    max_len = max_len or max(1, max(len(p) for p, _ in pieces))
    out = struct.pack("<i", max_len)
    for p, score in pieces:
        out += struct.pack("<fi", score, len(p)) + p
    return out


base = [(b"<unk>", 0.0), (b"\n<s>\n", 0.0), (b"\n</s>\n", 0.0)] + [(b"<0x%02X>" % i, 0.0) for i in range(256)]
merges = [(b" ", -1.0), (b"a", -2.0), (b"b", -3.0), (b" a", -4.0), (b"ab", -5.0), (b" ab", -6.0), (b"\xc3\xa9", -7.0)]
for name, text, pieces in [("bytes", b"hello", base), ("merges", b" ab ab a\xc3\xa9b", base + merges),
                           ("tiny", b"a", [(b"<unk>", 0.0), (b"<s>", 0.0), (b"</s>", 0.0), (b"a", -1.0)])]:
    put("tokenizer_bin", name, struct.pack("<H", len(text)) + text + tokenizer_bin(pieces))


# ---- SentencePiece ModelProto (protobuf), by hand ---------------------------------------------
def varint(n):
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def field(num, wire, payload):
    key = varint(num << 3 | wire)
    if wire == 0:
        return key + varint(payload)
    if wire == 5:
        return key + struct.pack("<f", payload)
    return key + varint(len(payload)) + payload  # wire 2


def sp_model(pieces, model_type, byte_fallback=False):
    # ModelProto: 1 pieces {1 piece, 2 score, 3 type}, 2 trainer_spec {3 model_type, 35 byte_fallback,
    # 40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id (int32: -1 as 10 varint bytes)}, 3 normalizer_spec
    # {1 name, 3 add_dummy_prefix, 4 remove_extra_whitespaces, 5 escape_whitespaces}.
    out = b""
    for p, score, t in pieces:
        out += field(1, 2, field(1, 2, p.encode()) + field(2, 5, score) + field(3, 0, t))
    spec = field(3, 0, model_type) + field(40, 0, 0) + field(41, 0, 1) + field(42, 0, 2) + field(43, 0, (1 << 64) - 1)
    if byte_fallback:
        spec += field(35, 0, 1)
    out += field(2, 2, spec)
    out += field(3, 2, field(1, 2, b"identity") + field(3, 0, 1) + field(4, 0, 1) + field(5, 0, 1))
    return out


NORMAL, UNKNOWN, CONTROL, BYTE = 1, 2, 3, 6
sp_pieces = [("<unk>", 0.0, UNKNOWN), ("<s>", 0.0, CONTROL), ("</s>", 0.0, CONTROL)]
words = [("\u2581", -1.0, NORMAL), ("\u2581a", -2.0, NORMAL), ("a", -3.0, NORMAL), ("b", -3.5, NORMAL),
         ("\u2581ab", -4.0, NORMAL), ("l", -5.0, NORMAL), ("o", -5.5, NORMAL), ("H", -6.0, NORMAL)]
put("sentencepiece", "bpe", sp_model(sp_pieces + words, 2))
put("sentencepiece", "unigram", sp_model(sp_pieces + words, 1))
put("sentencepiece", "bpe-bytes", sp_model(sp_pieces + [("<0x%02X>" % i, 0.0, BYTE) for i in range(256)] + words, 2,
                                           byte_fallback=True))

# ---- model.safetensors.index.json next to the target's tiny model ------------------------------
names = ["model.embed_tokens.weight", "model.norm.weight"] + [
    "model.layers.0." + n for n in ("input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                    "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                                    "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                                    "mlp.down_proj.weight")]
for name, where in [("one-shard", lambda i: "model-1.safetensors"),
                    ("two-shards", lambda i: "model-1.safetensors" if i % 2 else "sub/model-2.safetensors"),
                    ("escape-dotdot", lambda i: "../outside.safetensors" if i == 3 else "model-1.safetensors"),
                    ("escape-link", lambda i: "escape.safetensors" if i == 0 else "model-1.safetensors")]:
    put("hf_index", name, json.dumps({"metadata": {"total_size": 0}, "weight_map": {n: where(i) for i, n in enumerate(names)}}))
