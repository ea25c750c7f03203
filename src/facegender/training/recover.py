"""A trainable checkpoint from an exported facegender ONNX model, so that training can
start from the shipped model (`facegender train --weights model.onnx`).

Export folds each BatchNorm into the convolution before it, so the graph holds no
BatchNorm of its own. Recovery loads the folded weights into the registered architecture
and re-opens every BatchNorm with statistics measured on real training faces:

    running_mean = m, running_var = v, weight = sqrt(v + eps), bias = folded bias + m

In eval mode the network then computes exactly what the graph computes; in train mode
batch statistics normalise each layer as they did when it was trained.
"""
from __future__ import annotations

import json
import random

import numpy as np
import torch

from ..errors import ModelError
from ..preprocess import Preprocess
from . import models
from .data import FaceDataset, to_model_input


def folded_weights(graph) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """(weight, bias) of each Conv of the first pass through the net, and its Gemm's (weight,
    bias). A mirror pass reuses the same weights through Identity nodes: it is skipped.
    Weights stored as float16 (`export --half-weights`) are read through their Casts."""
    from onnx import numpy_helper

    init = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in graph.initializer}
    init.update({n.output[0]: init[n.input[0]] for n in graph.node if n.op_type == "Cast" and n.input[0] in init})
    convs, gemm = [], None
    for node in graph.node:
        if node.op_type == "Conv" and node.input[1] in init:
            convs.append((init[node.input[1]], init[node.input[2]]))
        elif node.op_type == "Gemm" and gemm is None:
            gemm = (init[node.input[1]], init[node.input[2]])
    return convs, gemm


def conv_batchnorm_pairs(net: torch.nn.Module) -> list:
    """Each BatchNorm with the convolution it follows (the one export folds it into). A
    convolution's own children (EfficientNet's padding module) may come between them."""
    pairs, last_conv = [], None
    for m in net.modules():
        if isinstance(m, torch.nn.Conv2d):
            last_conv = m
        elif isinstance(m, torch.nn.BatchNorm2d) and last_conv is not None:
            pairs.append((last_conv, m))
            last_conv = None
    return pairs


def checkpoint_from_onnx(path: str, rows, images: int = 2048, seed: int = 0) -> dict:
    """The checkpoint dict `train`/`export` read, measured on up to `images` of `rows`."""
    import onnx

    model = onnx.load(path)
    meta = json.loads({p.key: p.value for p in model.metadata_props}["facegender"])
    spec = models.get(meta["architecture"])
    net = spec.build(pretrained=False).eval()
    convs, gemm = folded_weights(model.graph)
    pairs = conv_batchnorm_pairs(net)
    if len(pairs) != len(convs) or gemm is None:
        raise ModelError(f"{path}: {len(convs)} folded convolutions, {meta['architecture']} has {len(pairs)}")
    with torch.no_grad():
        for (conv, bn), (w, b) in zip(pairs, convs):
            conv.weight.copy_(torch.from_numpy(w))
            bn.running_mean.zero_()
            bn.running_var.fill_(1 - bn.eps)  # with weight 1: an identity plus the folded bias
            bn.weight.fill_(1.0)
            bn.bias.copy_(torch.from_numpy(b))
        spec.head(net).weight.copy_(torch.from_numpy(gemm[0]))
        spec.head(net).bias.copy_(torch.from_numpy(gemm[1]))

    # each folded convolution's output statistics on unaugmented faces
    pre = Preprocess(meta["width"], meta["height"], tuple(meta["mean"]), tuple(meta["std"]))
    sample = random.Random(seed).sample(list(rows), min(images, len(rows)))
    sums = {bn: [0.0, 0.0, 0] for _, bn in pairs}

    def measure(bn, inputs, _):
        x = inputs[0].double()
        s = sums[bn]
        s[0] = s[0] + x.sum(dim=(0, 2, 3))
        s[1] = s[1] + (x * x).sum(dim=(0, 2, 3))
        s[2] += x.numel() // x.shape[1]
    hooks = [bn.register_forward_hook(measure) for _, bn in pairs]
    with torch.no_grad():
        for x, *_ in torch.utils.data.DataLoader(FaceDataset(sample, pre), batch_size=128):
            net(to_model_input(x, pre))
        for h in hooks:
            h.remove()
        for _, bn in pairs:
            total, squares, n = sums[bn]
            mean = total / n
            var = (squares / n - mean * mean).clamp_min(0)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.weight.copy_((var + bn.eps).sqrt())
            bn.bias.add_(mean.float())
    return {"model": net.state_dict(), "model_name": meta["architecture"], "width": meta["width"],
            "height": meta["height"], "mean": tuple(meta["mean"]), "std": tuple(meta["std"]),
            "epoch": meta.get("checkpoint_epoch"), "val_acc": meta.get("checkpoint_val_acc"), "recovered_from": str(path)}
