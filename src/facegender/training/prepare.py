"""Turn class-folder trees (male/, female/) into seeded, person-disjoint train/val manifests.

Label noise is handled here, in the open: byte-identical files with conflicting labels are
dropped (and counted), identical copies with the same label are kept once, and a folder
label that disagrees with the tree's labels.csv is reported. Nothing is skipped silently.
"""
from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path

from .. import manifest
from ..folders import scan
from ..manifest import Row
from .audit import apply_audit


def deduplicate(items: list[tuple[Row, str]], report: Counter) -> list[Row]:
    """Keep one copy of identical files; drop every copy of files whose labels conflict."""
    by_hash = defaultdict(list)
    for row, digest in items:
        by_hash[digest].append(row)
    kept = []
    for rows in by_hash.values():
        if len({r.label for r in rows}) > 1:
            report["identical files with conflicting labels: all copies dropped"] += len(rows)
            continue
        report["identical copies with the same label: extra copies dropped"] += len(rows) - 1
        kept.append(rows[0])
    return sorted(kept, key=lambda r: r.path)


def family(group: str) -> str:
    """The data set a group (person) belongs to: CelebA's three folders are one family."""
    return group.split(":", 1)[0]


def _draw_order(group: str, seed: int) -> bytes:
    """Where a new group stands in the draw for validation: a seeded hash of its name alone,
    so adding or removing other people (the data folders change) moves no one else's side.
    (A seeded permutation of the list did: one group more and the whole split changed.)"""
    return hashlib.sha256(f"{seed}:{group}".encode()).digest()


def split(rows: list[Row], val_ratio: float, seed: int, keep: dict[str, str] | None = None) -> tuple[list[Row], list[Row]]:
    """Person-disjoint train/validation, filled to the ratio within each family of sources.

    Groups in `keep` (group -> "train"/"val", from an earlier split) stay on their side, so
    a model trained on that split is never judged on faces it learned; new groups are drawn
    in the order of a seeded hash of their names and fill each family's validation up to the ratio.
    """
    keep = keep or {}
    groups = defaultdict(list)
    for r in rows:
        groups[r.group].append(r)
    train, val = [], []
    for fam in sorted({family(g) for g in groups}):
        keys = sorted(g for g in groups if family(g) == fam)
        target = round(val_ratio * sum(len(groups[g]) for g in keys))
        fam_val = [r for g in keys if keep.get(g) == "val" for r in groups[g]]
        train += [r for g in keys if keep.get(g) == "train" for r in groups[g]]
        for g in sorted((g for g in keys if g not in keep), key=lambda g: _draw_order(g, seed)):
            (fam_val if len(fam_val) < target else train).extend(groups[g])
        val += fam_val
    return sorted(train, key=lambda r: r.path), sorted(val, key=lambda r: r.path)


def earlier_split(where: str) -> dict[str, str]:
    """group -> side: of an earlier prepare's folder (train.csv / val.csv), or of one manifest
    CSV whose people all stay in validation (e.g. faces known to be held out of a model)."""
    if Path(where).is_file():
        return {r.group: "val" for r in manifest.read(where)}
    sides = {}
    for side in ("train", "val"):
        for r in manifest.read(Path(where) / f"{side}.csv"):
            sides[r.group] = side
    return sides


def prepare(roots: list[str], out_dir: str, val_ratio: float = 0.1, seed: int = 0, keep_split: str = "",
            audit: str = "") -> dict:
    """Scan the trees, deduplicate, split by person and write train.csv / val.csv.
    `keep_split`: a folder with an earlier train.csv / val.csv whose people keep their sides,
    or a manifest CSV whose people stay in validation. `audit`: labels/audit.csv's decisions (audit.py)."""
    report: Counter = Counter()
    items = [item for root in roots for item in scan(Path(root), report)]
    if audit:
        items = apply_audit(items, audit, report)
    rows = deduplicate(items, report)
    keep = earlier_split(keep_split) if keep_split else None
    train, val = split(rows, val_ratio, seed, keep)
    out = Path(out_dir)
    manifest.write(out / "train.csv", train)
    manifest.write(out / "val.csv", val)
    summary = {
        "roots": [str(Path(r).resolve()) for r in roots], "seed": seed, "val_ratio": val_ratio,
        "kept_split_of": keep_split or None, "audit": audit or None,
        "images_found": len(items), "train": len(train), "val": len(val),
        "per_source": {s: {"train": sum(r.source == s for r in train), "val": sum(r.source == s for r in val)}
                       for s in sorted({r.source for r in rows})},
        "notes": dict(report),
    }
    tmp = out / "prepare_report.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(out / "prepare_report.json")
    return summary
