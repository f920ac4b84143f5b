#!/usr/bin/env bash
# Trains a LoRA adapter with synthpipe on a small random Qwen2 model (q/k/v biases, the Qwen3
# tokenizer), then loads it with PEFT (`PeftModel.from_pretrained`) in a throw-away virtual
# environment and compares: PEFT's base + adapter against synthpipe's merged model (in
# transformers) and against `synthpipe lm logprobs --adapter`.
#
#   benches/lm/peft_check.sh [VENV]     (default VENV: /tmp/synthpipe-peft-venv)
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${1:-/tmp/synthpipe-peft-venv}
models=${SYNTHPIPE_MODELS:-$HOME/.cache/synthpipe-models}
sp=target/release/synthpipe
[ -x "$venv/bin/python" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q torch transformers peft safetensors; }
"$venv/bin/python" -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
work=$(mktemp -d)
$sp lm init --arch qwen2 --layers 2 --hidden 64 --heads 4 --kv-heads 2 --tokenizer "$models/qwen3-tokenizer" --seed 3 --out "$work/base" >/dev/null
cat >"$work/p.yaml" <<YAML
name: peft-check
stages:
  family:
    kind: generate
    rules: $PWD/rules/family.rules
    seeds: "1..=2"
    set: {max_tree_size: 4, questions_per_template: 1}
  sft:
    kind: sft
    model: $work/base
    dataset: {from: family.dataset}
    examples: 0
    evidence: false
    steps: 4
    batch: 2
    learning_rate: 0.05
    lora: {rank: 8, alpha: 16, targets: [q, k, v, o, gate, up, down]}
    backend: flex
    out: $work/trained
YAML
$sp run "$work/p.yaml" --store "$work/store" >/dev/null
prompt="Who is the mother of Ann Smith?"
completion=" The mother of Ann Smith is Beth Smith."
"$venv/bin/python" benches/lm/peft_check.py "$work/base" "$work/trained/model/adapter" "$work/trained/model" "$prompt" "$completion"
$sp lm logprobs "$work/base" --adapter "$work/trained/model" --prompt "$prompt" --completion "$completion" --backend flex --json | python3 -c 'import json,sys; j=json.load(sys.stdin); print(json.dumps({"synthpipe_adapter_total": j["total"], "tokens": len(j["tokens"])}))'
$sp lm logprobs "$work/base" --prompt "$prompt" --completion "$completion" --backend flex --json | python3 -c 'import json,sys; j=json.load(sys.stdin); print(json.dumps({"synthpipe_base_total": j["total"]}))'
rm -rf "$work"
