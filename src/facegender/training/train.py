"""Train a registered architecture on manifests; read top to bottom.

Every epoch: a progress bar, one CSV log row (train/val loss and accuracy), `last.pt`
(everything needed to resume) and, when validation accuracy improves, `best.pt`.
"""
from __future__ import annotations

import csv
import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from .. import manifest
from ..errors import ConfigError
from ..looks import look
from ..preprocess import Preprocess
from . import distributed, models
from .data import FaceDataset, balance_weights, cell_of, to_model_input


@dataclass
class TrainConfig:
    model: str = "mobilenet_v2"  # a name in models.REGISTRY
    train_manifest: str = "manifests/train.csv"
    val_manifest: str = "manifests/val.csv"
    out_dir: str = "runs/default"  # checkpoints, log.csv, summary.json
    mode: str = "finetune"  # "finetune" trains everything; "feature" only the new head
    weights: str = ""  # start from this checkpoint (.pt) or exported model (.onnx) instead of ImageNet weights
    resume: bool = False  # continue from out_dir/last.pt
    # None below means "the architecture's recipe" (models.REGISTRY[model].recipe)
    epochs: int | None = None  # passes over the training manifest
    batch_size: int | None = None  # images per step
    optimizer: str | None = None  # "sgd" or "adam"/"adamw"
    lr: float | None = None  # peak learning rate
    momentum: float | None = None  # SGD momentum
    weight_decay: float | None = None  # decoupled for adamw, L2 for sgd
    schedule: str | None = None  # "constant" or "cosine" (with one warm-up epoch fraction)
    label_smoothing: float | None = None  # softens noisy labels (CelebA/UTKFace have some)
    augment: float | None = None  # augmentation strength: 0 off, 1 full (crop/scale/blur/JPEG/colour)
    # ONNX model, or CSV of path,p_female, whose P(female) for each training image is mixed into its target (distillation)
    teacher: str = ""
    teacher_weight: float = 0.5  # share of the teacher's probability in the target; the rest is the label
    balance: float = 0.0  # sampling weight 1/(cell size)**balance over family x sex x age band (0: natural mix, 1: equal cells)
    hide: float = 0.0  # share of training views with hair and background blurred or flattened (occlusion.hide_surroundings)
    occlude: float = 0.0  # share of training views with sunglasses, a cap or a mask drawn on (occlusion.occlude)
    grey: float = 0.05  # share (x augment) of training views made grey
    wild: float = 0.0  # share of training views degraded as snapshots are: shake, dark and noisy, colour cast, heavy JPEG
    dro: float = 0.0  # step size of group DRO over family x sex (0: off): the loss leans towards the group doing worst
    # weight of a symmetric KL between the answers to two augmented views of each face (0: off), so the
    # answer does not move with framing, covers or light; a step then takes 2 x batch_size views
    consistency: float = 0.0
    looks: bool = False  # balance and group DRO also over CelebA's looks (facegender.looks: make-up, hat, glasses, age)
    ema: float = 0.0  # per-step decay of an average of the weights (0: off); validation and checkpoints use the average
    width: int | None = None  # input width, pixels (None: the architecture's)
    height: int | None = None  # input height, pixels
    patience: int = 3  # stop after this many epochs without a better val accuracy
    limit: int = 0  # use at most this many train images (and limit//4 val); 0 = all
    seed: int = 0  # python, numpy, torch and the data order
    workers: int = 1  # DataLoader processes (this machine has 2 cores)
    device: str = "auto"  # "auto" (CUDA when present), "cpu" or "cuda" (bf16 autocast); torchrun: a process per device

    def resolved(self) -> "TrainConfig":
        spec = models.get(self.model)
        recipe = {"momentum": 0.9, "width": spec.width, "height": spec.height, **spec.recipe}
        return TrainConfig(**{f.name: recipe.get(f.name) if getattr(self, f.name) is None else getattr(self, f.name)
                              for f in fields(self)})


def make_optimizer(cfg: TrainConfig, params):
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer in ("adam", "adamw"):
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay if cfg.optimizer == "adamw" else 0.0)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}; choose sgd, adam or adamw")


def lr_factor(cfg: TrainConfig, step: int, total: int) -> float:
    if cfg.schedule == "constant":
        return 1.0
    warm = max(1, total // (cfg.epochs * 5))  # a fifth of the first epoch
    if step < warm:
        return (step + 1) / warm
    return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def teacher_targets(cfg: TrainConfig, rows) -> np.ndarray:
    """Each training image's target P(female): the label mixed with the teacher's answer on
    its full frame. Soft targets pass on what the teacher learnt and temper label noise."""
    from ..classifier import Classifier
    from ..evaluate import predict_rows

    if cfg.teacher.endswith(".csv"):  # answers computed elsewhere (experiments/*_teacher.py)
        p = np.array(manifest.read_answers(cfg.teacher, rows))
    else:
        p, _ = predict_rows(rows, Classifier(cfg.teacher), crop=1.0)
    labels = np.array([r.label for r in rows], np.float64)
    p = np.where(np.isnan(p), labels, p)
    agree = ((p > 0.5) == (labels > 0.5)).mean()
    print(f"teacher {cfg.teacher}: agrees with {agree:.4f} of the training labels; weight {cfg.teacher_weight}")
    return ((1 - cfg.teacher_weight) * labels + cfg.teacher_weight * p).astype(np.float32)


def soft_cross_entropy(logits: torch.Tensor, p_female: torch.Tensor, smoothing: float, reduce: bool = True) -> torch.Tensor:
    """Cross-entropy against target probabilities (male, female); with hard 0/1 targets this
    is torch's cross_entropy with label smoothing. `reduce=False`: one loss per image."""
    p = p_female.float() * (1 - smoothing) + smoothing / 2
    target = torch.stack([1 - p, p], dim=1)
    losses = -(target * torch.log_softmax(logits, dim=1)).sum(1)
    return losses.mean() if reduce else losses


def symmetric_kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean of KL(p_a || p_b) and KL(p_b || p_a) over the batch: 0 when two views get one answer."""
    la, lb = torch.log_softmax(a, dim=1), torch.log_softmax(b, dim=1)
    return ((la.exp() - lb.exp()) * (la - lb)).sum(1).mean() / 2


class GroupDRO:
    """Online group DRO (Sagawa et al. 2020): a weight per group, raised exponentially by the
    group's loss at each step, so training minimises the worst group's loss rather than the
    mean, and the decision point cannot drift towards the majority's. Groups absent from a
    batch neither count nor move."""

    def __init__(self, names: list[str], step: float):
        self.names, self.step = names, step
        self.q = torch.full((len(names),), 1.0 / len(names))

    def loss(self, losses: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        n = len(self.names)
        count = torch.bincount(groups, minlength=n).float()
        mean = torch.zeros(n, device=losses.device).index_add_(0, groups, losses) / count.clamp(min=1).to(losses.device)
        present = count > 0
        self.q[present] *= torch.exp(self.step * mean.detach().cpu()[present])
        self.q /= self.q.sum()
        q = self.q.to(losses.device) * present.to(losses.device)
        return (q * mean).sum() / q.sum()

    def weights(self) -> dict[str, float]:
        return {name: round(float(w), 4) for name, w in zip(self.names, self.q)}


@torch.no_grad()
def evaluate(model, loader, pre: Preprocess, desc: str = "val", device="cpu") -> tuple[float, float]:
    """Mean cross-entropy and accuracy over a loader."""
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for x, y, *_ in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True):
        y = y.to(device)
        logits = model(to_model_input(x, pre).to(device))
        loss_sum += torch.nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    return loss_sum / max(n, 1), correct / max(n, 1)


def plot_curves(history: list[dict], path: Path, title: str = "") -> None:
    """Train and validation loss and accuracy per epoch (skipped without matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    epochs = [r["epoch"] for r in history]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, metric in zip(axes, ("loss", "acc")):
        ax.plot(epochs, [r[f"train_{metric}"] for r in history], "o-", label="train")
        ax.plot(epochs, [r[f"val_{metric}"] for r in history], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(f"{title} {'accuracy' if metric == 'acc' else 'loss'}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(cfg: TrainConfig) -> dict:
    cfg = cfg.resolved()
    place = distributed.setup(cfg.device)
    device = place.device
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    spec = models.get(cfg.model)
    pre = Preprocess(cfg.width, cfg.height)

    # data
    train_rows, val_rows = manifest.read(cfg.train_manifest), manifest.read(cfg.val_manifest)
    if cfg.limit:
        train_rows = random.Random(cfg.seed).sample(train_rows, min(cfg.limit, len(train_rows)))
        val_rows = random.Random(cfg.seed).sample(val_rows, min(max(cfg.limit // 4, 1), len(val_rows)))
    targets = None  # P(female) each training image should get; None: its label
    if cfg.teacher:
        targets = teacher_targets(cfg, train_rows)
    loader_args = dict(batch_size=cfg.batch_size, num_workers=cfg.workers, persistent_workers=cfg.workers > 0,
                       pin_memory=device.type == "cuda")
    dro, groups = None, None
    if cfg.dro:
        looks = [cfg.looks and look(r.path) for r in train_rows]  # CelebA: also its cue (hat, glasses, make-up, bare)
        cells = [f"{cell_of(r)[0]}-{manifest.CLASSES[r.label]}" + (f"-{lk.split(',')[0]}" if lk else "")
                 for r, lk in zip(train_rows, looks)]
        names = sorted(set(cells))
        dro, groups = GroupDRO(names, cfg.dro), np.array([names.index(c) for c in cells])
    train_set = FaceDataset(train_rows, pre, augment=float(cfg.augment), targets=targets, hide=cfg.hide,
                            occlude=cfg.occlude, wild=cfg.wild, groups=groups, pairs=cfg.consistency > 0)
    order = dict(shuffle=True)
    if place.world > 1:  # each process its own share of every epoch
        if cfg.balance:
            raise ConfigError("--balance is not supported with several processes (torchrun)")
        order = dict(sampler=DistributedSampler(train_set, shuffle=True, seed=cfg.seed,
                                                drop_last=len(train_rows) > cfg.batch_size))
    elif cfg.balance:  # as many draws per epoch as images, weighted towards the rarer kinds of face
        weights = torch.as_tensor(balance_weights(train_rows, cfg.balance, cfg.looks), dtype=torch.double)
        order = dict(sampler=torch.utils.data.WeightedRandomSampler(weights, len(train_rows), replacement=True,
                                                                    generator=torch.Generator().manual_seed(cfg.seed)))
    train_loader = DataLoader(train_set, drop_last=len(train_rows) > cfg.batch_size,
                              generator=torch.Generator().manual_seed(cfg.seed), **order, **loader_args)
    val_loader = DataLoader(FaceDataset(val_rows, pre), **{**loader_args, "batch_size": 128})

    # model and optimiser
    model = spec.build(pretrained=not cfg.weights)
    if cfg.weights.endswith(".onnx"):  # e.g. the shipped model: its BatchNorms re-opened on training faces
        from .recover import checkpoint_from_onnx
        recovered = checkpoint_from_onnx(cfg.weights, train_rows)
        if recovered["model_name"] != cfg.model:
            raise ConfigError(f"{cfg.weights} is a {recovered['model_name']}, not a {cfg.model} "
                              f"(pass --model {recovered['model_name']})")
        model.load_state_dict(recovered["model"])
    elif cfg.weights:
        state = torch.load(cfg.weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("model", state))
    if cfg.mode == "feature":
        for p in model.parameters():
            p.requires_grad = False
        for p in spec.head(model).parameters():
            p.requires_grad = True
    elif cfg.mode != "finetune":
        raise ConfigError(f"unknown mode {cfg.mode!r}; choose finetune or feature")
    net = model.to(device, memory_format=torch.channels_last)  # the unwrapped module: what checkpoints hold
    if place.world > 1:
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(cfg, [p for p in net.parameters() if p.requires_grad])
    total_steps = cfg.epochs * len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(cfg, s, total_steps))
    # an exponential moving average of the weights generalises better than the last step's
    averaged = None
    if cfg.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        averaged = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    start_epoch, best_acc, best_epoch, history = 1, -1.0, 0, []
    if cfg.resume and (out / "last.pt").exists():
        ckpt = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
        net.load_state_dict(ckpt["model"])
        if averaged is not None:
            averaged.load_state_dict(ckpt["averaged"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["torch_rng"])
        start_epoch, best_acc, best_epoch, history = ckpt["epoch"] + 1, ckpt["best_acc"], ckpt["best_epoch"], ckpt["history"]
        if dro is not None and "dro_q" in ckpt:
            dro.q = ckpt["dro_q"]
        if place.main:
            print(f"resuming after epoch {ckpt['epoch']} (best val acc {best_acc:.4f})")
    if place.main:
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    jitter = torch.Generator().manual_seed(cfg.seed + 1)

    for epoch in range(start_epoch, cfg.epochs + 1):
        if epoch - best_epoch > cfg.patience and best_epoch:
            print(f"early stop: no val accuracy gain for {cfg.patience} epochs")
            break
        t0 = time.time()
        model.train()
        if cfg.mode == "feature":
            model.eval()  # frozen backbone: keep its BatchNorm statistics
        if isinstance(train_loader.sampler, DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        loss_sum, correct, n = 0.0, 0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch}/{cfg.epochs}", dynamic_ncols=True, disable=not place.main)
        for x, y, target, group in bar:
            if cfg.consistency:  # pairs of views: one batch of 2 x B, each face's two views side by side
                x, y, target, group = x.flatten(0, 1), *(v.repeat_interleave(2) for v in (y, target, group))
            x = to_model_input(x, pre, jitter if cfg.augment else None, float(cfg.augment),
                               cfg.grey).to(device, non_blocking=True)
            y, target = y.to(device, non_blocking=True), target.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=place.amp):
                logits = model(x)
            if dro is None:
                loss = soft_cross_entropy(logits.float(), target, cfg.label_smoothing)
            else:
                loss = dro.loss(soft_cross_entropy(logits.float(), target, cfg.label_smoothing, reduce=False), group.to(device))
            if cfg.consistency:
                loss = loss + cfg.consistency * symmetric_kl(logits.float()[0::2], logits.float()[1::2])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if averaged is not None:
                averaged.update_parameters(net)
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            n += len(y)
            bar.set_postfix(loss=f"{loss_sum / n:.4f}", acc=f"{correct / n:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        loss_sum, correct, n = distributed.total(place, loss_sum, correct, n)  # the whole epoch, all processes
        if not place.main:  # rank 0 alone validates, logs and writes; the others wait for its verdict
            best_epoch = distributed.share(place, best_epoch)
            continue
        kept = net if averaged is None else averaged.module  # what validation judges and best.pt holds
        val_loss, val_acc = evaluate(kept, val_loader, pre, device=device)
        row = dict(epoch=epoch, train_loss=round(loss_sum / max(n, 1), 5), train_acc=round(correct / max(n, 1), 5),
                   val_loss=round(val_loss, 5), val_acc=round(val_acc, 5), lr=scheduler.get_last_lr()[0],
                   seconds=round(time.time() - t0, 1), **({"dro_weights": dro.weights()} if dro else {}))
        history.append(row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        with open(out / "log.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            w.writeheader()
            w.writerows(history)
        plot_curves(history, out / "curves.png", title=f"{cfg.model} {pre.width}x{pre.height}")
        meta = dict(model_name=cfg.model, width=pre.width, height=pre.height, mean=pre.mean, std=pre.std)
        # every epoch's judged weights too: `evaluate` picks by source and sex, not by the mean alone
        torch.save({"model": kept.state_dict(), **meta, "epoch": epoch, "val_acc": val_acc}, out / f"epoch{epoch}.pt.tmp")
        os.replace(out / f"epoch{epoch}.pt.tmp", out / f"epoch{epoch}.pt")
        if val_acc > best_acc:
            best_acc, best_epoch = val_acc, epoch
            torch.save({"model": kept.state_dict(), **meta, "epoch": epoch, "val_acc": val_acc, "val_loss": val_loss},
                       out / "best.pt.tmp")
            os.replace(out / "best.pt.tmp", out / "best.pt")
        torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(), "epoch": epoch, "best_acc": best_acc, "best_epoch": best_epoch,
                    "history": history, **meta,
                    **({"averaged": averaged.state_dict()} if averaged is not None else {}),
                    **({"dro_q": dro.q} if dro is not None else {})}, out / "last.pt.tmp")
        os.replace(out / "last.pt.tmp", out / "last.pt")
        best_epoch = distributed.share(place, best_epoch)

    best_acc = distributed.share(place, best_acc)
    distributed.teardown(place)
    summary = dict(config=asdict(cfg), best_epoch=best_epoch, best_val_acc=best_acc, history=history,
                   train_images=len(train_rows), val_images=len(val_rows))
    if place.main:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
