"""Times PyTorch + transformers the way `synthpipe lm bench` times synthpipe: prefill of a
PROMPT_TOKENS-token prompt of the same prose in chunks of 512 (only the last position's
logits, as `generate` computes them), then greedy decoding of NEW_TOKENS tokens one at a time
with the key/value cache. Prints one JSON line with tokens/s and peak memory.

    python benches/lm/torch_bench.py HF_FOLDER [PROMPT_TOKENS [NEW_TOKENS [THREADS [REPEAT [DTYPE]]]]]

DTYPE: float32 (default) or bfloat16.
"""
import json
import resource
import sys
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench_args import TEXT, args


def main() -> None:
    path, n_prompt, n_new, threads, repeat = args()
    dtype = getattr(torch, sys.argv[6]) if len(sys.argv) > 6 else torch.float32
    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).eval()
    ids = []
    while len(ids) < n_prompt:
        ids += tok(TEXT * 8, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([ids[:n_prompt]])
    best_prefill = best_decode = 0.0
    with torch.inference_mode():
        for _ in range(repeat):
            t0 = time.perf_counter()
            past = None
            for s in range(0, n_prompt, 512):
                out = model(ids[:, s : s + 512], past_key_values=past, use_cache=True, logits_to_keep=1)
                past = out.past_key_values
            t1 = time.perf_counter()
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            # The first new token comes from the prefill's logits: n_new tokens take n_new - 1
            # forward passes, as in synthpipe's `generate`.
            for _ in range(n_new - 1):
                out = model(nxt, past_key_values=past, use_cache=True)
                past = out.past_key_values
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            t2 = time.perf_counter()
            best_prefill = max(best_prefill, n_prompt / (t1 - t0))
            best_decode = max(best_decode, n_new / (t2 - t1))
    print(json.dumps({
        "engine": f"pytorch {torch.__version__}",
        "dtype": str(dtype).removeprefix("torch."),
        "threads": threads,
        "prompt_tokens": n_prompt,
        "new_tokens": n_new,
        "prefill_tokens_per_s": best_prefill,
        "decode_tokens_per_s": best_decode,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
