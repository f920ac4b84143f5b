"""One GRPO run of TRL's GRPOTrainer at the shape of synthpipe's `grpo` benchmark, for a
side-by-side time and memory comparison: the same model folder, the same prompts (rebuilt
from a synthpipe dataset exactly as synthpipe writes them, without worked examples), one
prompt x G completions per step, bnpo, beta 0, one sequence per micro-batch. Prints one
JSON line: seconds of every step, prompt tokens, peak memory.

    python benches/grpo_trl.py MODEL_DIR DATASET_DIR STEPS G MAX_COMPLETION lora|full
"""
import json
import re
import resource
import sys
import time

import torch
from datasets import Dataset
from transformers import AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

# src/prompt.rs: INSTRUCTION, and prompt_text without worked examples.
INSTRUCTION = (
    "Answer the question using the evidence. Work it out one step at a time, then end with "
    "the answer in <answer></answer> tags, for example <answer>Alice</answer>. When there "
    "are several answers, separate them with commas: <answer>Alice, Bob</answer>."
)


def prompts(dataset_dir: str):
    evidence = {}
    for line in open(f"{dataset_dir}/articles.jsonl"):
        a = json.loads(line)
        e = evidence.setdefault(a["universe"], "")
        if e:
            e += "\n"
        evidence[a["universe"]] = e + a["text"].rstrip() + "\n"
    rows = []
    for line in open(f"{dataset_dir}/questions.jsonl"):
        q = json.loads(line)
        text = (
            INSTRUCTION
            + "\n\n(BEGIN EVIDENCE)\n"
            + evidence[q["universe"]].rstrip()
            + "\n(END EVIDENCE)\n\nQuestion: "
            + q["text"]
        )
        rows.append({"prompt": [{"role": "user", "content": text}], "answers": q["answers"]})
    return rows


def f1_reward(completions, answers, **_):
    out = []
    for c, gold in zip(completions, answers):
        text = c[0]["content"] if isinstance(c, list) else c
        m = re.findall(r"<answer>(.*?)</answer>", text, re.S)
        pred = {p.strip().lower() for p in m[-1].split(",")} - {""} if m else set()
        want = {g.strip().lower() for g in gold}
        hit = len(pred & want)
        out.append(0.0 if hit == 0 else 2 * hit / (len(pred) + len(want)))
    return out


class Timer(TrainerCallback):
    def __init__(self):
        self.steps = []
        self.t = None

    def on_step_begin(self, args, state, control, **kw):
        self.t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.steps.append(time.perf_counter() - self.t)


def main() -> None:
    model_dir, dataset_dir, steps, g, max_new, mode = sys.argv[1:7]
    steps, g, max_new = int(steps), int(g), int(max_new)
    torch.set_num_threads(2)
    rows = prompts(dataset_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    lens = [
        len(tok.apply_chat_template(r["prompt"], add_generation_prompt=True, return_dict=True)["input_ids"])
        for r in rows[: steps]
    ]
    config = GRPOConfig(
        output_dir="/tmp/grpo-trl-out",
        per_device_train_batch_size=1,
        gradient_accumulation_steps=g,
        num_generations=g,
        max_completion_length=max_new,
        temperature=1.0,
        beta=0.0,
        loss_type="bnpo",
        learning_rate=1e-6,
        max_steps=steps,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        seed=0,
        model_init_kwargs={"dtype": torch.float32},
    )
    peft_config = None
    if mode == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.0,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
            task_type="CAUSAL_LM",
        )
    timer = Timer()
    trainer = GRPOTrainer(
        model=model_dir,
        reward_funcs=[f1_reward],
        args=config,
        train_dataset=Dataset.from_list(rows),
        peft_config=peft_config,
        callbacks=[timer],
    )
    trainer.train()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(
        json.dumps(
            {
                "tool": f"trl {__import__('trl').__version__}",
                "mode": mode,
                "step_seconds": timer.steps,
                "prompt_tokens": lens,
                "peak_gib": peak,
            }
        )
    )


if __name__ == "__main__":
    main()
