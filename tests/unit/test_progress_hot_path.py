"""The build reducer's fast path for `{"stream": ...}` events gives exactly what the general path
gives (LineJoiner + per-line handling), however the engine cuts its output into events.

`BuildState.apply` inlines line joining for the common event (one key, whole lines, no escape
codes or carriage returns) and skips per-line work for output without builder lines; an event
with any other key takes the general path. Random cuts of recorded builds, plus lines with
escapes, bars, trailing blanks and builder lines glued to output, must give the same lines,
snapshot, step output and container bookkeeping on both paths.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from dcs_magic.model.progress import BuildState, LineJoiner

FIXTURES = Path(__file__).parent / "fixtures"
EXTRA = ["line  \t\n", "  \n", "\x1b[31mred\x1b[0m\n", "bar 10%\rbar 50%\rbar 100%\n", "no newline", "\r\n",
         "Step 9/9 : RUN x\n", " ---> Running in 0123456789ab\n",
         "tail Removing intermediate container 0123456789ab\n", "\u00e9\u2028x \u00a0\n",
         "Successfully tagged a:b\n", " ---> Using cache\n", "\n\n\n", "x" * 3000 + "\n"]


def _texts() -> list[str]:
    texts = []
    for path in sorted(FIXTURES.glob("build_*.jsonl")):
        events = [json.loads(line) for line in path.read_text().splitlines() if line]
        texts.append("".join(e.get("stream", "") for e in events))
    return texts


def _run(chunks: list[str], *, general: bool) -> tuple[list[str], BuildState]:
    now = [0.0]
    state = BuildState(clock=lambda: now[0])
    lines: list[str] = []
    for chunk in chunks:
        now[0] += 0.25
        # A second key sends the event down the general path (as a pull status with a stream would).
        lines += state.apply({"stream": chunk, "general": 1} if general else {"stream": chunk})
    return lines + state.finish(), state


@pytest.mark.parametrize("seed", range(4))
def test_fast_and_general_paths_agree_on_random_cuts(seed: int) -> None:
    rng = random.Random(seed)
    texts = _texts()
    for _ in range(300):
        text = rng.choice(texts) + "".join(rng.choice(EXTRA) for _ in range(rng.randint(0, 8))) + rng.choice(texts)
        cuts = sorted(rng.sample(range(1, len(text)), max(0, min(len(text) - 1, rng.randint(0, 40)))))
        chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
        fast_lines, fast = _run(chunks, general=False)
        general_lines, general = _run(chunks, general=True)
        joiner = LineJoiner()
        assert fast_lines == general_lines == [line for c in chunks for line in joiner.feed(c)] + joiner.flush()
        fast_snap, general_snap = fast.snapshot(), general.snapshot()
        fast_snap.pop("started_at"), general_snap.pop("started_at")
        assert fast_snap == general_snap
        assert list(fast.step_output) == list(general.step_output)
        assert (fast.container, fast.last_image, fast.tags) == (general.container, general.last_image, general.tags)
    assert fast.steps  # the recorded builds' steps were seen (the comparison covered them)
