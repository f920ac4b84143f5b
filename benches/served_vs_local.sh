#!/usr/bin/env bash
# Evaluation through an OpenAI-compatible endpoint against in-process, side by side on this
# machine: the same HotpotQA questions (the shared dev sample), the paper's prompts, greedy,
# ≤ 96 new tokens, asked of llama.cpp's server (tests/models/llama-server.sh) serving the
# fetched Qwen2.5-Coder-0.5B-Instruct GGUF, and of synthpipe's `evaluate` loading the same
# GGUF (flex), at concurrency 1 and 2 (in-process: `batch` 1 and 2). Fresh store per run.
#
# The server is started afresh for each concurrency: it keeps earlier prompts in its slots
# and would answer a repeated question from that cache.
#
#   benches/served_vs_local.sh [QUESTIONS] [CONCURRENCIES]     # defaults: 20 "1 2"
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20}
levels=${2:-1 2}
sp=$PWD/target/release/synthpipe
models=${SYNTHPIPE_MODELS:-$HOME/.cache/synthpipe-models}
gguf=$models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
data=${SYNTHPIPE_DATA_RAW:-$PWD/../shared/data-raw}/hotpotqa_dev_distractor_subset.jsonl
server=$(bash tests/models/llama-server.sh)
work=$(mktemp -d)
port=18181
pid=
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
lscpu | grep -m1 "Model name"
common="    benchmark: hotpotqa
    data: $data
    limit: $n
    prompt: paper
    examples: 3
    temperature: 0
    max_completion_tokens: 96"
for c in $levels; do
    [ -n "$pid" ] && kill "$pid" && wait "$pid" 2>/dev/null || true
    "$server" -m "$gguf" --host 127.0.0.1 --port $port -c 16384 -np 2 -t "$(nproc)" >"$work/server.log" 2>&1 &
    pid=$!
    until curl -sf "http://127.0.0.1:$port/health" >/dev/null; do sleep 0.5; done
    cat >"$work/p$c.yaml" <<YAML
name: served-bench
stages:
  served:
    kind: evaluate
    endpoint: http://127.0.0.1:$port/v1
    concurrency: $c
$common
  local:
    kind: evaluate
    model: $gguf
    backend: flex
    batch: $c
$common
YAML
    # One stage at a time (-j 1 would still let both run: each wants all cores).
    for stage in served local; do
        $sp run "$work/p$c.yaml" --store "$work/store$c" --stage $stage 2>&1 |
            grep "built in" | sed "s/^/concurrency $c: /"
    done
done
