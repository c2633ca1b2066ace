#!/usr/bin/env bash
# Encoding speed of lazyllm-tokenize against Hugging Face tokenizers (Node bindings) on a text of
# about 100k tokens, in one run. usage: tools/tokenizer/bench.sh BUILD_DIR [TOKENIZERS_DIR]
#   BUILD_DIR: where lazyllm-tokenize was built (examples/tokenize/lazyllm-tokenize below it)
#   TOKENIZERS_DIR: llama3/ and qwen3/ tokenizer folders (default ../shared/models/tokenizers)
# Needs `npm ci` in tools/tokenizer. Prints, per tokenizer: tokens, the CLI's wall and CPU time
# (/usr/bin/time) with its own load and encode times (--timing), HF's load and encode times, and
# whether the two gave the same ids. Best of three runs each.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CLI=$1/examples/tokenize/lazyllm-tokenize
TOK=${2:-$ROOT/../shared/models/tokenizers}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The text, about 100k tokens without repeats: the fixture strings once (every script, emoji,
# digits, whitespace runs), then the project's docs (English, tables, commands) and headers
# (C++), cut at 300,000 bytes (at a line end).
{
  node -e 'for (const l of require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n")) console.log(JSON.parse(l));' \
    "$ROOT/tests/data/hf_tokenizer/strings.jsonl"
  cat "$ROOT"/README.md "$ROOT"/docs/*.md "$ROOT"/include/lazyllm/*/*.hpp
} >"$work/all.txt"
head -c 300000 "$work/all.txt" | sed '$d' >"$work/text.txt"
echo "text: $(wc -c <"$work/text.txt") bytes; $(nproc) CPUs; load average $(cut -d' ' -f1 /proc/loadavg)"
for name in llama3 qwen3; do
  # Three runs of the CLI under /usr/bin/time; the best of each figure is reported.
  for r in 1 2 3; do
    /usr/bin/time -f "%e %U %S" -o "$work/time.$r" "$CLI" -m "$TOK/$name" -f "$work/text.txt" --ids --timing \
      >"$work/ids.lazyllm" 2>"$work/timing.$r"
  done
  n=$(tr ',' '\n' <"$work/ids.lazyllm" | wc -l)
  wall=$(cat "$work"/time.* | awk '{print $1}' | sort -n | head -1)
  cpu=$(cat "$work"/time.* | awk '{print $2 + $3}' | sort -n | head -1)
  load=$(sed -E 's/.*loaded in ([0-9.]+) ms.*/\1/' "$work"/timing.* | sort -n | head -1)
  enc=$(sed -E 's/.*encoded in ([0-9.]+) ms.*/\1/' "$work"/timing.* | sort -n | head -1)
  hf=$(cd "$HERE" && node bench.mjs "$TOK/$name/tokenizer.json" "$work/text.txt" "$work/ids.hf")
  same=$(cmp -s "$work/ids.lazyllm" "$work/ids.hf" && echo "same ids" || echo "IDS DIFFER")
  echo "$name: $n tokens | lazyllm-tokenize: $wall s wall, $cpu s CPU (load $load ms, encode $enc ms) |" \
       "HF tokenizers: $hf | $same"
done
