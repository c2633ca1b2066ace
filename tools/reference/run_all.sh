#!/usr/bin/env bash
# Regenerates every reference fixture. Run from the repository root on a machine
# with PyTorch + HF transformers (the device machine here):
#   tools/reference/run_all.sh OUTDIR [path/to/stories260K.bin]
# Writes tests/fixtures/{stories260K,hf_tiny}.json and tests/data/hf_tiny{,_bf16,_sharded}/
# in the tree, and copies the two fixtures, a tarball of the three data folders
# (hf_tiny_data.tar.gz, extract with `tar -C tests/data -xzf`) and a log to OUTDIR.
set -uo pipefail
OUTDIR=${1:?usage: run_all.sh OUTDIR [stories260K.bin]}
MODEL=${2:-}
if [ -z "$MODEL" ]; then
  for m in .carry/stories260K.bin ../shared/models/stories260K.bin shared/models/stories260K.bin; do
    [ -f "$m" ] && MODEL=$m && break
  done
fi
mkdir -p "$OUTDIR" tests/fixtures tests/data
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
rc=0
exec > >(tee "$OUTDIR/log.txt") 2>&1
python3 -c 'import sys, torch, transformers, safetensors; print("python", sys.version.split()[0], "torch", torch.__version__, "transformers", transformers.__version__, "safetensors", safetensors.__version__)'
if [ -n "$MODEL" ]; then
  sha256sum "$MODEL"
  python3 tools/reference/llama2c_reference.py --model "$MODEL" --out tests/fixtures/stories260K.json || rc=1
else
  echo "stories260K.bin not found"; rc=1
fi
python3 tools/reference/make_hf_tiny.py --data-dir tests/data --out tests/fixtures/hf_tiny.json || rc=1
cp tests/fixtures/stories260K.json tests/fixtures/hf_tiny.json "$OUTDIR"/ 2>/dev/null
tar -C tests/data -czf "$OUTDIR/hf_tiny_data.tar.gz" hf_tiny hf_tiny_bf16 hf_tiny_sharded || rc=1
ls -la "$OUTDIR" tests/data/hf_tiny*
echo "run_all rc=$rc"
exit $rc
