"""CelebA looks (facegender.looks): read from CelebA's own attribute file, reported by
evaluate, and balanced within their cell when training asks for it."""
from __future__ import annotations

import numpy as np

from facegender import manifest
from facegender.looks import ATTRIBUTES, look

from .conftest import DATA, SAMPLE


def attributes(image_id: str) -> dict:
    with open(DATA / ATTRIBUTES) as f:
        f.readline()
        names = f.readline().split()
        for line in f:
            if line.startswith(image_id):
                return dict(zip(names, (v == "1" for v in line.split()[1:])))


def test_a_look_is_the_attribute_files():
    for folder in ("celeba-64x64", "celeba-112x137"):
        for p in sorted((DATA / folder / "female").iterdir())[:40]:
            a = attributes(p.name[:6])
            cue = ("hat" if a["Wearing_Hat"] else "glasses" if a["Eyeglasses"] else
                   "make-up" if a["Heavy_Makeup"] or a["Wearing_Lipstick"] else "bare")
            assert look(str(p)) == f"{cue}, {'young' if a['Young'] else 'older'}"
    assert look(str(sorted((DATA / "utkface" / "female").iterdir())[0])) is None
    assert look("000001.jpg") is None


def test_balancing_over_looks_keeps_each_cells_share_and_lifts_bare_faced_women(monkeypatch):
    from facegender.training import data
    from facegender.training.data import balance_weights, cell_of

    monkeypatch.setattr(data, "LOOK_FLOOR", 1)  # 1,000 faces: every look is under the training floor
    rows = manifest.read(SAMPLE)
    plain, over = balance_weights(rows, 0.8), balance_weights(rows, 0.8, looks=True)
    cells = [cell_of(r) for r in rows]
    for c in set(cells):
        m = np.array([x == c for x in cells])
        assert abs(over[m].sum() / over.sum() - plain[m].sum() / plain.sum()) < 1e-9
    bare = np.array([r.label == 1 and (look(r.path) or "").startswith("bare") for r in rows])
    assert bare.sum() > 5 and over[bare].sum() / over.sum() > 1.3 * plain[bare].sum() / plain.sum()


def test_evaluate_reports_looks_and_names_the_worst():
    from facegender.evaluate import subgroups, worst_groups

    rows = [r for r in manifest.read(SAMPLE) if r.source.startswith("celeba")]
    y = np.array([r.label for r in rows])
    p = np.where(y == 1, 0.9, 0.1)
    bare = [i for i, r in enumerate(rows) if r.label == 1 and look(r.path).startswith("bare")]
    p[bare] = 0.2  # every bare-faced woman called a man
    groups = subgroups(rows, y, p)
    assert groups["CelebA look and sex"]["female, bare"]["accuracy"] == 0.0
    assert groups["CelebA look and sex"]["female, make-up"]["accuracy"] == 1.0
    if len(bare) >= 30:
        assert worst_groups(groups)["CelebA look and sex"]["group"] == "female, bare"
