#!/usr/bin/env bash
# tools/train/make_tokenizer.py --extend on the shipped tokenizer with filler text
# (lazyllm-make-task --filler): every old piece keeps its id and score, texts without notes encode
# as before, and every word of the filler texts is one token (make_tokenizer.py --check).
#
# usage: tests/tokenizer_extend.sh MAKE_TASK PYTHON3
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
MT=$1
PY=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for s in 1 2; do "$MT" --seed 70000$s --count 3 --length 1024 --filler 0.8 --emit-prompt 2>/dev/null; done >"$work/f.jsonl"
"$MT" --seed 70003 --count 3 --length 1024 --emit-prompt 2>/dev/null >"$work/plain.jsonl"
"$PY" "$ROOT/tools/train/make_tokenizer.py" --extend "$ROOT/models/lazyqa/tokenizer.bin" --jsonl "$work/f.jsonl" \
  -o "$work/t.bin"
"$PY" "$ROOT/tools/train/make_tokenizer.py" --check "$work/t.bin" --jsonl "$work/f.jsonl" --jsonl "$work/plain.jsonl"
"$PY" - "$ROOT" "$work" <<'PYEOF'
import json, sys
sys.path.insert(0, sys.argv[1] + "/tools/train")
from make_tokenizer import Tokenizer
base = Tokenizer.load(sys.argv[1] + "/models/lazyqa/tokenizer.bin")
ext = Tokenizer.load(sys.argv[2] + "/t.bin")
assert ext.vocab_size > base.vocab_size, (ext.vocab_size, base.vocab_size)
assert ext.pieces[:base.vocab_size] == base.pieces, "an old piece moved"
assert ext.scores[:base.vocab_size] == base.scores, "an old score changed"
assert max(ext.scores[base.vocab_size:]) < min(base.scores[259:]), "a new piece scores above an old merge"
for line in open(sys.argv[2] + "/plain.jsonl"):
    t = json.loads(line)["prompt"]
    assert base.encode(t, True) == ext.encode(t, True), "a text without notes encodes differently"
print(f"tokenizer_extend: {base.vocab_size} -> {ext.vocab_size} pieces, old ids and scores kept")
PYEOF
