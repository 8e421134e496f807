"""Training on several processes, and feeding a training loop from tensors already on its device.

``torchrun --standalone --nproc_per_node=N script.py`` starts N copies of a script on one machine
and tells each one its place through environment variables (``RANK``, ``LOCAL_RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). ``init_distributed`` reads them, chooses the
device (one GPU per process, or the CPU) and starts the process group: NCCL between GPUs, Gloo on
CPUs. Run as a plain ``python script.py``, the same script is rank 0 of a world of 1 and starts no
process group, so one script serves both cases.

``DeviceBatches`` yields minibatches from tensors that already sit on the device, in the order of a
sampler such as ``torch.utils.data.DistributedSampler``: when a data set fits in the device's
memory, indexing it there avoids a ``DataLoader``'s per-example collation and host-to-device copies.
"""

import math
import os
from dataclasses import dataclass

__all__ = ["DistributedContext", "init_distributed", "cleanup_distributed", "DeviceBatches"]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: its rank among ``world_size`` processes, its rank on this
    machine (``local_rank``, which picks its GPU), its device and the backend of its process group
    (``None`` when it runs alone)."""

    rank: int
    local_rank: int
    world_size: int
    device: "torch.device"
    backend: str | None

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that prints, writes checkpoints and logs."""
        return self.rank == 0


def init_distributed(device_type: str | None = None) -> DistributedContext:
    """Read torchrun's environment and start the default process group when ``WORLD_SIZE > 1``.

    ``device_type``: ``"cuda"`` or ``"cpu"``; by default CUDA when there is a GPU. On CUDA each
    process takes the GPU of its local rank. The backend is ``"nccl"`` on CUDA, ``"gloo"`` on the
    CPU. Without torchrun (no ``WORLD_SIZE`` in the environment) the process is rank 0 of 1.
    """
    import torch
    import torch.distributed as dist

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type is None:
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device(device_type)
    backend = None
    if world_size > 1:
        backend = "nccl" if device.type == "cuda" else "gloo"
        if not dist.is_initialized():
            # init_method "env://": the address and port torchrun put in the environment
            dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistributedContext(rank=rank, local_rank=local_rank, world_size=world_size, device=device,
                              backend=backend)


def cleanup_distributed() -> None:
    """Leave the process group (if there is one), so that the processes end cleanly."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class DeviceBatches:
    """Minibatches ``(x[idx], y[idx])`` of tensors that are already on the device.

    The order of the examples is the sampler's (iterated anew at each pass, so a
    ``DistributedSampler`` gives a new order after each ``set_epoch``); without a sampler it is
    0, 1, ..., n - 1. With ``drop_last`` (the default) an incomplete last batch is left out: a
    batch of one example would stop batch normalization in training mode, and small last batches
    give noisy steps. ``batches.sampler`` is the sampler, as in a ``DataLoader``.
    """

    def __init__(self, x, y, batch_size: int, sampler=None, drop_last: bool = True):
        if len(x) != len(y):
            raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.x, self.y, self.batch_size = x, y, int(batch_size)
        self.sampler, self.drop_last = sampler, bool(drop_last)

    def _count(self) -> int:
        return len(self.sampler) if self.sampler is not None else len(self.x)

    def __len__(self) -> int:
        n = self._count()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self):
        import torch

        if self.sampler is None:
            order = torch.arange(len(self.x), device=self.x.device)
        else:
            order = torch.as_tensor(list(iter(self.sampler)), dtype=torch.long).to(self.x.device)
        for k in range(len(self)):
            idx = order[k * self.batch_size:(k + 1) * self.batch_size]
            yield self.x[idx], self.y[idx]
