#!/usr/bin/env bash
# Prefill (1,000 tokens, chunks of 512) and greedy decoding (128 tokens) of the real
# Qwen2.5-Coder-0.5B-Instruct (tests/models/fetch.sh) on the same f32 weights, side by side on
# this machine in one run (and on the Q4_K_M file the f32 weights come from): synthpipe's
# `lm bench` (flex), PyTorch + transformers
# (benches/lm/torch_bench.py) and llama.cpp (llama-cpp-python, built from source for this CPU;
# benches/lm/llama_cpp_bench.py). The peers live in a throw-away virtual environment, never
# needed by the tests. Prints the CPU and one JSON line per engine.
#
#   benches/lm_vs_peers.sh [REPEAT] [VENV]
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=${1:-2}
venv=${2:-/tmp/synthpipe-peers-venv}
threads=${THREADS:-$(nproc)}
models=${SYNTHPIPE_MODELS:-$HOME/.cache/synthpipe-models}
sp=$PWD/target/release/synthpipe
gguf=$models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import torch, transformers, gguf" 2>/dev/null ||
  "$venv/bin/pip" install -q torch transformers gguf numpy
"$venv/bin/python" -c "import llama_cpp" 2>/dev/null || "$venv/bin/pip" install -q llama-cpp-python
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
lscpu | grep -m1 "Model name"
lscpu | grep -o -m1 -E "avx512f|amx_bf16" | sort -u | tr '\n' ' '; echo
# The same f32 weights for all three: a Hugging Face folder (synthpipe, PyTorch) and a GGUF
# dequantised by llama.cpp's own package (llama.cpp, and synthpipe on it too).
[ -d "$work/qwen" ] || $sp lm convert "$gguf" --out "$work/qwen" >/dev/null
[ -f "$work/qwen-f32.gguf" ] || "$venv/bin/python" benches/lm/dequantise_gguf.py "$gguf" "$work/qwen-f32.gguf"
# The Q4_K_M file itself as well: synthpipe decodes from its blocks (model::packed), whose
# values are those of the f32 files bit for bit; llama.cpp computes in its own 8-bit dot
# products there, so its row is the quantised engine's, not the same arithmetic.
for model in "$work/qwen-f32.gguf" "$work/qwen" "$gguf"; do
  $sp lm bench "$model" --backend flex --prompt-tokens 1000 --new-tokens 128 --repeat "$repeat" --json
done
"$venv/bin/python" benches/lm/torch_bench.py "$work/qwen" 1000 128 "$threads" "$repeat"
"$venv/bin/python" benches/lm/torch_bench.py "$work/qwen" 1000 128 "$threads" "$repeat" bfloat16
"$venv/bin/python" benches/lm/llama_cpp_bench.py "$work/qwen-f32.gguf" 1000 128 "$threads" "$repeat"
"$venv/bin/python" benches/lm/llama_cpp_bench.py "$gguf" 1000 128 "$threads" "$repeat"
