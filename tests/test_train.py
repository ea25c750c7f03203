import csv
import json
import sys

import pytest
import torch

from facegender.errors import InputError
from facegender.training.train import TrainConfig, train


@pytest.fixture(scope="module")
def short_run(small_manifests, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(model="mobilenet_v2", train_manifest=str(small_manifests / "train.csv"),
                      val_manifest=str(small_manifests / "val.csv"), out_dir=str(out), epochs=3,
                      batch_size=32, lr=5e-4, augment=0.0, workers=0, seed=0)
    return train(cfg), out


def test_real_training_loss_falls(short_run):
    summary, out = short_run
    losses = [h["train_loss"] for h in summary["history"]]
    assert summary["train_images"] > 200
    assert losses[-1] < losses[0] * 0.8
    assert summary["best_val_acc"] > 0.6


def test_logs_checkpoints_and_config(short_run):
    summary, out = short_run
    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert {"train_loss", "train_acc", "val_loss", "val_acc"} <= set(rows[0])
    assert (out / "best.pt").exists() and (out / "last.pt").exists() and (out / "curves.png").stat().st_size > 0
    best = torch.load(out / "best.pt", weights_only=False)
    same = torch.load(out / f"epoch{best['epoch']}.pt", weights_only=False)  # each epoch kept for evaluate
    assert [torch.load(out / f"epoch{e}.pt", weights_only=False)["epoch"] for e in (1, 2, 3)] == [1, 2, 3]
    assert all(torch.equal(same["model"][k], v) for k, v in best["model"].items())
    assert json.loads((out / "config.json").read_text())["optimizer"] == "adamw"  # from the recipe


def test_resume_continues_where_it_stopped(small_manifests, tmp_path):
    base = dict(model="mobilenet_v2", train_manifest=str(small_manifests / "train.csv"),
                val_manifest=str(small_manifests / "val.csv"), out_dir=str(tmp_path), batch_size=32,
                augment=0.0, workers=0, limit=64)
    train(TrainConfig(epochs=1, **base))
    summary = train(TrainConfig(epochs=2, resume=True, **base))
    assert [h["epoch"] for h in summary["history"]] == [1, 2]


def test_feature_extraction_trains_only_the_head(small_manifests, tmp_path):
    import torch

    from facegender.training import models
    summary = train(TrainConfig(model="mobilenet_v2", mode="feature", train_manifest=str(small_manifests / "train.csv"),
                                val_manifest=str(small_manifests / "val.csv"), out_dir=str(tmp_path), epochs=1,
                                batch_size=32, workers=0, limit=64, augment=1.0))
    assert len(summary["history"]) == 1
    trained = torch.load(tmp_path / "last.pt", weights_only=False)["model"]
    imagenet = models.get("mobilenet_v2").build(pretrained=True).state_dict()
    assert torch.equal(trained["features.5.conv.1.0.weight"], imagenet["features.5.conv.1.0.weight"])
    assert not torch.equal(trained["classifier.1.weight"],
                           models.get("mobilenet_v2").build(pretrained=True).state_dict()["classifier.1.weight"])


def test_soft_targets_reduce_to_cross_entropy_with_label_smoothing():
    import torch

    from facegender.training.train import soft_cross_entropy
    logits, labels = torch.randn(32, 2), torch.randint(0, 2, (32,))
    expected = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
    assert torch.allclose(soft_cross_entropy(logits, labels.float(), 0.1), expected, atol=1e-6)


def test_distillation_mixes_an_onnx_teachers_answers_into_the_targets(small_manifests, tmp_path):
    import numpy as np

    from facegender import manifest
    from facegender.classifier import DEFAULT_MODEL
    from facegender.training.train import teacher_targets
    cfg = TrainConfig(model="mobilenet_v2", train_manifest=str(small_manifests / "train.csv"),
                      val_manifest=str(small_manifests / "val.csv"), out_dir=str(tmp_path), epochs=1,
                      batch_size=32, workers=0, limit=64, teacher=str(DEFAULT_MODEL), teacher_weight=0.5)
    rows = manifest.read(cfg.train_manifest)[:40]
    targets = teacher_targets(cfg, rows)
    labels = np.array([r.label for r in rows])
    assert np.all(np.abs(targets - labels) <= 0.5 + 1e-6)  # half label, half teacher
    assert np.mean(np.abs(targets - labels) < 0.25) > 0.85  # the teacher mostly agrees with the labels
    assert len(train(cfg)["history"]) == 1


def test_distillation_reads_a_teachers_answers_from_csv_and_refuses_gaps(small_manifests, tmp_path):
    import os

    import numpy as np

    from facegender import manifest
    from facegender.training.train import teacher_targets
    rows = manifest.read(small_manifests / "train.csv")[:40]
    answers = tmp_path / "teacher" / "answers.csv"
    answers.parent.mkdir()
    with open(answers, "w", newline="") as f:  # paths relative to the CSV, as the manifest writes them
        w = csv.writer(f)
        w.writerow(["path", "p_female"])
        w.writerows([os.path.relpath(r.path, answers.parent), 0.9] for r in rows[:-1])
    cfg = TrainConfig(teacher=str(answers), teacher_weight=0.25)
    with pytest.raises(InputError, match=f"no answer for 1 of the {len(rows)} images asked for"):
        teacher_targets(cfg, rows)
    targets = teacher_targets(cfg, rows[:-1])
    labels = np.array([r.label for r in rows[:-1]])
    np.testing.assert_allclose(targets, 0.75 * labels + 0.25 * 0.9, atol=1e-6)


def test_weight_average_is_what_validation_judges_and_best_holds(small_manifests, tmp_path):
    import torch
    base = dict(model="mobilenet_v2", train_manifest=str(small_manifests / "train.csv"),
                val_manifest=str(small_manifests / "val.csv"), out_dir=str(tmp_path), batch_size=32,
                augment=0.0, workers=0, limit=64, ema=0.5)
    train(TrainConfig(epochs=1, **base))
    last = torch.load(tmp_path / "last.pt", weights_only=False)
    best = torch.load(tmp_path / "best.pt", weights_only=False)["model"]
    key = "features.0.0.weight"
    assert torch.equal(best[key], last["averaged"]["module." + key])
    assert not torch.equal(best[key], last["model"][key])  # the average is not the last step's weights
    summary = train(TrainConfig(epochs=2, resume=True, **base))
    assert [h["epoch"] for h in summary["history"]] == [1, 2]


def test_zoom_out_view_keeps_the_image_centred_and_repeats_its_border():
    import numpy as np
    from PIL import Image

    from facegender.training.data import extend
    a = np.random.default_rng(0).integers(0, 255, (30, 20, 3), dtype=np.uint8)
    e = np.asarray(extend(Image.fromarray(a), 1.2))
    assert e.shape == (36, 24, 3)
    assert np.array_equal(e[3:33, 2:22], a)
    assert np.array_equal(e[0, 2:22], a[0]) and np.array_equal(e[3:33, 0], a[:, 0])


def test_balanced_sampling_draws_every_cell_equally_at_power_one(small_manifests):
    import numpy as np

    from facegender import manifest
    from facegender.training.data import balance_weights

    rows = manifest.read(small_manifests / "train.csv")
    cells = {}
    for r, w in zip(rows, balance_weights(rows, 1.0)):
        key = (r.group.split(":")[0], r.label, r.age and int(r.age) >= 18)
        cells.setdefault(key, []).append(w)
    shares = [sum(ws) for ws in cells.values()]
    assert len(shares) >= 4 and np.ptp(shares) / np.mean(shares) < 0.6  # age bands split the adult cells further
    natural = balance_weights(rows, 0.0)
    assert np.allclose(natural, 1.0)


def test_recipe_runs_every_step_and_skips_finished_training(small_trees, tmp_path, capsys):
    from facegender.classifier import Classifier
    from facegender.training.recipe import run

    trees = ", ".join(f'"{t}"' for t in small_trees)
    recipe = tmp_path / "r.toml"
    recipe.write_text(f"""
[[step]]
verb = "prepare"
roots = [{trees}]
out = "{tmp_path}/m"
val_ratio = 0.2

[[step]]
verb = "train"
train_manifest = "{tmp_path}/m/train.csv"
val_manifest = "{tmp_path}/m/val.csv"
epochs = 1
limit = 64
batch_size = 32
workers = 0
out_dir = "{tmp_path}/run"

[[step]]
verb = "export"
checkpoint = "{tmp_path}/run/best.pt"
calibrate = "{tmp_path}/m/val.csv"
out = "{tmp_path}/model.onnx"

[[step]]
verb = "evaluate"
data = "{tmp_path}/m/val.csv"
model = "{tmp_path}/model.onnx"
occlude = "mask"
out = "{tmp_path}/ev"

[[step]]
verb = "command"
run = ["{sys.executable}", "-c", "open('{tmp_path}/made.txt', 'w').write('x')"]
creates = "{tmp_path}/made.txt"
""")
    run(str(recipe))
    assert Classifier(tmp_path / "model.onnx").meta["temperature"] > 0
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["overall"]["count"] > 0 and report["occlude"] == "mask"
    assert (tmp_path / "made.txt").exists()
    capsys.readouterr()
    run(str(recipe), only=[1, 2, 5])
    assert capsys.readouterr().out.count("done before") == 3


def test_recipe_step_numbers_take_lists_and_ranges():
    from facegender.cli import step_numbers
    assert step_numbers("3,5,11-14") == [3, 5, 11, 12, 13, 14] and step_numbers("7") == [7]


def test_shipped_recipe_is_valid_and_ends_in_the_shipped_model():
    """A typo in recipes/default.toml would only show hours into a rerun: load checks every setting."""
    from pathlib import Path

    from facegender.training.recipe import load
    root = Path(__file__).resolve().parents[1]
    steps = load(str(root / "recipes" / "default.toml"))
    shipped = [s for s in steps if s["verb"] == "export" and s["out"].endswith("weights/facegender-default.onnx")]
    assert len(shipped) == 1 and shipped[0]["calibrate"]
    made = set()
    for s in steps:  # every checkpoint or teacher a step reads was made by an earlier step
        for need in [s.get("weights"), s.get("checkpoint"), s.get("teacher"), *s.get("checkpoints", [])]:
            if need:
                assert need in made or str(Path(need).parent) in made, need
        made |= {s.get("out_dir"), s.get("out"), s.get("creates")}


def test_wild_views_stay_in_shape_and_change_the_pixels():
    import random

    import numpy as np
    from PIL import Image

    from facegender.training.data import wild_photo
    face = Image.fromarray(np.random.default_rng(1).integers(40, 220, (96, 80, 3), dtype=np.uint8))
    rng = random.Random(0)
    views = [np.asarray(wild_photo(face, rng)) for _ in range(40)]
    assert all(v.shape == (96, 80, 3) and v.dtype == np.uint8 for v in views)
    changed = [np.abs(v.astype(int) - np.asarray(face)).mean() for v in views]
    assert min(changed) > 1 and np.mean([v.mean() for v in views]) < np.asarray(face).mean()  # darker on average


def test_group_dro_leans_towards_the_group_with_the_higher_loss():
    import torch

    from facegender.training.train import GroupDRO
    dro = GroupDRO(["easy", "hard", "absent"], step=0.5)
    losses, groups = torch.tensor([0.1, 0.1, 2.0, 2.0]), torch.tensor([0, 0, 1, 1])
    for _ in range(5):
        loss = dro.loss(losses, groups)
    w = dro.weights()
    assert w["hard"] > w["easy"]
    assert 1.05 < loss.item() < 2.0  # above the plain mean (1.05), leaning towards the hard group
    assert dro.q[2] < dro.q[0]  # an absent group neither counts nor grows


def test_training_with_wild_views_and_group_dro_logs_the_group_weights(small_manifests, tmp_path):
    summary = train(TrainConfig(model="mobilenet_v2", train_manifest=str(small_manifests / "train.csv"),
                                val_manifest=str(small_manifests / "val.csv"), out_dir=str(tmp_path), epochs=1,
                                batch_size=32, workers=0, limit=64, augment=0.5, wild=0.5, dro=0.01))
    weights = summary["history"][0]["dro_weights"]
    assert len(weights) >= 2 and abs(sum(weights.values()) - 1) < 0.01


def test_consistency_trains_on_two_views_of_each_face(small_manifests, tmp_path):
    """--consistency: each face comes as two independently augmented views, and the loss adds
    the symmetric KL between their answers (zero only when the answers agree)."""
    from facegender import manifest
    from facegender.preprocess import Preprocess
    from facegender.training.data import FaceDataset
    from facegender.training.train import symmetric_kl

    rows = manifest.read(small_manifests / "train.csv")[:4]
    x, label, _, _ = FaceDataset(rows, Preprocess(), augment=0.7, pairs=True)[0]
    assert x.shape == (2, 3, 96, 80) and x.dtype == torch.uint8 and not torch.equal(x[0], x[1])
    a = torch.tensor([[2.0, -1.0], [0.0, 0.5]])
    assert symmetric_kl(a, a).item() == pytest.approx(0, abs=1e-7) and symmetric_kl(a, a.flip(1)).item() > 0.1
    summary = train(TrainConfig(model="mobilenet_v2", train_manifest=str(small_manifests / "train.csv"),
                                val_manifest=str(small_manifests / "val.csv"), out_dir=str(tmp_path), epochs=1,
                                batch_size=8, limit=32, augment=0.5, consistency=1.0, workers=0))
    assert len(summary["history"]) == 1 and 0 < summary["history"][0]["train_loss"] < 5
    assert json.loads((tmp_path / "config.json").read_text())["consistency"] == 1.0
