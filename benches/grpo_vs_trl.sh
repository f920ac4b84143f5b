#!/usr/bin/env bash
# GRPO runs of synthpipe and of TRL's GRPOTrainer side by side on the real
# Qwen2.5-Coder-0.5B-Instruct (tests/models/fetch.sh, as an f32 Hugging Face folder), same
# machine, one script. TRL runs in a throw-away virtual environment (never needed by the
# tests).
#
# TRL's shape (the issue's anchor): 1 prompt x G = 4 completions of <= 64 tokens per step,
# ~1,070-token family prompts without worked examples, bnpo, beta 0, every step's passes run
# (synthpipe's `skip_idle: false`: TRL never skips them). synthpipe: full fine-tuning and LoRA
# (r 16, alpha 32, all seven projections) with per-layer recomputation (the default), and
# LoRA without it; TRL: full and PEFT LoRA, its defaults otherwise (gradient checkpointing
# on). Then the paper's shape with LoRA: 2 prompts x G = 16, completions <= 256 tokens, all
# 32 sequences in one pass (synthpipe only: memory).
#
#   benches/grpo_vs_trl.sh [STEPS] [VENV]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-2}
venv=${2:-/tmp/synthpipe-trl-venv}
models=${SYNTHPIPE_MODELS:-$HOME/.cache/synthpipe-models}
sp=$PWD/target/release/synthpipe
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q torch transformers peft trl datasets; }
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
lscpu | grep -m1 "Model name"
[ -d "$work/qwen" ] || $sp lm convert "$models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" --out "$work/qwen" >/dev/null

# name | steps | batch | group | micro_batch | max completion | extra settings, `;`-separated
runs="full|$steps|1|4|4|64|
lora|$steps|1|4|4|64|lora: {rank: 16, alpha: 32}
lora-no-recompute|$steps|1|4|4|64|lora: {rank: 16, alpha: 32};gradient_checkpointing: false
paper-lora|1|2|16|0|256|lora: {rank: 16, alpha: 32}"
while IFS='|' read -r mode n batch g micro max extra; do
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
    steps: $n
    batch: $batch
    group_size: $g
    micro_batch: $micro
    max_completion_tokens: $max
    reward_format: 1.0
    skip_idle: false
    backend: flex
    $(echo "$extra" | sed 's/;/\n    /g')
    out: $work/out-$mode
YAML
  /usr/bin/time -f "%M" -o "$work/$mode.rss" $sp run "$work/$mode.yaml" --store "$work/store" >/dev/null
  python3 - "$work" "$mode" <<'PY'
import json, sys
work, mode = sys.argv[1:3]
m = [json.loads(l) for l in open(f"{work}/out-{mode}/metrics/metrics.jsonl")]
rss = int(open(f"{work}/{mode}.rss").read().split()[-1]) / 1024 / 1024
print(json.dumps({"tool": "synthpipe", "mode": mode, "step_seconds": [round(x["step_seconds"], 1) for x in m],
  "rollout_seconds": [round(x["rollout_seconds"], 1) for x in m],
  "completion_length": [x["completion_length"] for x in m], "prompt_length": [x["prompt_length"] for x in m],
  "step_peak_gib": round(max(x["peak_rss_mib"] for x in m) / 1024, 2), "process_peak_gib": round(rss, 2)}))
PY
done <<<"$runs"
data=$($sp show "$work/full.yaml" family.dataset --store "$work/store" | tail -1 | sed "s/^output [a-z]*: //")
for mode in full lora; do
  "$venv/bin/python" benches/grpo_trl.py "$work/qwen" "$data" "$steps" 4 64 $mode 2>"$work/trl-$mode.err" | tail -1
done
