"""Training in many processes (torchrun, DistributedDataParallel on the CPU with gloo) and the
one-command GPU script, rehearsed on the CPU on a tiny set."""
import csv
import os
import socket
import subprocess
import sys

import numpy as np
import torch

from facegender.classifier import Classifier
from facegender.training.export import export

from .conftest import ROOT, real_images

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_train(manifests, out, epochs: int, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(free_port()),
           "-m", "facegender.cli", "train", "--train", str(manifests / "train.csv"), "--val", str(manifests / "val.csv"),
           "--out", str(out), "--epochs", str(epochs), "--limit", "64", "--batch-size", "16", "--workers", "0",
           "--device", "cpu", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=ENV, cwd=ROOT)


def log_rows(out) -> list[dict]:
    with open(out / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_two_processes_train_resume_and_export(small_manifests, tmp_path):
    out = tmp_path / "run"
    r = torchrun_train(small_manifests, out, 2)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = log_rows(out)
    assert [int(row["epoch"]) for row in rows] == [1, 2]
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    assert r.stdout.count("epoch=1 ") == 1  # rank 0 alone logs

    r = torchrun_train(small_manifests, out, 3, "--resume")
    assert r.returncode == 0, r.stderr[-3000:]
    assert [row["train_loss"] for row in log_rows(out)][:2] == [row["train_loss"] for row in rows]  # history kept
    assert len(log_rows(out)) == 3

    state = torch.load(out / "best.pt", map_location="cpu", weights_only=True)["model"]
    assert not any(k.startswith("module.") for k in state)  # the unwrapped module, as a single process saves it
    export(str(out / "best.pt"), str(tmp_path / "m.onnx"))
    clf = Classifier(tmp_path / "m.onnx")
    from PIL import Image
    faces = np.stack([clf.pre.fit(Image.open(p).convert("RGB")) for p in real_images("utkface", "female", 4)])
    probs = clf.predict(faces)
    assert probs.shape == (4, 2) and np.allclose(probs.sum(1), 1, atol=1e-4)


def test_gpu_script_rehearses_on_the_cpu(small_manifests, tmp_path):
    env = {**ENV, "FG_PYTHON": sys.executable, "FG_DEVICE": "cpu", "FG_EPOCHS": "1", "FG_LIMIT": "32", "FG_WORKERS": "0",
           "FG_MANIFESTS": str(small_manifests), "FG_OUT": str(tmp_path / "gpu")}
    r = subprocess.run(["bash", str(ROOT / "tools" / "gpu_train.sh")], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert Classifier(tmp_path / "gpu" / "model.onnx").meta["mirror_margin"] == 0.25
    assert len(log_rows(tmp_path / "gpu")) == 1
