#!/usr/bin/env bash
# The driver on Llama 3- and Qwen2-shaped checkpoints with text prompts through their own
# tokenizer.json (../shared/models/tokenizers): a tiny random model of each family with the real
# vocabulary size (tests/make_tiny_hf.py), the tokenizer given with -z or found beside config.json,
# plain text and --chat in the family's format (Llama 3 headers, ChatML), dense and LazyLLM.
# Exit 77 (skipped) when the tokenizers are absent or the build has no tokenizer.json support.
#
# usage: tests/driver_families.sh DRIVER PYTHON3 TOKENIZERS_DIR HAS_HF_TOKENIZER
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DRIVER=$1 PY=$2 TOKS=$3 HF=$4
if [[ ! -f $TOKS/llama3/tokenizer.json || ! -f $TOKS/qwen3/tokenizer.json ]]; then
  echo "SKIPPED: $TOKS/{llama3,qwen3}/tokenizer.json not found (../shared absent)"
  exit 77
fi
if [[ $HF != ON && $HF != 1 && $HF != TRUE ]]; then
  echo "SKIPPED: built without tokenizer.json support (LAZYLLM_HF_TOKENIZER)"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" "$ROOT/tests/make_tiny_hf.py" "$work/llama3" llama3 128256
"$PY" "$ROOT/tests/make_tiny_hf.py" "$work/qwen2" qwen2 151936  # Qwen pads past the tokenizer's 151669 ids

expect() {  # expect NAME PATTERN FILE
  if ! grep -qE -- "$2" "$3"; then
    echo "FAIL ($1): no match for '$2' in:"
    cat "$3"
    exit 1
  fi
}
run() {  # run NAME ARGS...: exit 0 expected; stderr+stdout in $work/NAME.log
  local name=$1
  shift
  local rc=0
  "$DRIVER" "$@" >"$work/$name.log" 2>&1 || rc=$?
  if [[ $rc != 0 ]]; then
    echo "FAIL ($name): exit $rc from $DRIVER $*"
    cat "$work/$name.log"
    exit 1
  fi
}

# Llama 3: the tokenizer given with -z; "Hello world" is [128000, 9906, 1917] in HF tokenizers.
run l3_text -m "$work/llama3" -z "$TOKS/llama3/tokenizer.json" -p "Hello world" -n 4 --verbose-prompt
expect l3_text "tokenizer: .*llama3/tokenizer.json \(128256 pieces\)" "$work/l3_text.log"
expect l3_text "prompt: 3 tokens \(text" "$work/l3_text.log"
expect l3_text "128000 -> ''" "$work/l3_text.log"  # special tokens decode to no text
expect l3_text "9906 -> 'Hello'" "$work/l3_text.log"
expect l3_text "1917 -> ' world'" "$work/l3_text.log"
expect l3_text "rope_type=llama3 factor=8" "$work/l3_text.log"

# The tokenizer beside config.json (found without -z), --chat in the Llama 3 format, LazyLLM.
cp "$TOKS/llama3/tokenizer.json" "$TOKS/llama3/tokenizer_config.json" "$work/llama3/"
run l3_chat -m "$work/llama3" --chat -p "Hi" -n 4 --policy lazy --schedule 1:0.5 --verbose-prompt
expect l3_chat "prompt: [0-9]+ tokens \(chat" "$work/l3_chat.log"
expect l3_chat " 128006 -> ''" "$work/l3_chat.log"  # <|start_header_id|>
expect l3_chat " 128009 -> ''" "$work/l3_chat.log"  # <|eot_id|>
expect l3_chat "13347 -> 'Hi'" "$work/l3_chat.log"

# Qwen2 shape (q/k/v biases) with the Qwen3 tokenizer and its ChatML template.
run q2_chat -m "$work/qwen2" -z "$TOKS/qwen3/tokenizer.json" --chat -p "What is 2+2?" -n 4 --verbose-prompt
expect q2_chat "tokenizer: .*qwen3/tokenizer.json" "$work/q2_chat.log"
expect q2_chat "prompt: [0-9]+ tokens \(chat" "$work/q2_chat.log"
expect q2_chat " 151644 -> ''" "$work/q2_chat.log"  # <|im_start|>
expect q2_chat " 151645 -> ''" "$work/q2_chat.log"  # <|im_end|>
expect q2_chat "qkv_bias" "$work/q2_chat.log"
run q2_lazy -m "$work/qwen2" -z "$TOKS/qwen3/tokenizer.json" -p "The capital of France is" -n 4 --policy lazy --schedule 1:0.5
expect q2_lazy "prompt: [0-9]+ tokens \(text" "$work/q2_lazy.log"

# A vocabulary larger than the model's is still refused in one line.
if "$DRIVER" -m "$work/llama3" -z "$TOKS/qwen3/tokenizer.json" -p "x" -n 1 >"$work/bad.log" 2>&1; then
  echo "FAIL (bad): a tokenizer with more ids than the model was accepted"
  exit 1
fi
expect bad "does not match the model's \(128256\)" "$work/bad.log"
echo "driver_families: ok"
