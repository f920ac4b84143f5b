#!/usr/bin/env bash
# One GRPO run each of synthpipe (full fine-tuning, then LoRA) and TRL's GRPOTrainer (full,
# then PEFT LoRA) on the real Qwen2.5-Coder-0.5B-Instruct (tests/models/fetch.sh, as an f32
# Hugging Face folder), at one shape: 1 prompt x G = 4 completions of <= 64 tokens per step,
# ~1,070-token family prompts without worked examples, bnpo, beta 0, every step's passes
# run (synthpipe's `skip_idle: false`: TRL never skips them). Same machine, one
# script; TRL runs in a throw-away virtual environment (never needed by the tests).
#
#   benches/grpo_vs_trl.sh [STEPS] [VENV]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-3}
venv=${2:-/tmp/synthpipe-trl-venv}
models=${SYNTHPIPE_MODELS:-$HOME/.cache/synthpipe-models}
sp=$PWD/target/release/synthpipe
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q torch transformers peft trl datasets; }
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
lscpu | grep -m1 "Model name"
[ -d "$work/qwen" ] || $sp lm convert "$models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" --out "$work/qwen" >/dev/null
for mode in full lora; do
  lora=""; [ $mode = lora ] && lora="lora: {rank: 16, alpha: 32}"
  cat >"$work/$mode.yaml" <<YAML
name: grpo-$mode
stages:
  family:
    kind: generate
    rules: $PWD/rules/family.rules
    seeds: "1..=4"
    set: {max_tree_size: 6, question_depth: 5, relations: easy, aggregation: false, questions_per_template: 2}
  grpo:
    kind: grpo
    model: $work/qwen
    dataset: {from: family.dataset}
    examples: 0
    steps: $steps
    batch: 1
    group_size: 4
    micro_batch: 4
    max_completion_tokens: 64
    reward_format: 1.0
    skip_idle: false
    backend: flex
    $lora
    out: $work/out-$mode
YAML
  /usr/bin/time -f "%M" -o "$work/$mode.rss" $sp run "$work/$mode.yaml" --store "$work/store" >/dev/null
  python3 - "$work" "$mode" <<'PY'
import json, sys
work, mode = sys.argv[1:3]
m = [json.loads(l) for l in open(f"{work}/out-{mode}/metrics/metrics.jsonl")]
rss = int(open(f"{work}/{mode}.rss").read().split()[-1]) / 1024 / 1024
print(json.dumps({"tool": "synthpipe", "mode": mode, "step_seconds": [x["step_seconds"] for x in m],
  "rollout_seconds": [x.get("rollout_seconds") for x in m], "trained": [x["grad_norm"] > 0 for x in m],
  "peak_gib": round(rss, 2)}))
PY
done
data=$($sp show "$work/full.yaml" family.dataset --store "$work/store" | tail -1 | sed "s/^output [a-z]*: //")
for mode in full lora; do
  "$venv/bin/python" benches/grpo_trl.py "$work/qwen" "$data" "$steps" 4 64 $mode 2>"$work/trl-$mode.err" | tail -1
done
