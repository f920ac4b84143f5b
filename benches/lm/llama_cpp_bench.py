"""Times llama.cpp (through llama-cpp-python) the way `synthpipe lm bench` times synthpipe:
prefill of a PROMPT_TOKENS-token prompt of the same prose, then greedy decoding of NEW_TOKENS
tokens, one at a time. Prints one JSON line.

    python benches/lm/llama_cpp_bench.py MODEL.gguf [PROMPT_TOKENS [NEW_TOKENS [THREADS [REPEAT]]]]
"""
import json
import time

import numpy as np
from llama_cpp import Llama

from bench_args import TEXT, args


def main() -> None:
    path, n_prompt, n_new, threads, repeat = args()
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
