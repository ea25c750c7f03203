"""Average the weights of several fine-tunes of one starting point (a "model soup").

Fine-tunes that start from the same weights stay in one basin of the loss, so their average
is a model in its own right, often more robust than either (Wortsman et al., 2022) and no
slower: one network, not an ensemble. The shipped model is the soup of a fine-tune on the
data alone and one with the anti-shortcut levers (MODEL_CARD.md).
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError


def average(checkpoints: list[str], out: str) -> dict:
    """Write the uniform average of `checkpoints` (train's best.pt files) to `out`."""
    import torch

    states = [torch.load(p, map_location="cpu", weights_only=False) for p in checkpoints]
    names = {s["model_name"] for s in states}
    if len(names) > 1 or len({(s["width"], s["height"]) for s in states}) > 1:
        raise InputError(f"cannot average different architectures or input sizes: {sorted(names)}")
    first = states[0]["model"]
    averaged = {k: sum(s["model"][k] for s in states) / len(states) if v.is_floating_point() else v
                for k, v in first.items()}
    soup = {**{k: v for k, v in states[0].items() if k not in ("model", "epoch", "val_acc", "val_loss")},
            "model": averaged, "averaged_from": [str(p) for p in checkpoints]}
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(soup, path.with_name(path.name + ".tmp"))
    os.replace(path.with_name(path.name + ".tmp"), path)
    return {"out": str(path), "averaged_from": soup["averaged_from"], "model_name": soup["model_name"]}
