import csv
import filecmp
import shutil
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from facegender import manifest
from facegender.training.prepare import prepare


def test_split_is_deterministic_and_seeded(small_trees, tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 0), (b, 0), (c, 1)):
        prepare([str(t) for t in small_trees], str(out), val_ratio=0.2, seed=seed)
    assert filecmp.cmp(a / "val.csv", b / "val.csv", shallow=False)
    assert filecmp.cmp(a / "train.csv", b / "train.csv", shallow=False)
    assert not filecmp.cmp(a / "val.csv", c / "val.csv", shallow=False)


def test_ratio_and_every_image_once(small_manifests, small_trees):
    train, val = manifest.read(small_manifests / "train.csv"), manifest.read(small_manifests / "val.csv")
    files = [p for t in small_trees for cls in ("male", "female") for p in (t / cls).iterdir()]
    assert len(train) + len(val) == len(files)
    assert abs(len(val) / len(files) - 0.2) < 0.03
    assert not {r.path for r in train} & {r.path for r in val}


def test_no_person_on_both_sides(small_manifests):
    sides = defaultdict(set)
    for side in ("train", "val"):
        for r in manifest.read(small_manifests / f"{side}.csv"):
            sides[r.group].add(side)
    celeba = [g for g in sides if g.startswith("celeba:")]
    assert celeba and all(len(sides[g]) == 1 for g in sides)
    # some CelebA people have several images here, so the check above has teeth
    counts = defaultdict(int)
    for r in manifest.read(small_manifests / "train.csv"):
        counts[r.group] += 1
    assert max(counts.values()) > 1


def test_manifest_format(small_manifests):
    with open(small_manifests / "train.csv", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        first = next(reader)
    assert header[:2] == ["path", "label"]
    assert first[0].split("/")[-2] in ("male", "female")  # prefixed with its class folder
    assert first[1] in ("0", "1")
    rows = manifest.read(small_manifests / "train.csv")
    assert all((r.label == 0) == ("/male/" in r.path) for r in rows)
    assert all(r.source in ("celeba-89x109", "utkface") for r in rows)


def test_conflicting_duplicates_are_dropped_and_reported(small_trees, tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(small_trees[1], tree)
    victim = sorted((tree / "male").iterdir())[0]
    shutil.copy(victim, tree / "female" / "copy.jpg")  # same bytes, other label
    same = sorted((tree / "male").iterdir())[1]
    shutil.copy(same, tree / "male" / "same_copy.jpg")
    summary = prepare([str(tree)], str(tmp_path / "m"), val_ratio=0.2, seed=0)
    notes = summary["notes"]
    assert notes["identical files with conflicting labels: all copies dropped"] == 2
    assert notes["identical copies with the same label: extra copies dropped"] == 1
    names = {r.path.rsplit("/", 1)[1] for side in ("train", "val") for r in manifest.read(tmp_path / "m" / f"{side}.csv")}
    assert victim.name not in names and "copy.jpg" not in names


def test_keep_split_keeps_earlier_sides_and_splits_new_sources_per_family(small_trees, small_manifests, tmp_path):
    from .conftest import make_tree
    new = make_tree(tmp_path / "trees" / "allagefaces", "allagefaces", 50)
    prepare([str(t) for t in small_trees] + [str(new)], str(tmp_path / "m"), val_ratio=0.2, seed=3,
            keep_split=str(small_manifests))
    before = {side: {r.path for r in manifest.read(small_manifests / f"{side}.csv")} for side in ("train", "val")}
    after = {side: manifest.read(tmp_path / "m" / f"{side}.csv") for side in ("train", "val")}
    for side in ("train", "val"):  # nobody of the earlier split changed sides
        assert {r.path for r in after[side] if r.source != "allagefaces"} == before[side]
    new_val = [r for r in after["val"] if r.source == "allagefaces"]
    assert len(new_val) == 20  # 20% of the new family's 100 images
    assert all(r.min_crop == 0.7 and r.age for r in new_val)  # its framing and ages are known


def test_mtfl_is_split_by_blocks_of_aflw_ids_and_by_web_photo():
    from facegender.folders import AFLW_BLOCK, group_of, source_of
    a, b = group_of("mtfl", "aflw_0003-image07098.webp", {}), group_of("mtfl", "aflw_0004-image07120.webp", {})
    assert a == b == f"mtfl:aflw-{7098 // AFLW_BLOCK}"  # a burst of one person: one group
    net = [group_of("mtfl", f, {}) for f in ("net_1002_0_0.webp", "net_1002_1_0.webp", "net_1003_0_0.webp")]
    assert net[0] == net[1] != net[2]
    assert group_of("celeba-64x64", "000002.jpg", {"celeba_identity": "17"}) == "celeba:17"
    assert group_of("utkface", "x.jpg", {}) == "utkface:x.jpg"
    assert source_of("mtfl", {"source": "aflw"}) == "mtfl-aflw" and source_of("utkface", {}) == "utkface"


def test_a_padded_row_is_loaded_as_its_aligned_frame(tmp_path):
    import numpy as np
    from PIL import Image

    from facegender.manifest import Row, load_frame
    a = np.random.default_rng(0).integers(0, 255, (160, 128, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "f.png")
    frame = np.asarray(load_frame(Row(path=str(tmp_path / "f.png"), label=1, pad="22,44,22,7")))
    assert frame.shape == (211, 172, 3) and np.array_equal(frame[44:204, 22:150], a)
    assert np.array_equal(frame[0, 22:150], a[0])  # edge-repeated, as MTFL's own padding is


def test_split_is_stable_when_other_people_come_or_go(small_trees, tmp_path):
    """Each new person's side depends on their name and the seed alone: dropping some people
    (the data folders change) moves no one else across, apart from the fill at the ratio."""
    from facegender.training.prepare import split
    prepare([str(t) for t in small_trees], str(tmp_path / "a"), val_ratio=0.2)
    full = manifest.read(tmp_path / "a" / "train.csv") + manifest.read(tmp_path / "a" / "val.csv")
    groups = sorted({r.group for r in full})
    fewer = [r for r in full if r.group not in set(groups[::10])]
    def side(rows):
        return {r.group: name for name, part in zip(("train", "val"), split(rows, 0.2, 0)) for r in part}
    before, after = side(full), side(fewer)
    moved = [g for g in after if after[g] != before[g]]
    assert len(moved) <= 0.1 * len(after)  # with a seeded permutation, about a third moved


def test_keep_split_takes_a_manifest_of_held_out_people(small_trees, small_manifests, tmp_path):
    held = manifest.read(small_manifests / "train.csv")[:5]  # people the default split trains on
    manifest.write(tmp_path / "held.csv", held)
    prepare([str(t) for t in small_trees], str(tmp_path / "out"), val_ratio=0.2, keep_split=str(tmp_path / "held.csv"))
    val_groups = {r.group for r in manifest.read(tmp_path / "out" / "val.csv")}
    assert {r.group for r in held} <= val_groups


def test_label_audit_relabels_drops_and_keeps_as_decided(small_trees, tmp_path):
    utk = small_trees[1]
    male = sorted((utk / "male").iterdir())
    female = sorted((utk / "female").iterdir())
    audit = tmp_path / "audit.csv"
    audit.write_text("file,label,decision,note\n"
                     f"utkface/male/{male[0].name},male,relabel,a woman\n"
                     f"utkface/female/{female[0].name},female,drop,no face\n"
                     f"utkface/male/{male[1].name},male,keep,the models are wrong\n")
    report = prepare([str(t) for t in small_trees], str(tmp_path / "out"), val_ratio=0.2, audit=str(audit))
    rows = {Path(r.path).name: r for side in ("train", "val") for r in manifest.read(tmp_path / "out" / f"{side}.csv")}
    assert rows[male[0].name].label == 1 and rows[male[1].name].label == 0 and female[0].name not in rows
    assert report["notes"]["label audit: relabelled"] == 1 and report["notes"]["label audit: dropped"] == 1
    audit.write_text(f"file,label,decision,note\nutkface/male/{male[0].name},female,drop,\n")  # filed as male
    with pytest.raises(ValueError, match="filed as male"):
        prepare([str(t) for t in small_trees], str(tmp_path / "again"), audit=str(audit))


def test_a_tree_without_class_folders_is_one_line_on_stderr_and_exit_1(tmp_path, capsys):
    from facegender.cli import main
    from facegender.errors import InputError
    from facegender.folders import scan

    (tmp_path / "tree" / "male").mkdir(parents=True)
    with pytest.raises(InputError, match="has no female/ folder"):
        scan(tmp_path / "tree", Counter())
    assert main(["prepare", str(tmp_path / "tree"), "--out", str(tmp_path / "m")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("facegender: error: ") and "has no female/ folder" in err and "\n" not in err
