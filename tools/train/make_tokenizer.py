#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Builds the lazyqa model's llama2.c-format tokenizer.bin, and encodes text exactly as
include/lazyllm/text/llama2c_tokenizer.hpp does (pure Python 3, no dependencies).

Vocabulary: ids 0 <unk>, 1 <s>, 2 </s>, 3..258 the byte pieces <0x00>..<0xFF>, then every
printable ASCII character plus newline and tab as a single-character piece, then the merges of a
byte-pair encoding trained on the "words" of the generator's output until each such word is one
piece (see build()). A word is one match of WORD_RE: a run of letters or of digits with an
optional leading space, "'s", a newline or one other character; the numbers " 1" .. " 256"
(document numbers) are always words. Every piece is a substring of one word and no word
contains a word boundary, so no merge crosses a boundary: every word seen in the generator's
output encodes as exactly one token, and anything else falls back to shorter pieces or bytes.

Scores (higher merges first, as SentencePiece orders them): merge k of the training scores -k;
byte and special pieces score 0 as in Llama 2's tokenizer.bin.

Usage:
  make_tokenizer.py --make-task build/examples/eval/lazyllm-make-task -o models/lazyqa/tokenizer.bin
  make_tokenizer.py --jsonl a.jsonl [--jsonl b.jsonl] -o tokenizer.bin
  make_tokenizer.py --extend models/lazyqa/tokenizer.bin --jsonl filler.jsonl -o tokenizer.bin
  make_tokenizer.py --check tokenizer.bin --jsonl prompts.jsonl   (prints ids/words statistics)
"""
import argparse
import heapq
import json
import re
import struct
import subprocess
import sys

WORD_RE = re.compile(r" ?[A-Za-z]+| ?[0-9]+|'s|\n|[^\n]", re.S)
UNK, BOS, EOS = 0, 1, 2
N_SPECIAL = 3 + 256  # <unk>, <s>, </s>, 256 byte pieces


def f32(x):
    """x rounded to float32, as the C++ reader stores scores."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def utf8_groups(data):
    """Splits bytes the way detail::utf8_group_length does: a lead byte plus up to 3 following
    continuation bytes (10xxxxxx)."""
    i, out = 0, []
    while i < len(data):
        n = 1
        while n < 4 and i + n < len(data) and (data[i + n] & 0xC0) == 0x80:
            n += 1
        out.append(data[i:i + n])
        i += n
    return out


class Tokenizer:
    """A llama2.c tokenizer.bin. Pieces are kept as bytes (the file stores raw bytes)."""

    def __init__(self, pieces, scores, max_token_length=None):
        self.pieces = list(pieces)
        self.scores = [f32(s) for s in scores]
        self.max_token_length = max_token_length or max(1, max(len(p) for p in self.pieces))
        self.ids = {}
        for i, p in enumerate(self.pieces):
            self.ids.setdefault(p, i)  # first (lowest) id wins, as in the C++ reader
        self._word_cache = {}

    # ---- file format -------------------------------------------------------------------
    @classmethod
    def load(cls, path):
        with open(path, "rb") as f:
            data = f.read()
        (max_len,) = struct.unpack_from("<i", data, 0)
        pos, pieces, scores = 4, [], []
        while pos < len(data):
            score, n = struct.unpack_from("<fi", data, pos)
            pos += 8
            pieces.append(data[pos:pos + n])
            scores.append(score)
            pos += n
        return cls(pieces, scores, max_len)

    def save(self, path):
        with open(path, "wb") as f:
            f.write(struct.pack("<i", self.max_token_length))
            for p, s in zip(self.pieces, self.scores):
                f.write(struct.pack("<fi", s, len(p)))
                f.write(p)

    @property
    def vocab_size(self):
        return len(self.pieces)

    # ---- encoding (exact replica of Llama2cTokenizer::encode) -----------------------------
    def byte_id(self, b):
        return b + 3 if b + 3 < self.vocab_size else UNK

    def encode(self, text, add_bos=False):
        """Exact: dummy-prefix space, one symbol per UTF-8 group (bytes when not a piece), then
        repeatedly merge the adjacent pair whose concatenated piece scores highest, leftmost on
        ties."""
        out = [BOS] if add_bos else []
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        if not data:
            return out
        return out + self._bpe(b" " + data)

    def _bpe(self, data):
        """BPE of `data` with no dummy prefix. A heap keyed on (-score, position of the left
        symbol) replaces the C++ linear scan; positions keep their order as symbols merge, so the
        leftmost best pair is the same one."""
        sym = []
        for g in utf8_groups(data):
            i = self.ids.get(g)
            if i is not None:
                sym.append(i)
            else:
                sym.extend(self.byte_id(b) for b in g)
        n = len(sym)
        nxt = list(range(1, n + 1))
        prv = list(range(-1, n - 1))
        alive = [True] * n
        heap = []

        def push(i):
            j = nxt[i]
            if j < n:
                m = self.ids.get(self.pieces[sym[i]] + self.pieces[sym[j]])
                if m is not None:
                    heapq.heappush(heap, (-self.scores[m], i, sym[i], sym[j], m))

        for i in range(n - 1):
            push(i)
        while heap:
            _, i, a, b, m = heapq.heappop(heap)
            if not alive[i]:
                continue
            j = nxt[i]
            if j >= n or sym[i] != a or sym[j] != b:
                continue  # stale entry
            sym[i] = m
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[j] < n:
                prv[nxt[j]] = i
            push(i)
            if prv[i] >= 0:
                push(prv[i])
        res, i = [], 0
        while i < n:
            res.append(sym[i])
            i = nxt[i]
        return res

    def encode_fast(self, text, add_bos=False):
        """Same ids as encode() for text whose words (WORD_RE over the text with its dummy-prefix
        space) never merge across word boundaries, which holds for this module's vocabularies
        (every piece is a substring of one word): each word is encoded once and cached. Checked
        against encode() by --check, the tests and train.py."""
        out = [BOS] if add_bos else []
        if not text:
            return out
        return out + self.encode_words(" " + text)

    def encode_words(self, text):
        """Ids of `text` as it encodes in the middle of a longer text (no dummy prefix), word by
        word: e.g. the target continuation " " + answer after a prompt."""
        out, cache = [], self._word_cache
        for w in WORD_RE.findall(text):
            ids = cache.get(w)
            if ids is None:
                ids = cache[w] = self._bpe(w.encode("utf-8"))
            out.extend(ids)
        return out

    def decode(self, ids):
        out = b""
        prev = BOS
        for i in ids:
            if i in (BOS, EOS):
                prev = i
                continue
            p = self.pieces[i]
            if i == UNK:
                out += " \u2047 ".encode()
            elif len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">") and 3 <= i < N_SPECIAL:
                out += bytes([int(p[3:5], 16)])
            else:
                if prev == BOS and p.startswith(b" "):
                    p = p[1:]
                out += p
            prev = i
        return out.decode("utf-8", errors="replace")


def words_of(text):
    return WORD_RE.findall(text)


def _learn_merges(segs, freq, known):
    """Byte-pair merging of the words' segmentations `segs` (word -> list of pieces, updated in
    place), weighted by `freq`, until every word is one piece: the most frequent adjacent pair
    first, ties by bytes. Returns the merged pieces not already in `known` (which grows), in the
    order learned."""
    merges = []
    while True:
        pairs = {}
        for w, s in segs.items():
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + freq[w]
        if not pairs:
            return merges
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))  # most frequent; ties by bytes
        m = a + b
        if m not in known:
            known.add(m)
            merges.append(m)
        for w, s in segs.items():
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(m)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            segs[w] = out


def _fix_up(make, freq):
    """The tokenizer make(extra) once every word of `freq` encodes as one token: while one does
    not, the concatenation of its first two pieces becomes an extra piece (scored below the rest)."""
    extra = []
    for _ in range(1000):
        tok = make(extra)
        stuck = None
        for w in sorted(freq):
            ids = tok._bpe(w)
            if len(ids) > 1:
                stuck = tok.pieces[ids[0]] + tok.pieces[ids[1]]
                break
        if stuck is None:
            return tok
        extra.append(stuck)
    raise RuntimeError("BPE fix-up did not converge")


def build(word_counts, min_count=1):
    """Tokenizer whose pieces are the specials, bytes, single characters and the merges of a
    byte-pair encoding trained on the words seen at least min_count times, run until every such
    word is one piece. Merge k scores -k, so the encoder tries merges in the order they were
    learned. The encoder looks pieces up by their text, not by the learned pair, so it can reach a
    piece along another path; any word it then leaves in several pieces gets its first two pieces'
    concatenation as an extra piece (lower score), repeated until every word is one token."""
    singles = [bytes([c]) for c in range(0x20, 0x7F)] + [b"\n", b"\t"]
    freq = {w.encode("utf-8"): c for w, c in word_counts.items() if c >= min_count}
    segs = {w: [bytes([b]) for b in w] for w in freq}
    merges = _learn_merges(segs, freq, set(singles))

    def make(extra):
        pieces = [b"<unk>", b"<s>", b"</s>"] + [b"<0x%02X>" % b for b in range(256)] + singles + merges + extra
        n_norm = len(singles) + len(merges) + len(extra)
        # Singles score highest (never formed by a merge, so their score only orders nothing),
        # then merges in learned order, then the fix-up pieces.
        scores = [0.0] * N_SPECIAL + [-float(r) for r in range(n_norm)]
        return Tokenizer(pieces, scores)

    return _fix_up(make, freq)


def extend(base, word_counts, min_count=1):
    """`base` plus pieces for the words (seen at least min_count times) that it does not encode as
    one token. Every piece of `base` keeps its id and score, so a model trained with `base` keeps
    its embedding rows (train.py --init grows the embedding for the new ids). The new words are
    taken as `base` segments them, and byte-pair merging continues on them as in build(), each new
    merge scoring below every merge of `base`, so words `base` already knew encode as before; the
    same fix-up then runs until every word, old or new, is one token."""
    freq = {w.encode("utf-8"): c for w, c in word_counts.items() if c >= min_count}
    segs = {}
    for w in freq:
        ids = base._bpe(w)
        if len(ids) > 1:
            segs[w] = [base.pieces[i] for i in ids]
    if any(base.ids.get(p) is None for s in segs.values() for p in s):
        raise ValueError("extend: a word falls back to byte pieces in the base tokenizer")
    merges = _learn_merges(segs, freq, set(base.pieces))
    lowest = min(base.scores[N_SPECIAL:])

    def make(extra):
        new = merges + extra
        return Tokenizer(base.pieces + new, base.scores + [lowest - 1 - r for r in range(len(new))])

    return _fix_up(make, freq)


def run_make_task(exe, seeds, count, lengths, variants):
    """Prompts and answers from lazyllm-make-task over seeds x lengths x variants."""
    texts = []
    for s in seeds:
        for L in lengths:
            for v in variants:
                cmd = [exe, "--seed", str(s), "--count", str(count), "--length", str(L), "--variant", v,
                       "--emit-prompt"]
                res = subprocess.run(cmd, check=True, capture_output=True, text=True)
                for line in res.stdout.splitlines():
                    if line.strip():
                        r = json.loads(line)
                        texts.append(r["prompt"] + " " + r["answers"][0])
    return texts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--make-task", help="path to lazyllm-make-task")
    ap.add_argument("--seeds", default="1000000:1000200", help="seed range A:B for --make-task")
    ap.add_argument("--count", type=int, default=4)
    ap.add_argument("--lengths", default="512")
    ap.add_argument("--jsonl", action="append", default=[], help="generator JSONL (prompt or context+input)")
    ap.add_argument("--min-count", type=int, default=1)
    ap.add_argument("--check", help="tokenizer.bin to check against the texts instead of building")
    ap.add_argument("--cpp", help="with --check: also compare with this build of tools/train/encode_ids.cpp "
                    "(the C++ Llama2cTokenizer)")
    ap.add_argument("--extend", help="tokenizer.bin to extend instead of building afresh: its pieces keep their "
                    "ids and scores, the texts' new words get pieces after them (a model trained with it can "
                    "continue with train.py --init)")
    ap.add_argument("-o", "--output")
    a = ap.parse_args()

    texts = []
    if a.make_task:
        lo, hi = (int(x) for x in a.seeds.split(":"))
        texts += run_make_task(a.make_task, range(lo, hi, 1), a.count, [int(x) for x in a.lengths.split(",")],
                               ["single", "twohop"])
    for path in a.jsonl:
        with open(path) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    texts.append(r.get("prompt", r.get("context", "") + r.get("input", "")) + " " + r["answers"][0])
    if not texts:
        ap.error("no texts: give --make-task or --jsonl")

    if a.check:
        tok = Tokenizer.load(a.check)
        bad = 0
        for t in texts:
            exact, fast = tok.encode(t, True), tok.encode_fast(t, True)
            if exact != fast or len(exact) != 1 + len(words_of(" " + t)):
                bad += 1
        print(f"{len(texts)} texts, {bad} where fast != exact or a word is not one token; vocab {tok.vocab_size}")
        if a.cpp:
            lines = "".join(t.replace("\\", "\\\\").replace("\n", "\\n") + "\n" for t in texts)
            res = subprocess.run([a.cpp, a.check], input=lines, capture_output=True, text=True, check=True)
            cpp = [[int(x) for x in line.split(",")] for line in res.stdout.splitlines()]
            diff = sum(1 for t, c in zip(texts, cpp) if tok.encode(t, True) != c) + abs(len(cpp) - len(texts))
            n_tok = sum(len(c) for c in cpp)
            print(f"C++ Llama2cTokenizer: {len(cpp)} texts, {n_tok} tokens, {diff} texts whose ids differ from Python's")
            bad += diff
        return 1 if bad else 0

    counts = {}
    for t in texts:
        for w in words_of(" " + t):  # with the dummy-prefix space, as the encoder sees it
            counts[w] = counts.get(w, 0) + 1
    for n in range(1, 257):  # document numbers, whatever lengths the sample had
        counts[" %d" % n] = max(counts.get(" %d" % n, 0), a.min_count)
    tok = extend(Tokenizer.load(a.extend), counts, a.min_count) if a.extend else build(counts, a.min_count)
    if a.output:
        tok.save(a.output)
    n_words = sum(1 for c in counts.values() if c >= a.min_count)
    print(f"{len(texts)} texts, {n_words} distinct words, vocab {tok.vocab_size}, "
          f"max piece {tok.max_token_length} bytes" + (f" -> {a.output}" if a.output else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
