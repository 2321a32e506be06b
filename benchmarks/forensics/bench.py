"""`dcs why` against the forensics corpus: is the first cause named the right one, is no wrong
cause stated as certain, and how long does a diagnosis take.

    python benchmarks/forensics/bench.py [--only CASE ...] [--reps 5] [--json FILE]

Each case under `cases/` holds a failure's artefacts (clusters/get JSON, events, logs) and an
`expected.json` (`{"signature": id or null for "no cause may be named", "note", "source"}`).
The artefacts (everything but expected.json) are copied to a temporary folder and diagnosed
with `dcs_magic.ops.why.why_from`, the function behind `dcs why --from PATH`; the time is that
call's alone (imports and the copy excluded), the median of `--reps` runs.

Counted, per the target of issue 22:
- right:         the first cause's signature is the expected one (for an expected null: no
                 cause at all, the output says "unknown")
- wrong certain: a cause stated as certain (in any position) whose signature is not the
                 expected one; must be 0
- time:          every diagnosis < 2 s

Exit status 1 when the corpus has fewer than 30 cases, right < 90%, any wrong certain, or any
diagnosis of 2 s or more. Offline: no Docker, no workspace.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CASES = HERE / "cases"
sys.path.insert(0, str(REPO))

from dcs_magic.ops.why import why_from  # noqa: E402

MIN_CASES, MIN_RIGHT, MAX_SECONDS = 30, 0.90, 2.0


@dataclass
class Outcome:
    case: str
    expected: str | None
    first: str | None
    confidence: str
    right: bool
    wrong_certain: list[str]
    seconds: float
    origin: str  # local (recorded on the local workspace) | recorded (reconstructed from a report)


def case_dirs(only: list[str] | None = None) -> list[Path]:
    dirs = sorted(p for p in CASES.iterdir() if (p / "expected.json").is_file())
    return [p for p in dirs if not only or p.name in only]


def artefacts(case: Path, into: Path) -> Path:
    """A copy of the case without its expected.json (which why_from would read as a log)."""
    target = into / case.name
    shutil.copytree(case, target, ignore=lambda _dir, names: [n for n in names if n == "expected.json"])
    return target


def diagnose(case: Path, reps: int = 1) -> Outcome:
    expected = json.loads((case / "expected.json").read_text())["signature"]
    times = []
    with tempfile.TemporaryDirectory(prefix="dcs-bench-why-") as tmp:
        copy = artefacts(case, Path(tmp))
        for _ in range(reps):
            started = time.perf_counter()
            why = why_from(copy)
            times.append(time.perf_counter() - started)
    first = why.causes[0].signature if why.causes else None
    wrong = [d.signature for d in why.causes if d.confidence == "certain" and d.signature != expected]
    return Outcome(case.name, expected, first, why.confidence, first == expected, wrong,
                   statistics.median(times), "local" if case.name.startswith("local-") else "recorded")


def table(outcomes: list[Outcome]) -> str:
    rows = [("case", "expected", "first cause (confidence)", "ok", "wrong certain", "ms")]
    for o in outcomes:
        rows.append((o.case, o.expected or "(unknown)", f"{o.first or '(unknown)'} ({o.confidence})",
                     "yes" if o.right else "NO", ", ".join(o.wrong_certain), f"{o.seconds * 1000:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def totals(outcomes: list[Outcome]) -> tuple[list[str], bool]:
    n = len(outcomes)
    right = sum(o.right for o in outcomes)
    wrong_certain = sum(bool(o.wrong_certain) for o in outcomes)
    slowest = max((o.seconds for o in outcomes), default=0.0)
    by_origin = {origin: [o for o in outcomes if o.origin == origin] for origin in ("recorded", "local")}
    unknown = [o for o in outcomes if o.expected is None]
    ok = n >= MIN_CASES and right / max(n, 1) >= MIN_RIGHT and wrong_certain == 0 and slowest < MAX_SECONDS
    lines = [
        f"cases: {n} ({len(by_origin['recorded'])} recorded from public reports, {len(by_origin['local'])} "
        f"local failures; {len(unknown)} with no cause to name)   target >= {MIN_CASES}",
        f"first cause right: {right}/{n} = {right / max(n, 1):.1%}   target >= {MIN_RIGHT:.0%}"
        + "".join(f"   ({k}: {sum(o.right for o in v)}/{len(v)})" for k, v in by_origin.items() if v),
        f"cases with a wrong cause stated as certain: {wrong_certain}   target 0",
        f"diagnosis time: median {statistics.median([o.seconds for o in outcomes]) * 1000:.1f} ms, "
        f"max {slowest * 1000:.1f} ms   target < {MAX_SECONDS:g} s each" if outcomes else "diagnosis time: -",
        f"target met: {'yes' if ok else 'NO'}",
    ]
    return lines, ok


def large_log(megabytes: int) -> float:
    """Seconds to diagnose a folder holding one large driver log4j (why_from reads files up to
    16 MiB): lines like a busy driver's, the cause on a line three quarters in."""
    line = ("26/12/07 06:{m:02d}:{s:02d} INFO TaskSetManager: Finished task {i}.0 in stage {st}.0 (TID {i}) "
            "in 57 ms on 10.0.1.{e} (executor {e}) ({i}/200)")
    count = megabytes * 10**6 // (len(line.format(m=0, s=0, i=100000, st=0, e=0)) + 1)
    rows = [line.format(m=i // 60 % 60, s=i % 60, i=i, st=i % 97, e=i % 8) for i in range(count)]
    rows.insert(count * 3 // 4, "ModuleNotFoundError: No module named 'azure.storage'")
    with tempfile.TemporaryDirectory(prefix="dcs-bench-why-") as tmp:
        log = Path(tmp) / "0101-000000-big" / "driver" / "log4j-active.log"
        log.parent.mkdir(parents=True)
        log.write_text("\n".join(rows) + "\n")
        started = time.perf_counter()
        why = why_from(tmp)
        seconds = time.perf_counter() - started
    assert why.causes and why.causes[0].signature == "module-missing", why.causes
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="case names (default: all)")
    parser.add_argument("--reps", type=int, default=5, help="runs per case; the median time is shown")
    parser.add_argument("--json", type=Path, help="also write the outcomes here")
    parser.add_argument("--large", type=int, default=15, metavar="MB",
                        help="also time a synthetic driver log4j of MB megabytes (0: not; why_from skips files over 16 MiB)")
    args = parser.parse_args(argv)
    outcomes = [diagnose(case, args.reps) for case in case_dirs(args.only)]
    print(table(outcomes))
    print()
    lines, ok = totals(outcomes)
    if args.large:
        seconds = large_log(args.large)
        lines.insert(-1, f"a {args.large} MB driver log4j (synthetic, one module-missing line at 3/4): "
                         f"{seconds:.2f} s   target < {MAX_SECONDS:g} s")
        ok = ok and seconds < MAX_SECONDS
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps([asdict(o) for o in outcomes], indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
