"""Times llama.cpp (through llama-cpp-python) the way `synthpipe lm bench` times synthpipe:
prefill of a PROMPT_TOKENS-token prompt of the same prose, then greedy decoding of NEW_TOKENS
tokens, one at a time. Prints one JSON line.

    python benches/lm/llama_cpp_bench.py MODEL.gguf [PROMPT_TOKENS [NEW_TOKENS [THREADS [REPEAT]]]]
"""
import json
import sys
import time

import numpy as np
from llama_cpp import Llama

# The same text as BENCH_TEXT in src/model/commands.rs.
TEXT = (
    "The history of the river valley begins with the farmers who settled along its banks, "
    "built terraces on the hills and traded grain with the towns downstream. Over the "
    "centuries the valley saw floods, droughts, wars and long years of peace; each left its "
    "mark on the villages, the churches and the stories people told their children. "
)


def main() -> None:
    path = sys.argv[1]
    n_prompt = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    n_new = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    repeat = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    llm = Llama(
        model_path=path,
        n_ctx=n_prompt + n_new + 16,
        n_batch=512,
        n_threads=threads,
        n_threads_batch=threads,
        verbose=False,
    )
    ids = []
    while len(ids) < n_prompt:
        ids += llm.tokenize((TEXT * 8).encode(), add_bos=False, special=False)
    ids = ids[:n_prompt]
    best_prefill = best_decode = 0.0
    for _ in range(repeat):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        t1 = time.perf_counter()
        for _ in range(n_new):
            # Without logits_all, llama.cpp keeps only the last position's logits.
            last = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
            llm.eval([int(np.argmax(last))])
        t2 = time.perf_counter()
        best_prefill = max(best_prefill, n_prompt / (t1 - t0))
        best_decode = max(best_decode, n_new / (t2 - t1))
    print(json.dumps({
        "engine": "llama.cpp",
        "threads": threads,
        "prompt_tokens": n_prompt,
        "new_tokens": n_new,
        "prefill_tokens_per_s": best_prefill,
        "decode_tokens_per_s": best_decode,
    }))


if __name__ == "__main__":
    main()
