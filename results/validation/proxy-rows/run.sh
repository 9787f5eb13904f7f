#!/bin/bash
# --proxy-rows fidelity on stories260K (64-172 rows a linear, so 6-17 rows at 0.1: a worst case).
# Run from the repository root after `npm run build`: MODEL=<stories260K converted by crepe convert> results/validation/proxy-rows/run.sh
set -e
C4=../shared/data/text/c4/c4-train.00000-of-01024.first1000.jsonl
PTB=../shared/data/text/ptb/ptb.valid.txt
work=$(mktemp -d)
for rows in 0.1 0.5; do
  for setting in "u50 0.5" "u60 0.6"; do
    set -- $setting
    node bin/crepe.js search "$MODEL" --calib $C4 --nsamples 32 --seqlen 256 --seed 0 --sparsity "$2" --validate 32 --proxy-rows $rows \
      --eval-ppl $PTB --eval-max-chunks 200 --proxy-cache "$work/cache-$1" --out "$work/$1-$rows" > /dev/null
    cp "$work/$1-$rows/validation.json" "results/validation/proxy-rows/$1-$rows.json"
  done
done
rm -rf "$work"
