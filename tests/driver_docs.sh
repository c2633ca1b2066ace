#!/usr/bin/env bash
# Runs every command of docs/driver.md's "Examples with the tiny models" section as written, the
# way a new user pastes them: same variables, same relative paths, from a repository-like folder.
# A command followed by a "# lazyllm-llama2: error: TEXT ..." line must fail with TEXT on stderr;
# every other command must exit 0.
#
# usage: tests/driver_docs.sh DRIVER MODELS_DIR [cpu|cuda]
#   DRIVER      the built lazyllm-llama2
#   MODELS_DIR  the folder the docs call ../shared/models (stories260K.bin, tokenizer.model)
#   backend     appended as --backend to every $D command (default cpu)
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DRIVER=$(realpath "$1")
MODELS=$(realpath "$2")
BACKEND=${3:-cpu}
DOC=$ROOT/docs/driver.md

if [ ! -f "$MODELS/stories260K.bin" ]; then
  echo "driver_docs: $MODELS/stories260K.bin not found; skipped"
  exit 0
fi

# A folder that looks like the repository root: build/, tests/, models/ and ../shared/models.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/repo/build/examples/llama2" "$work/shared"
ln -s "$DRIVER" "$work/repo/build/examples/llama2/lazyllm-llama2"
ln -s "$ROOT/tests" "$work/repo/tests"
ln -s "$ROOT/models" "$work/repo/models"
ln -s "$MODELS" "$work/shared/models"
cd "$work/repo"

# The section's fenced sh blocks, one command per line (comments and blank lines dropped, except
# the "# lazyllm-llama2: error:" lines that state an expected failure).
mapfile -t lines < <(awk '
  /^## Examples with the tiny models/ { on = 1; next }
  on && /^## / { exit }
  on && /^```sh/ { code = 1; next }
  on && /^```/ { code = 0; next }
  on && code { print }' "$DOC")

n=0
failed=0
pending=""  # the last command, until we know whether an error line follows it
run_one() {
  local cmd=$1 expect=$2
  n=$((n + 1))
  eval "$cmd" </dev/null >"$work/out" 2>"$work/err"
  local rc=$?
  if [ -z "$expect" ]; then
    if [ $rc -ne 0 ]; then
      failed=$((failed + 1))
      echo "FAIL ($rc): $cmd"
      tail -5 "$work/err"
    else
      echo "ok: $cmd"
    fi
  else
    if [ $rc -eq 0 ] || ! grep -qF -- "$expect" "$work/err"; then
      failed=$((failed + 1))
      echo "FAIL (exit $rc, expected a failure with '$expect'): $cmd"
      tail -5 "$work/err"
    else
      echo "ok (fails as documented, exit $rc): $cmd"
    fi
  fi
}

for line in "${lines[@]}"; do
  if [[ $line =~ ^#\ lazyllm-llama2:\ error:\ (.*)$ ]]; then
    msg=${BASH_REMATCH[1]}
    msg=${msg%%...*}   # the documented text up to the first elision
    msg=${msg%%(*}     # and before any parenthesised detail that varies
    msg="${msg%"${msg##*[![:space:]]}"}"
    [ -n "$pending" ] && run_one "$pending" "$msg"
    pending=""
    continue
  fi
  [[ $line =~ ^[[:space:]]*(#.*)?$ ]] && continue
  [ -n "$pending" ] && run_one "$pending" ""
  pending=""
  if [[ $line =~ ^[A-Z]+= ]]; then
    eval "$line"
    [[ $line == D=* ]] && D="$D --backend $BACKEND"
    continue
  fi
  pending=$line
done
[ -n "$pending" ] && run_one "$pending" ""

if [ $n -lt 10 ]; then
  echo "driver_docs: only $n commands found in $DOC; the section's format changed?"
  exit 1
fi
echo "driver_docs: $n documented commands on --backend $BACKEND, $failed failed"
[ $failed -eq 0 ]
