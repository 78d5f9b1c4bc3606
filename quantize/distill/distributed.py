"""Running one distillation across processes: torchrun's environment → a process group.

Under `torchrun --nproc_per_node N` every process runs the same command; each draws its own
noise and condition batches, DistributedDataParallel averages the gradients, and only rank 0
writes. Without torchrun (no WORLD_SIZE, or 1) everything is a single process and no process
group is created. gloo on CPU, nccl on CUDA.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from edge.errors import EdgeError


@dataclass(frozen=True)
class World:
    """This process's place in the run."""

    rank: int
    size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def join(device: str | None = None) -> World:
    """Join torchrun's process group if there is one (idempotent), and pick this rank's device:
    `device` if given, else its own CUDA device under nccl, else CUDA if present, else CPU."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and dist.is_initialized():
        size = dist.get_world_size()
    elif size > 1:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    if size <= 1:
        return World(0, 1, torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu")))
    rank = dist.get_rank()
    if device is None:
        if dist.get_backend() == "nccl":
            local = int(os.environ.get("LOCAL_RANK", rank % max(torch.cuda.device_count(), 1)))
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
        else:
            device = "cpu"
    return World(rank, size, torch.device(device))


def fingerprint(tensor: torch.Tensor) -> str:
    """sha256 of a tensor's shape, dtype and bytes (as float32 on the CPU)."""
    t = tensor.detach().to("cpu", torch.float32).contiguous()
    h = hashlib.sha256(f"{tuple(t.shape)}".encode())
    h.update(t.numpy().tobytes())
    return h.hexdigest()


def require_same(world: World, what: str, digest: str) -> None:
    """Refuse to train when ranks hold different `what` (compared by digest via all_gather)."""
    if not world.distributed:
        return
    mine = torch.tensor([int(digest[i : i + 15], 16) for i in range(0, 60, 15)], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        mine = mine.to(world.device)
    gathered = [torch.zeros_like(mine) for _ in range(world.size)]
    dist.all_gather(gathered, mine)
    differing = [r for r, g in enumerate(gathered) if not torch.equal(g, gathered[0])]
    if differing:
        raise EdgeError(
            f"ranks disagree on the {what}: rank(s) {differing} differ from rank 0; "
            "give every rank the same calibration data and settings"
        )


def broadcast_object(world: World, obj):
    """Rank 0's `obj` on every rank (used for results only rank 0 computes)."""
    if not world.distributed:
        return obj
    box = [obj if world.is_main else None]
    dist.broadcast_object_list(box, src=0, device=world.device if dist.get_backend() == "nccl" else None)
    return box[0]


def barrier(world: World) -> None:
    """Wait for every rank (e.g. until rank 0 has written the output)."""
    if world.distributed:
        dist.barrier()


def leave(world: World) -> None:
    """Destroy the process group `join` created (at the end of a command)."""
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
