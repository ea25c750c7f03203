"""What every teacher script ends with: its accuracy per source, then its answers for `train --teacher`."""
from __future__ import annotations

from collections import defaultdict

from facegender import manifest


def report_and_write(out: str, rows: list[manifest.Row], p_female: list[float]) -> None:
    right = defaultdict(lambda: [0, 0])
    for r, p in zip(rows, p_female):
        for key in (r.source, "all"):
            right[key][0] += (p > 0.5) == (r.label == 1)
            right[key][1] += 1
    for key, (k, n) in sorted(right.items()):
        print(f"{key:18} accuracy {k / n:.4f} on {n:,}")
    manifest.write_answers(out, rows, p_female)
