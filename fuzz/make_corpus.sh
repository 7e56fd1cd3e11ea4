#!/usr/bin/env bash
# Encodes the hand-written seeds (fuzz/seeds/) into the binary seed corpora (fuzz/corpus/):
#   fuzz_config:      *.textpb (a cohort.v1.ParallelConfig) -> '0' + binary proto;
#                     *.args (cohortctl layout flags)      -> '1 ' + the flags
#   fuzz_coordinator: *.textpb (a cohort.fuzz.FuzzProgram)  -> binary proto
# Files named regress-* in fuzz/corpus/ are inputs of past findings and are kept as they are.
set -euo pipefail
cd "$(dirname "$0")/.."
encode() { protoc -Iproto -Ifuzz --encode="$1" "$2"; }
for t in fuzz_config fuzz_coordinator; do
  mkdir -p fuzz/corpus/$t
  find fuzz/corpus/$t -name 'seed-*' -delete
done
for f in fuzz/seeds/fuzz_config/*.textpb; do
  { printf '0'; encode cohort.v1.ParallelConfig cohort/v1/layout.proto < "$f"; } \
    > "fuzz/corpus/fuzz_config/seed-$(basename "$f" .textpb)"
done
for f in fuzz/seeds/fuzz_config/*.args; do
  { printf '1 '; cat "$f"; } > "fuzz/corpus/fuzz_config/seed-$(basename "$f" .args)"
done
for f in fuzz/seeds/fuzz_coordinator/*.textpb; do
  encode cohort.fuzz.FuzzProgram fuzz_program.proto < "$f" \
    > "fuzz/corpus/fuzz_coordinator/seed-$(basename "$f" .textpb)"
done
ls -l fuzz/corpus/*
