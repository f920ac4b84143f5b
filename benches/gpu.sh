#!/usr/bin/env bash
# The GPU run (issue 18.3), prepared to run unattended in a few minutes on a lent GPU
# machine that has no Rust and no network. It needs only what it is given:
#   - the release binary, built on a CPU machine with the default (wgpu) features
#     (SYNTHPIPE, or SYNTHPIPE_XZ for an xz-compressed one, decompressed here);
#   - the model: MODEL=a .gguf or Hugging Face folder; without one (the 491 MB GGUF does not
#     fit what a device call carries), a model of Qwen2.5-0.5B's shape with random weights
#     is made from TOKENIZER (a folder with Qwen's tokenizer.json) — the same work per
#     token, but its answers never stop early, so generation runs to its token limit;
#   - HOTPOTQA: the shared HotpotQA sample.
# It reports, in order: the machine (nvidia-smi, the Vulkan loader and ICD files, what wgpu
# finds), `lm bench` on the GPU (5,000-token prompt; 1 and 16 rows decoding), a few GRPO
# steps at the paper's shape and 100 HotpotQA questions (benches/gpu.yaml), each part
# under its own time limit, so a slow or failing part still leaves the others' numbers.
# Everything goes to OUT (default $OUT, else ./gpu-out): gpu.log and the stages' metrics.
#
#   SYNTHPIPE_XZ=carry/synthpipe.xz TOKENIZER=carry/qwen3-tokenizer \
#     HOTPOTQA=carry/hotpotqa.jsonl benches/gpu.sh
#   SMOKE=1 benches/gpu.sh      # the same steps at toy sizes on the CPU, to check the script
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
exec > >(tee -a "$out/gpu.log") 2>&1
work=${WORK:-$PWD/target/gpu}
mkdir -p "$work"
smoke=${SMOKE:-0}
backend=${BACKEND:-wgpu}
[ "$smoke" = 1 ] && backend=${BACKEND:-flex}
part() { echo; echo "== $1 ($(date -u +%T))"; }

sp=${SYNTHPIPE:-$PWD/target/release/synthpipe}
if [ -n "${SYNTHPIPE_XZ:-}" ]; then
  sp=$work/synthpipe
  xz -dc "$SYNTHPIPE_XZ" > "$sp" 2>/dev/null ||
    python3 -c 'import lzma,sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())' "$SYNTHPIPE_XZ" > "$sp"
  chmod +x "$sp"
fi
"$sp" --version || { echo "no runnable synthpipe binary at $sp"; exit 1; }

part "machine"
lscpu | grep -m1 "Model name"; nproc; free -g | head -2
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || echo "no nvidia-smi"
ldconfig -p 2>/dev/null | grep -E "libvulkan|libnvidia-glvkspirv|libGLX_nvidia" || echo "no Vulkan loader or NVIDIA Vulkan driver in ldconfig"
for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/share/glvnd/egl_vendor.d; do
  [ -d "$d" ] && { echo "$d:"; ls "$d"; cat "$d"/nvidia* 2>/dev/null; }
done
command -v vulkaninfo >/dev/null && timeout 30 vulkaninfo --summary 2>&1 | head -30

hotpotqa=${HOTPOTQA:-$PWD/../shared/data-raw/hotpotqa_dev_distractor_subset.jsonl}
model=${MODEL:-}
if [ -z "$model" ]; then
  part "random model of Qwen2.5-0.5B's shape"
  model=$work/model
  tok=${TOKENIZER:-$HOME/.cache/synthpipe-models/qwen3-tokenizer}
  if [ "$smoke" = 1 ]; then
    shape=(--layers 2 --hidden 64 --heads 4 --kv-heads 2 --intermediate 128)
  else
    shape=(--layers 24 --hidden 896 --heads 14 --kv-heads 2 --intermediate 4864)
  fi
  [ -f "$model/config.json" ] ||
    "$sp" lm init --arch qwen2 "${shape[@]}" --context 32768 --tokenizer "$tok" --out "$model" || exit 1
fi
"$sp" lm info "$model" 2>&1 | head -12

if [ "$smoke" = 1 ]; then prompt=500 steps=1 questions=4 size=6 depth=6; else prompt=5000 steps=3 questions=100 size=25 depth=20; fi

part "lm bench: prefill $prompt tokens, decode 1 and 16 rows ($backend)"
for rows in 1 16; do
  timeout 240 "$sp" lm bench "$model" --backend "$backend" --prompt-tokens "$prompt" \
    --new-tokens 64 --batch "$rows" --repeat 2 --json || echo "lm bench ($rows rows) failed or ran out of time: $?"
done

part "GRPO at the paper's shape, then HotpotQA ($backend)"
store=$work/store
timeout ${PIPELINE_SECONDS:-420} "$sp" run benches/gpu.yaml --store "$store" \
  --param model="$model" --param hotpotqa="$hotpotqa" --param backend="$backend" \
  --param steps=$steps --param questions=$questions --param size=$size --param depth=$depth
echo "pipeline exit: $?"
# The metrics only (the trained model stays behind: it is too big to bring back).
for o in grpo.metrics hotpotqa.results; do
  dir=$("$sp" show benches/gpu.yaml "$o" --path --store "$store" \
    --param model="$model" --param hotpotqa="$hotpotqa" --param backend="$backend" \
    --param steps=$steps --param questions=$questions --param size=$size --param depth=$depth 2>/dev/null | head -1)
  [ -n "$dir" ] && [ -d "$dir" ] && cp -r "$dir" "$out/${o%%.*}" && echo "$o: $(ls "$dir" | tr '\n' ' ')"
done
# GRPO's per-step lines are written as it trains, so even an unfinished run shows its pace.
find "$store/scratch" -name "metrics.jsonl" -exec cp {} "$out/grpo-partial-metrics.jsonl" \; 2>/dev/null
for f in "$out/grpo/metrics.jsonl" "$out/grpo-partial-metrics.jsonl"; do
  [ -f "$f" ] && python3 -c 'import json,sys
for l in open(sys.argv[1]):
    m = json.loads(l)
    print({k: m.get(k) for k in ("step", "step_seconds", "rollout_seconds", "prompt_length", "completion_length", "peak_rss_mib")})' "$f" && break
done
[ -f "$out/hotpotqa/metrics.json" ] && python3 -c 'import json,sys
o = json.load(open(sys.argv[1]))["overall"]; print("HotpotQA: %d questions, F1 %.3f ± %.3f" % (o["questions"], o["f1"]["mean"], o["f1"]["sem"]))' "$out/hotpotqa/metrics.json"
echo
part "done"
