"""Data-parallel training of a small CNN on MNIST-1D, on one process or on several with torchrun.

    python -m nnkit.ddp_example --epochs 2                                          # one process
    torchrun --standalone --nproc_per_node=2 -m nnkit.ddp_example --epochs 2        # two processes

Each process (rank) holds a full copy of the model, wrapped in ``DistributedDataParallel``, and
trains on its own share of every epoch's shuffled examples (``DistributedSampler``, with
``set_epoch`` so that the order changes from epoch to epoch). During ``backward`` DDP averages the
gradients over the ranks, so every rank takes the same optimizer step: the copies stay identical,
and with ``--norm group --dropout 0`` (no statistics over the batch, no random masks) the run
takes the steps of one process trained on the ranks' batches put together. Metrics are summed
over the ranks with ``all_reduce``; only rank 0 prints and writes the checkpoint. On the CPU the
processes talk through Gloo; on GPUs (one per process) through NCCL, with mixed precision if
``--amp`` is given.

With ``--out DIR``, rank 0 writes ``DIR/checkpoint.pt`` (the model's ``state_dict`` taken from the
wrapped module, so without DDP's ``module.`` prefix; the optimizer; the epoch) and
``DIR/metrics.json``; with ``--save-params`` every rank also writes ``DIR/params_rank<r>.pt``.
"""

import argparse
import json
import os
import time

__all__ = ["make_cnn", "main"]


def make_cnn(seed: int = 0, channels=(16, 32), dropout: float = 0.1, norm: str = "batch"):
    """A small 1-D CNN for MNIST-1D (inputs of shape (N, 40), 10 classes), drawn after
    ``torch.manual_seed(seed)``: three convolutions (5, 3 and 3 taps) with normalization and ReLU,
    two max-pools, dropout and a linear classifier. He initialization (fan-in = input channels x
    kernel size) for the convolutions; ``norm`` is ``"batch"`` (BatchNorm1d), ``"group"``
    (GroupNorm with 4 groups: no statistics across examples) or ``"none"``."""
    import torch
    import torch.nn as nn

    def normalization(c):
        return {"batch": lambda: nn.BatchNorm1d(c), "group": lambda: nn.GroupNorm(4, c),
                "none": lambda: nn.Identity()}[norm]()

    torch.manual_seed(seed)
    c1, c2 = channels
    net = nn.Sequential(
        nn.Unflatten(1, (1, 40)),
        nn.Conv1d(1, c1, 5, padding=2, bias=norm == "none"), normalization(c1), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(c1, c2, 3, padding=1, bias=norm == "none"), normalization(c2), nn.ReLU(), nn.MaxPool1d(2),
        nn.Conv1d(c2, c2, 3, padding=1, bias=norm == "none"), normalization(c2), nn.ReLU(),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(c2 * 10, 10))
    for m in net.modules():
        if isinstance(m, nn.Conv1d):  # He: std sqrt(2 / fan_in), fan_in = in_channels * kernel_size
            nn.init.normal_(m.weight, std=(2.0 / (m.in_channels * m.kernel_size[0])) ** 0.5)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0.0)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=m.in_features ** -0.5)
            nn.init.constant_(m.bias, 0.0)
    return net


def _arguments(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64, help="examples per rank and step")
    parser.add_argument("--n-train", type=int, default=20_000)
    parser.add_argument("--n-val", type=int, default=2_000)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0, help="initialization and shuffling")
    parser.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0)
    parser.add_argument("--max-norm", type=float, default=1.0, help="gradient clipping; 0 turns it off")
    parser.add_argument("--norm", choices=["batch", "group", "none"], default="batch")
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--amp", action="store_true", help="float16 autocast and a GradScaler (CUDA only)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None)
    parser.add_argument("--out", default=None, help="folder for the checkpoint and metrics (rank 0)")
    parser.add_argument("--save-params", action="store_true", help="every rank writes its parameters")
    return parser.parse_args(argv)


def main(argv=None):
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data import DistributedSampler

    from .data import load_mnist1d_large
    from .distributed import DeviceBatches, cleanup_distributed, init_distributed

    args = _arguments(argv)
    torch.set_num_threads(1)
    ctx = init_distributed(args.device)
    distributed = ctx.world_size > 1
    # Rank 0 generates and caches the data first; the others then read the cached file.
    if ctx.is_main:
        data = load_mnist1d_large(args.n_train, args.n_val, seed=args.data_seed)
    if distributed:
        dist.barrier()
    if not ctx.is_main:
        data = load_mnist1d_large(args.n_train, args.n_val, seed=args.data_seed)
    x, y, x_val, y_val = (torch.from_numpy(a).to(ctx.device) for a in data)

    model = make_cnn(args.seed, dropout=args.dropout, norm=args.norm).to(ctx.device)
    # DDP copies rank 0's parameters to every rank, then averages gradients during backward.
    net = DistributedDataParallel(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None) \
        if distributed else model
    sampler = DistributedSampler(range(len(x)), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=args.seed, drop_last=True)
    batches = DeviceBatches(x, y, args.batch_size, sampler, drop_last=True)
    if args.optimizer == "sgd":
        optimizer = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    else:
        optimizer = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    use_amp = args.amp and ctx.device.type == "cuda"
    scaler = torch.amp.GradScaler(ctx.device.type, enabled=use_amp)
    # The validation examples are split without padding (rank r takes r, r + W, r + 2W, ...), so
    # that the summed counts are exactly the validation set.
    val_rows = torch.arange(ctx.rank, len(x_val), ctx.world_size, device=ctx.device)

    history = []
    for epoch in range(args.epochs):
        started = time.perf_counter()
        sampler.set_epoch(epoch)  # without it every epoch would visit the examples in the same order
        net.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=ctx.device)
        for xb, yb in batches:
            optimizer.zero_grad()
            with torch.autocast(ctx.device.type, dtype=torch.float16, enabled=use_amp):
                batch_loss = F.cross_entropy(net(xb), yb)
            scaler.scale(batch_loss).backward()  # DDP's all-reduce of the gradients runs in here
            if args.max_norm > 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(net.parameters(), args.max_norm)
            scaler.step(optimizer)
            scaler.update()
            loss_sum += batch_loss.detach().double() * len(yb)
        net.eval()
        with torch.inference_mode():
            logits = net(x_val[val_rows])
            sums = torch.stack([loss_sum, torch.tensor(float(len(batches) * args.batch_size), device=ctx.device,
                                                       dtype=torch.float64),
                                F.cross_entropy(logits.float(), y_val[val_rows], reduction="sum").double(),
                                (logits.argmax(1) == y_val[val_rows]).sum().double(),
                                torch.tensor(float(len(val_rows)), device=ctx.device, dtype=torch.float64)])
        if distributed:
            dist.all_reduce(sums)  # sums over the ranks, then the means: weighted by each rank's count
        sums = sums.tolist()
        record = {"epoch": epoch + 1, "train_loss": sums[0] / sums[1], "val_loss": sums[2] / sums[4],
                  "val_accuracy": sums[3] / sums[4], "seconds": time.perf_counter() - started}
        history.append(record)
        if ctx.is_main:
            print(f"epoch {epoch + 1}: train loss {record['train_loss']:.4f}, val loss {record['val_loss']:.4f}, "
                  f"val accuracy {record['val_accuracy']:.4f} ({record['seconds']:.1f} s, {ctx.world_size} "
                  f"process{'es' if ctx.world_size > 1 else ''})", flush=True)
            if args.out:
                os.makedirs(args.out, exist_ok=True)
                checkpoint = {name: part.state_dict() for name, part in
                              (("model", model), ("optimizer", optimizer), ("scaler", scaler))}
                checkpoint.update(epoch=epoch + 1, history=history)
                path = os.path.join(args.out, "checkpoint.pt")
                torch.save(checkpoint, path + ".tmp")
                os.replace(path + ".tmp", path)  # a crash while writing never leaves half a checkpoint
    if args.out and args.save_params:
        os.makedirs(args.out, exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()},
                   os.path.join(args.out, f"params_rank{ctx.rank}.pt"))
    if ctx.is_main and args.out:
        summary = {"world_size": ctx.world_size, "backend": ctx.backend, "steps_per_epoch": len(batches),
                   "global_batch": args.batch_size * ctx.world_size, "history": history,
                   "args": vars(args)}
        with open(os.path.join(args.out, "metrics.json"), "w") as f:
            json.dump(summary, f, indent=1)
    if distributed:
        dist.barrier()  # every rank is done before the group goes away
    cleanup_distributed()
    return history


if __name__ == "__main__":
    main()
