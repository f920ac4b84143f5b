"""What the peer benchmarks of `synthpipe lm bench` share: the prompt text and their arguments."""

import sys

# The same text as BENCH_TEXT in src/cli/lm.rs.
TEXT = (
    "The history of the river valley begins with the farmers who settled along its banks, "
    "built terraces on the hills and traded grain with the towns downstream. Over the "
    "centuries the valley saw floods, droughts, wars and long years of peace; each left its "
    "mark on the villages, the churches and the stories people told their children. "
)


def args() -> tuple[str, int, int, int, int]:
    """MODEL [PROMPT_TOKENS=1000] [NEW_TOKENS=128] [THREADS=2] [REPEAT=1] from the command line."""
    a = sys.argv
    return (
        a[1],
        int(a[2]) if len(a) > 2 else 1000,
        int(a[3]) if len(a) > 3 else 128,
        int(a[4]) if len(a) > 4 else 2,
        int(a[5]) if len(a) > 5 else 1,
    )
