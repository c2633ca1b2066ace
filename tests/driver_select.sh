#!/usr/bin/env bash
# The driver's GPU selection (SelectingCudaBackend, on by default for bf16) against the host
# selection (--no-device-select): stories260K under LazyLLM, greedy, must give the same ids; the
# --json records which one ran; --device-select with fp32 storage is refused. (ctest label gpu)
#
# usage: tests/driver_select.sh DRIVER MODELS_DIR
set -uo pipefail
D=$(realpath "$1")
M=$(realpath "$2")/stories260K.bin
[ -f "$M" ] || { echo "driver_select: $M not found; skipped"; exit 0; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
run() {  # NAME ARGS...
  local name=$1
  shift
  if ! "$D" -m "$M" --backend cuda --precision bf16 --policy lazy --schedule 1:0.5,2:0.5,3:0.5 --prompt-ids 1,400,30,22,81,7,300,12,45,99,120,5,66,240,18,77 \
    -n 48 --print-ids --json "$work/$name.json" "$@" >"$work/$name.ids" 2>"$work/$name.err"; then
    echo "FAIL: $name exited non-zero"; tail -3 "$work/$name.err"; fail=1
  fi
}
run device
run host --no-device-select
run forced --device-select
for n in device host forced; do echo "$n: $(cat "$work/$n.ids")"; done
cmp -s "$work/device.ids" "$work/host.ids" || { echo "FAIL: the GPU selection's ids differ from the host's"; fail=1; }
cmp -s "$work/device.ids" "$work/forced.ids" || { echo "FAIL: --device-select differs from the default"; fail=1; }
grep -q '"device_select": *true' "$work/device.json" || { echo "FAIL: the default run's --json lacks device_select true"; fail=1; }
grep -q '"device_select": *false' "$work/host.json" || { echo "FAIL: --no-device-select's --json lacks device_select false"; fail=1; }
# Both must have pruned, and the same amount (the driver's footer on stderr: prefill and overall
# token-layers, revivals).
work_of() { grep -o 'computed [0-9.]*% of dense in prefill, [0-9.]*% overall, [0-9]* revivals' "$work/$1.err"; }
echo "device: $(work_of device)"
echo "host:   $(work_of host)"
if [ -z "$(work_of device)" ] || [ "$(work_of device)" != "$(work_of host)" ] ||
  [[ "$(work_of device)" == "computed 100.0% of dense in prefill"* ]]; then
  echo "FAIL: the computed token-layers are missing, differ, or show no pruning"; fail=1
fi
"$D" -m "$M" --backend cuda --precision fp32 --device-select --prompt-ids 1 -n 4 >/dev/null 2>"$work/fp32.err"
rc=$?
if [ $rc -eq 0 ] || ! grep -q "bf16 storage only" "$work/fp32.err"; then
  echo "FAIL: --device-select with fp32 storage was not refused (exit $rc)"; fail=1
fi
[ $fail -eq 0 ] && echo "driver_select: ok"
exit $fail
