"""Where training runs: one process or many (torchrun), on the CPU or a GPU.

`torchrun --nproc_per_node N -m facegender.cli train ...` sets RANK / WORLD_SIZE /
LOCAL_RANK; each process then trains on its share of every epoch (DistributedSampler) and
DistributedDataParallel averages the gradients (gloo on the CPU, nccl on CUDA). Rank 0 alone
logs, validates and writes checkpoints, so a run's files look the same however many
processes made them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import ConfigError


@dataclass
class Place:
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def amp(self) -> bool:  # mixed precision: bf16 autocast on CUDA (no GradScaler needed), fp32 on the CPU
        return self.device.type == "cuda"


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible (torch.cuda.is_available() is False)")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return name


def setup(device: str) -> Place:
    """This process's place; joins the process group when started by torchrun."""
    kind = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Place(torch.device(kind))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if kind == "cuda":
        torch.cuda.set_device(local)
    torch.distributed.init_process_group("nccl" if kind == "cuda" else "gloo")
    return Place(torch.device(kind, local) if kind == "cuda" else torch.device("cpu"), torch.distributed.get_rank(), world)


def teardown(place: Place) -> None:
    """Leave the process group together: a rank that destroyed its group while the other was
    still finishing aborted ("terminate called without an active exception", gloo) once in a
    CI run; a barrier first makes every rank reach the end before any tears down."""
    if place.world > 1 and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


def share(place: Place, value):
    """Rank 0's value on every rank (e.g. its early-stopping decision)."""
    if place.world == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def total(place: Place, *numbers: float) -> list[float]:
    """Sums over all ranks (each rank's share of an epoch's loss and counts)."""
    if place.world == 1:
        return list(numbers)
    t = torch.tensor(numbers, dtype=torch.float64, device=place.device)  # nccl reduces CUDA tensors only
    torch.distributed.all_reduce(t)
    return t.tolist()
