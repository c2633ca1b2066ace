#!/usr/bin/env bash
# Installs the Debian packages the build needs (idempotent; quiet when everything is there).
set -euo pipefail
# python3-matplotlib: lazyllm-eval --png (tools/eval/plot.py) and benchmarks/peer/report.py --png.
pkgs=(cmake g++ make doctest-dev nlohmann-json3-dev libsentencepiece-dev pkg-config libpcre2-dev libutf8proc-dev python3-matplotlib)
# `deps.sh fuzz`: clang and its libFuzzer runtime, for the fuzz step of scripts/test.sh only.
if [ "${1:-}" = fuzz ]; then pkgs=(clang libclang-rt-dev); fi
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "lazyllm: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
