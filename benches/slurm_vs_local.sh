#!/usr/bin/env bash
# The SLURM executor's overhead: the quickstart's short variant (what CI runs) in a fresh
# store, locally and with every stage a SLURM job, one after the other on this machine, each
# REPEAT times. Needs a cluster answering `sinfo` (`.ci/slurm.sh` starts one on localhost).
# Prints one line per run and the per-stage job times the controller saw.
#
#   benches/slurm_vs_local.sh [REPEAT]
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=${1:-3}
sp=$PWD/target/release/synthpipe
short=(--param train=4..=40 --param test=1..=3 --param sft_steps=20 --param grpo_steps=4)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lscpu | grep -m1 "Model name"
sinfo -h -o "slurm: %P %D node(s), %c CPUs, state %t" | head -1
export SYNTHPIPE_SLURM_POLL=${SYNTHPIPE_SLURM_POLL:-1}
for i in $(seq "$repeat"); do
    for executor in local slurm; do
        store=$work/$executor-$i
        start=$(date +%s.%N)
        $sp run pipelines/quickstart.yaml --store "$store" "${short[@]}" --executor "$executor" \
            >"$work/$executor-$i.log" 2>&1
        end=$(date +%s.%N)
        echo "$executor run $i: $(awk "BEGIN {printf \"%.1f\", $end - $start}") s ($(grep -c 'built in' "$work/$executor-$i.log") stages built)"
    done
done
echo "stage times of the last SLURM run (controller's view: submission to the job's end):"
grep "built in" "$work/slurm-$repeat.log" | sed 's/^/  /'
echo "the same stages inside their jobs (run-stage's own build time):"
cat "$work/slurm-$repeat"/jobs/*.log | grep "run-stage: built" | sed 's/^/  /'
