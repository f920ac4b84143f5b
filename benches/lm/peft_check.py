"""Loads a synthpipe LoRA adapter with PEFT onto its base model, as a user of the trained model
would, and compares it with the merged model synthpipe wrote: the log-probabilities of a
completion after a prompt under both, and the largest logit difference. Prints one JSON line.

    python benches/lm/peft_check.py BASE_DIR ADAPTER_DIR MERGED_DIR PROMPT COMPLETION
"""
import json
import sys

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    base_dir, adapter_dir, merged_dir, prompt, completion = sys.argv[1:6]
    tok = AutoTokenizer.from_pretrained(base_dir)
    p = tok(prompt, add_special_tokens=False).input_ids
    c = tok(completion, add_special_tokens=False).input_ids
    ids = torch.tensor([p + c])

    def scored(model):
        with torch.no_grad():
            logits = model(ids).logits[0].float()
        lp = logits.log_softmax(-1)
        return [lp[len(p) - 1 + i, t].item() for i, t in enumerate(c)], logits

    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, adapter_dir)
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
    a, la = scored(peft_model)
    b, lb = scored(merged)
    print(
        json.dumps(
            {
                "peft_total": sum(a),
                "merged_total": sum(b),
                "max_logit_diff": (la - lb).abs().max().item(),
                "tokens": len(c),
            }
        )
    )


if __name__ == "__main__":
    main()
