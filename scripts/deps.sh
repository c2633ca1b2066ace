#!/usr/bin/env bash
# Installs the Debian packages the build needs (idempotent; quiet when everything is there).
set -euo pipefail
# python3-matplotlib: lazyllm-eval --png (tools/eval/plot.py) and benchmarks/peer/report.py --png.
# pkg-config and libcpp-httplib-dev: lazyllm-server (not built without them).
pkgs=(cmake g++ make pkg-config doctest-dev nlohmann-json3-dev libsentencepiece-dev libpcre2-dev libutf8proc-dev python3-matplotlib libcpp-httplib-dev)
# `deps.sh fuzz`: clang and its libFuzzer runtime, for the fuzz step of scripts/test.sh only.
if [ "${1:-}" = fuzz ]; then pkgs=(clang libclang-rt-dev); fi
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
# Node.js and npm: the server's tests drive it with the official OpenAI client (skipped without).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then missing+=(nodejs npm); fi
# Chromium: the chat page's test (ctest label browser); LAZYLLM_BROWSER_TESTS=1 installs it.
if [ "${LAZYLLM_BROWSER_TESTS:-0}" = 1 ] && ! command -v chromium >/dev/null 2>&1; then missing+=(chromium); fi
if ((${#missing[@]})); then
  echo "lazyllm: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
