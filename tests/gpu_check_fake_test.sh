#!/usr/bin/env bash
# bench/gpu-check.sh --fake end to end on the NCCL test double (ctest gpu_check_fake, label
# nccl-double): the script must exit 0 and its table must name the double and carry every phase,
# each ok. No timing is asserted: the double's figures say nothing about a GPU.
#   usage: gpu_check_fake_test.sh SOURCE_DIR BUILD_DIR
set -uo pipefail
src=$1
build=$2
lib=$build/nccl-double
if [[ ! -e $lib/libnccl.so.2 || ! -e $lib/libcudart.so.13 ]]; then
  echo "FAIL: the NCCL test double is not built in $lib (cmake --build $build --target cohort_nccl_double)"
  exit 1
fi
table=$(mktemp -t gpu-check-table.XXXXXX)
trap 'rm -f "$table"' EXIT
"$src/bench/gpu-check.sh" --bin "$build/bin" --fake "$lib" --out "$table" --budget 240
rc=$?
fail=0
[[ $rc == 0 ]] || { echo "FAIL: gpu-check.sh --fake exited $rc"; fail=1; }
grep -q "NCCL TEST DOUBLE" "$table" || { echo "FAIL: the table does not say it ran on the double"; fail=1; }
for phase in a.join_to_ready a.verify a.destroy b.4pools_ready b.4pools_destroy \
  c.reinit_same_agent c.kill9_to_degraded c.restart_to_ready c.destroy raw.first \
  raw.median_rest overhead.first overhead.warm teardown.parallel teardown.serial teardown.ratio; do
  grep -Eq "^$phase +ok " "$table" || { echo "FAIL: no ok row for $phase in the table"; fail=1; }
done
[[ $fail == 0 ]] && echo "PASS: every phase ok on the NCCL test double"
exit $fail
