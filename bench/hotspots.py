"""``python -m bench.hotspots FILE``: the top functions of a py-spy ``--format raw`` profile
(collapsed stacks), by self and by inclusive share of samples; idle samples are left out."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def load(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def busy(stacks: list[tuple[list[str], int]]) -> list[tuple[list[str], int]]:
    """Samples where the loop was doing work: the leaf is not the selector's wait."""
    return [
        (frames, n) for frames, n in stacks if not frames[-1].startswith("EpollSelector.select")
    ]


def tops(
    stacks: list[tuple[list[str], int]], limit: int
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in stacks:
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    return own.most_common(limit), inclusive.most_common(limit)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.hotspots")
    parser.add_argument("file", type=Path)
    parser.add_argument("--limit", type=int, default=25)
    args = parser.parse_args()
    stacks = load(args.file)
    total = sum(n for _, n in stacks)
    working = busy(stacks)
    work = sum(n for _, n in working)
    print(
        f"{total} samples, {work} busy ({100 * work / max(total, 1):.1f}%); shares below are of busy samples"
    )
    own, inclusive = tops(working, args.limit)
    print("\n-- self")
    for frame, n in own:
        print(f"{100 * n / work:6.1f}%  {frame}")
    print("\n-- inclusive")
    for frame, n in inclusive:
        print(f"{100 * n / work:6.1f}%  {frame}")


if __name__ == "__main__":
    main()
