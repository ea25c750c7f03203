"""Training data: a manifest-backed PyTorch Dataset with face-framing augmentation.

Augmentation varies what the evaluation varies: crop tightness and position, scale
(low resolution), blur, JPEG quality, small rotations and colour, so the model holds up on
tight crops and loose frames alike. Colour is done on the batch in `color_jitter`.
"""
from __future__ import annotations

import io
import random

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch.utils.data import Dataset

from .. import occlusion
from ..looks import look
from ..manifest import Row, load_frame
from ..preprocess import Preprocess

MAX_ZOOM_OUT = 1.15  # loosest view: the frame plus 7.5% of its size on each side


def extend(img: Image.Image, factor: float) -> Image.Image:
    """The image grown `factor` times about its centre, new pixels repeating its border:
    a looser framing of the same face."""
    a = np.asarray(img)
    dy, dx = (round(n * (factor - 1) / 2) for n in a.shape[:2])
    return Image.fromarray(np.pad(a, ((dy, dy), (dx, dx), (0, 0)), mode="edge"))


def wild_photo(out: Image.Image, rng: random.Random) -> Image.Image:
    """One or two of the ways an ordinary snapshot differs from a celebrity portrait: camera
    shake, a dark noisy exposure, a colour cast, heavy JPEG. MTFL's and the hidden Flickr
    set's faces look like this; CelebA's almost never do."""
    a = np.asarray(out, dtype=np.float32)
    for kind in rng.sample(("shake", "dark", "cast", "jpeg"), rng.choice((1, 1, 2))):
        if kind == "shake":  # motion blur: the mean of copies shifted along one direction
            k, angle = rng.randint(3, 7), rng.uniform(0, np.pi)
            steps = np.linspace(-(k - 1) / 2, (k - 1) / 2, k)
            a = np.mean([np.roll(a, (round(t * np.sin(angle)), round(t * np.cos(angle))), (0, 1)) for t in steps], axis=0)
        elif kind == "dark":  # under-exposed: gamma down, then sensor noise that the darkness makes visible
            a = 255 * (a / 255) ** rng.uniform(1.4, 2.6) * rng.uniform(0.5, 0.9)
            a = a + np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(3, 12), a.shape)
        elif kind == "cast":  # tungsten, shade or screen light: a gain per channel
            a = a * np.array([rng.uniform(0.75, 1.25) for _ in range(3)], np.float32)
        else:
            a = np.asarray(_jpeg(Image.fromarray(a.clip(0, 255).astype(np.uint8)), rng.randint(6, 25)), np.float32)
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(buf).convert("RGB")


def augment(img: Image.Image, row: Row, pre: Preprocess, strength: float = 1.0, hide: float = 0.0,
            occlude: float = 0.0, wild: float = 0.0) -> np.ndarray:
    """A random view of the face, in the model's input geometry (uint8 HxWx3).

    `strength` scales how often the degradations happen; crop tightness always varies.
    `hide` is the share of views whose hair and background are hidden, `occlude` the share
    with sunglasses, a cap or a mask drawn on (`occlusion`), `wild` the share degraded as
    snapshots are (`wild_photo`).
    """
    if random.random() < hide:
        img = occlusion.hide_surroundings(img, row)
    if random.random() < occlude:
        img = occlusion.occlude(img, row)
    if random.random() < 0.3 * strength:
        img = img.rotate(random.uniform(-12, 12), resample=Image.BILINEAR)
    # tightness from the row's tightest crop to looser than the whole frame, so that the
    # whole frame is inside the range trained on, not at its rarely-drawn edge
    fraction = random.uniform(row.min_crop, MAX_ZOOM_OUT)
    if fraction > 1.0:
        img, fraction = extend(img, fraction), 1.0
    shift = (random.uniform(-0.06, 0.06), random.uniform(-0.06, 0.06))
    out = Image.fromarray(pre.fit(img, fraction, shift, row.x_stretch))
    if random.random() < 0.25 * strength:  # low-resolution source: down to 35-80%, back up
        s = random.uniform(0.35, 0.8)
        out = out.resize((max(8, int(pre.width * s)), max(8, int(pre.height * s))), Image.BILINEAR)
        out = out.resize((pre.width, pre.height), Image.BILINEAR)
    if random.random() < 0.1 * strength:
        out = out.filter(ImageFilter.GaussianBlur(random.uniform(0.3, 1.2)))
    if random.random() < 0.25 * strength:
        out = _jpeg(out, random.randint(25, 90))
    if random.random() < wild:
        out = wild_photo(out, random)
    if random.random() < 0.5:
        out = out.transpose(Image.FLIP_LEFT_RIGHT)
    return np.asarray(out, dtype=np.uint8)


class FaceDataset(Dataset):
    """Items are (uint8 3xHxW tensor, label, target P(female), group): augmented views when
    `augment` > 0 (its strength), else the centre crop of fraction `crop`. The target is
    the label unless `targets` (e.g. a teacher's soft answers) are given; the group is the
    row's index in `groups` (train's worst-group objective), 0 without them. `pairs`: two
    views of the face, independently augmented, as one 2x3xHxW tensor (train's consistency)."""

    def __init__(self, rows: list[Row], pre: Preprocess, augment: float = 0.0, crop: float = 1.0, targets=None,
                 hide: float = 0.0, occlude: float = 0.0, wild: float = 0.0, groups=None, pairs: bool = False):
        self.rows, self.pre, self.augment, self.crop, self.targets = rows, pre, augment, crop, targets
        self.hide, self.occlude, self.wild, self.groups, self.pairs = hide, occlude, wild, groups, pairs

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        row = self.rows[i]
        img = load_frame(row)
        views = [self._view(img, row) for _ in range(2 if self.pairs else 1)]
        x = torch.from_numpy(np.stack(views)).permute(0, 3, 1, 2)
        target = float(row.label if self.targets is None else self.targets[i])
        group = 0 if self.groups is None else int(self.groups[i])
        return (x if self.pairs else x[0]), row.label, target, group

    def _view(self, img, row: Row) -> np.ndarray:
        if self.augment:
            return augment(img, row, self.pre, self.augment, self.hide, self.occlude, self.wild)
        return self.pre.fit(img, self.crop, x_stretch=row.x_stretch)


def _band(age: str) -> str:  # coarser than evaluate's bands: fewer, larger cells (as stage 4b ran)
    a = int(age) if age else None
    return "?" if a is None else "child" if a < 13 else "teen" if a < 18 else "adult" if a < 60 else "60+"


def cell_of(row: Row) -> tuple[str, int, str]:
    """The kind of face a row is, for balancing: data-set family x sex x age band."""
    from .prepare import family

    return family(row.group), row.label, _band(row.age)


LOOK_FLOOR = 300  # looks rarer than this (men with make-up: 129) weigh as if this common


def balance_weights(rows: list[Row], power: float, looks: bool = False) -> np.ndarray:
    """Sampling weight per row: 1 / (size of its cell) ** power, cells as in `cell_of`.
    0 keeps the data's natural mix; 1 draws every cell equally often. CelebA
    (adult celebrities, 58% women) would otherwise outvote the everyday and older faces.
    `looks`: within each cell, the same again over CelebA's looks (facegender.looks: hat,
    glasses, make-up or bare, young or older), the cell's total kept: bare-faced and older
    women are drawn more often without CelebA as a whole gaining weight."""
    from collections import Counter

    cells = [cell_of(r) for r in rows]
    sizes = Counter(cells)
    w = np.array([sizes[c] ** -power for c in cells])
    if looks:
        kinds = [look(r.path) for r in rows]
        sub = Counter(zip(cells, kinds))
        inner = np.array([max(sub[(c, k)], LOOK_FLOOR) ** -power if k else 1.0 for c, k in zip(cells, kinds)])
        for c in sizes:  # rescale each cell's inner weights to sum to its size: its share is kept
            idx = np.array([i for i, x in enumerate(cells) if x == c])
            inner[idx] *= len(idx) / inner[idx].sum()
        w = w * inner
    return w / w.mean()


def color_jitter(x: torch.Tensor, generator: torch.Generator, strength: float = 1.0, grey: float = 0.05) -> torch.Tensor:
    """Per-image brightness, contrast, saturation (a share `grey` x strength made grey) on a float [0,1] batch."""
    n = x.shape[0]
    u = lambda spread: 1 + torch.empty(n, 1, 1, 1).uniform_(-spread * strength, spread * strength, generator=generator)
    gray = (0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    sat = u(0.4) * (torch.rand(n, 1, 1, 1, generator=generator) > grey * strength)
    x = gray + (x - gray) * sat
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * u(0.3) + mean
    return (x * u(0.3)).clamp_(0, 1)


def to_model_input(batch: torch.Tensor, pre: Preprocess, generator: torch.Generator | None = None,
                   strength: float = 1.0, grey: float = 0.05) -> torch.Tensor:
    """uint8 NCHW -> normalised float NCHW (channels_last), colour-jittered when a generator is given."""
    x = batch.float().div_(255)
    if generator is not None:
        x = color_jitter(x, generator, strength, grey)
    mean = torch.tensor(pre.mean).view(1, 3, 1, 1)
    std = torch.tensor(pre.std).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)
