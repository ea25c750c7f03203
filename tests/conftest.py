"""Shared fixtures: real images from ../shared/data, small trees made per test."""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SAMPLE = ROOT / "tests" / "data" / "val_sample_1000.csv"


def real_images(source: str, cls: str, n: int) -> list[Path]:
    return sorted((DATA / source / cls).iterdir())[:n]


def make_tree(dest: Path, source: str, per_class: int) -> Path:
    """A copy of `per_class` images per class of a source, with its labels.csv rows."""
    dest.mkdir(parents=True, exist_ok=True)
    keep = set()
    for cls in ("male", "female"):
        (dest / cls).mkdir(exist_ok=True)
        for p in real_images(source, cls, per_class):
            shutil.copy(p, dest / cls / p.name)
            keep.add(p.name)
    with open(DATA / source / "labels.csv", newline="") as f, open(dest / "labels.csv", "w", newline="") as g:
        reader = csv.DictReader(f)
        writer = csv.DictWriter(g, fieldnames=reader.fieldnames)
        writer.writeheader()
        writer.writerows(r for r in reader if r["file"] in keep)
    return dest


@pytest.fixture(scope="session")
def small_trees(tmp_path_factory) -> list[Path]:
    """CelebA (with identities) and UTKFace trees; the folder names match the real ones."""
    base = tmp_path_factory.mktemp("trees")
    return [make_tree(base / "celeba-89x109", "celeba-89x109", 150), make_tree(base / "utkface", "utkface", 60)]


@pytest.fixture(scope="session")
def small_manifests(small_trees, tmp_path_factory) -> Path:
    from facegender.training.prepare import prepare

    out = tmp_path_factory.mktemp("manifests")
    prepare([str(t) for t in small_trees], str(out), val_ratio=0.2, seed=0)
    return out


@pytest.fixture(scope="session")
def face_folder(tmp_path_factory) -> Path:
    """40 real adult faces (20 per class, CelebA and UTKFace aged 25-29) in one flat folder."""
    d = tmp_path_factory.mktemp("faces")
    for cls in ("male", "female"):
        adults = [p for p in sorted((DATA / "utkface" / cls).iterdir()) if p.name.split("_")[0] in {"25", "26", "27", "28", "29"}]
        for p in real_images("celeba-89x109", cls, 10) + adults[:10]:
            shutil.copy(p, d / p.name)
    return d
