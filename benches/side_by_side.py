"""Interleaved side-by-side timing of two synthpipe binaries, each with its own rule files:
the check and generate rows of BENCHMARKS.md, and whether family's output stays
byte-identical. Usage:

    python3 benches/side_by_side.py OLD_BINARY NEW_BINARY OLD_RULES_DIR NEW_RULES_DIR

Build the old binary from a worktree of the earlier commit (with its own target folder, or
copy it out before rebuilding the new one); nothing here is needed by the tests."""
import subprocess, time, sys, os, shutil, statistics, tempfile
OLD, NEW, old_rules, new_rules = sys.argv[1:5]
work = tempfile.mkdtemp(prefix="synthpipe-side-by-side-")
# The 1 MiB file of benches/check.rs (tests/common/mod.rs large_rules)
s = 'pool names = ["a", "b", "c"];\n'; i = 0
while len(s) < (1 << 20):
    n = 100 + i
    s += (f'entity e{i} count 3 {{\n    name: key pool names;\n    size: int 1..{n} {{\n        say "size" / "sizes";\n    }}\n}}\n\n'
          f'relation r{i}(a: e{i}, b: e{i}) symmetric {{\n    generate random_graph(mean_degree: 2.5);\n    say b: "partner {i}" / "partners {i}";\n    weight 1;\n}}\n\n'
          f'relation d{i}(a: e{i}, c: e{i})\n    := r{i}(a: a, b: x), r{i}(a: x, b: c), a != c, c.size > a.size\n{{\n    say c: "second partner {i}" / "second partners {i}";\n    weight 2;\n}}\n\n')
    i += 1
open(os.path.join(work, "big.rules"), "w").write(s)
rows = [
  ("check 1 MiB", 11, lambda b, r: [b, "check", os.path.join(work, "big.rules")]),
  ("check family", 7, lambda b, r: [b, "check", f"{r}/family.rules"]),
  ("check wiki", 7, lambda b, r: [b, "check", f"{r}/wiki.rules"]),
  ("generate family max_tree_size=51", 7, lambda b, r: [b, "generate", f"{r}/family.rules", "--out", "OUT", "--set", "max_tree_size=51"]),
  ("generate family trees=100", 5, lambda b, r: [b, "generate", f"{r}/family.rules", "--out", "OUT", "--set", "trees=100"]),
  ("generate family trees=2000 depth 6", 3, lambda b, r: [b, "generate", f"{r}/family.rules", "--out", "OUT", "--set", "trees=2000", "--set", "question_depth=6"]),
  ("generate wiki 1..=3", 7, lambda b, r: [b, "generate", f"{r}/wiki.rules", "--out", "OUT", "--seed", "1..=3"]),
  ("generate academia 1..=3", 7, lambda b, r: [b, "generate", f"{r}/academia.rules", "--out", "OUT", "--seed", "1..=3"]),
  ("generate football 1..=3", 7, lambda b, r: [b, "generate", f"{r}/football.rules", "--out", "OUT", "--seed", "1..=3"]),
]
for label, n, cmd in rows:
    t = {"old": [], "new": []}
    for k in range(n):
        for who, b, r in (("old", OLD, old_rules), ("new", NEW, new_rules)):
            out = os.path.join(work, f"out-{who}")
            shutil.rmtree(out, ignore_errors=True)
            c = [x.replace("OUT", out) for x in cmd(b, r)]
            s0 = time.perf_counter(); p = subprocess.run(c, capture_output=True); dt = time.perf_counter() - s0
            if p.returncode != 0: print(label, who, p.stderr.decode()[-300:]); sys.exit(1)
            t[who].append(dt)
    fmt = lambda v: f"{min(v)*1e3:.1f} / {statistics.median(v)*1e3:.1f} ms"
    print(f"| {label} ({n} runs; best / median) | {fmt(t['old'])} | {fmt(t['new'])} |", flush=True)
# family output byte-identical
for who, b, r in (("old", OLD, old_rules), ("new", NEW, new_rules)):
    out = os.path.join(work, f"fam-{who}"); shutil.rmtree(out, ignore_errors=True)
    subprocess.run([b, "generate", f"{r}/family.rules", "--out", out, "--seed", "1..=3", "--derived", "--set", "unanswerable=0.1"], check=True, capture_output=True)
same = all(open(os.path.join(work, "fam-old", f), "rb").read() == open(os.path.join(work, "fam-new", f), "rb").read() for f in os.listdir(os.path.join(work, "fam-old")))
print("family output byte-identical:", same, sorted(os.listdir(os.path.join(work, "fam-old"))))
shutil.rmtree(work, ignore_errors=True)
