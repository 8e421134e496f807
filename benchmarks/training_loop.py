"""Training-loop throughput: the course's loop against a naive one, measured in one run.

Both loops train the same model (chapter 8's 1-D CNN on MNIST-1D: two blocks of convolution,
batch norm, ReLU and max-pooling, then dropout and a linear layer, He-initialized) from the same
initial weights, on the same data, with the same batch size, optimizer (AdamW), gradient clipping
and number of steps. They differ in how they are written:

- naive: a ``DataLoader`` over NumPy arrays that fetches one example per ``__getitem__`` call and
  collates each batch on the CPU; every batch copied to the device from ordinary (pageable)
  memory; float32; ``loss.item()`` read back every step;
- course: the whole data set kept on the device as tensors, each epoch's batches taken by indexing
  them with a permutation generated on the device; no value read back inside the loop (the losses
  are summed on the device); on CUDA, float16 autocast with a ``GradScaler`` and a fused AdamW
  (one kernel per step, and it lets the scaler skip its per-step ``.item()`` check); on the CPU,
  bfloat16 autocast only if a quick measurement finds it faster on this processor.

Throughput is examples per second over ``--steps`` steps after ``--warmup`` steps that are not
timed, with ``torch.cuda.synchronize()`` before each clock read on CUDA. The two loops alternate
``--rounds`` times and each keeps its best round, the one least disturbed by other work on the
machine. Prints both rates and their ratio; with ``--require-ratio X`` it exits with status 1 when
the ratio is below X (a CUDA test uses this to check that the course loop is at least 5x faster on
a GPU). Nothing here is asserted against absolute timings.

Run: ``.venv/bin/python benchmarks/training_loop.py`` (the device is chosen by
``nnkit.pick_device()``: CUDA, then MPS, then the CPU; ``--device cpu`` forces the CPU).
"""

import argparse
import math
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nnkit  # noqa: E402
from nnkit import data as nnkit_data  # noqa: E402

# Defaults per device type: a GPU gets a large batch (the per-example DataLoader's cost grows with
# the batch, the GPU's step time barely does) and the course's large data set; the CPU run stays
# within about a minute.
DEFAULTS = {
    "cuda": {"batch_size": 2048, "steps": 200, "warmup": 20, "train_examples": 100_000, "rounds": 3, "threads": None},
    "mps": {"batch_size": 2048, "steps": 100, "warmup": 10, "train_examples": 100_000, "rounds": 2, "threads": None},
    # One CPU thread: for a model this small it is faster than several that wait for each other.
    "cpu": {"batch_size": 256, "steps": 60, "warmup": 5, "train_examples": 16_000, "rounds": 3, "threads": 1},
}


def load_data(train_examples: int):
    """Standardized MNIST-1D training signals (n, 40) float32 and labels (n,) int64, as NumPy."""
    large = getattr(nnkit_data, "load_mnist1d_large", None)
    try:  # the course's generator for large sets (fast, vectorized), where this nnkit has it
        x, y, _, _ = large(n_train=train_examples)
    except (TypeError, AttributeError):  # otherwise mnist1d's own generator (slower, cached too)
        x, y, _, _ = nnkit_data.load_mnist1d(num_samples=math.ceil(train_examples / 0.8))
        x, y = x[:train_examples], y[:train_examples]
        x = (x - x.mean()) / x.std()
    return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y, dtype=np.int64)


def make_model(device: torch.device, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Unflatten(1, (1, 40))]
    for c_in, c_out in ((1, 16), (16, 32)):
        layers += [nn.Conv1d(c_in, c_out, 5, padding=2, bias=False), nn.BatchNorm1d(c_out), nn.ReLU(),
                   nn.MaxPool1d(2)]
    layers += [nn.Flatten(), nn.Dropout(0.3), nn.Linear(320, 10)]
    model = nn.Sequential(*layers)
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    nn.init.zeros_(model[-1].bias)
    return model.to(device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class ExampleByExample(Dataset):
    """The usual hand-written data set: one NumPy example per call."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def naive_loop(model, x_np, y_np, device, batch_size, max_norm=1.0, seed=0):
    """A generator of training steps, written the naive way. Each next() runs one step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DataLoader(ExampleByExample(x_np, y_np), batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(seed))
    model.train()
    while True:
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            optimizer.step()
            yield loss.item()  # read back every step: on a GPU this waits for the step to finish


def course_loop(model, x_dev, y_dev, device, batch_size, amp_dtype, max_norm=1.0, seed=0):
    """A generator of training steps, written the way chapter 8 recommends."""
    on_cuda = device.type == "cuda"
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=on_cuda)
    scaler = torch.amp.GradScaler(device.type, enabled=on_cuda and amp_dtype == torch.float16)
    order = torch.Generator(device=device).manual_seed(seed)
    loss_sum = torch.zeros((), device=device)
    model.train()
    while True:
        perm = torch.randperm(len(x_dev), device=device, generator=order)
        for start in range(0, len(perm) - batch_size + 1, batch_size):  # full batches only
            idx = perm[start:start + batch_size]
            with torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext():
                loss = F.cross_entropy(model(x_dev[idx]), y_dev[idx])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            scaler.step(optimizer)
            scaler.update()
            loss_sum += loss.detach().float()  # stays on the device
            yield loss_sum


def examples_per_second(steps_iter, device, batch_size, steps, warmup) -> float:
    for _ in range(warmup):
        next(steps_iter)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        next(steps_iter)
    synchronize(device)
    return steps * batch_size / (time.perf_counter() - start)


def cpu_autocast_helps(x_dev, y_dev, device, batch_size) -> tuple[bool, float]:
    """Time a few steps in float32 and under bfloat16 autocast; (faster?, speed-up)."""
    rates = {}
    for dtype in (None, torch.bfloat16):
        it = course_loop(make_model(device), x_dev, y_dev, device, batch_size, dtype)
        rates[dtype] = examples_per_second(it, device, batch_size, steps=6, warmup=2)
    speedup = rates[torch.bfloat16] / rates[None]
    return speedup > 1.0, speedup


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: nnkit.pick_device())")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--steps", type=int, help="timed steps per loop and round")
    parser.add_argument("--warmup", type=int, help="untimed steps before the clock starts")
    parser.add_argument("--rounds", type=int, help="alternations of the two loops (the best round counts)")
    parser.add_argument("--train-examples", type=int, help="size of the training set")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: 1 on the CPU, torch's own elsewhere)")
    parser.add_argument("--require-ratio", type=float, default=None,
                        help="exit with status 1 if course/naive examples per second is below this")
    args = parser.parse_args(argv)

    device = nnkit.pick_device(args.device)
    settings = dict(DEFAULTS.get(device.type, DEFAULTS["cpu"]))
    for key in settings:
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    batch_size, steps, warmup, rounds = (settings[k] for k in ("batch_size", "steps", "warmup", "rounds"))
    if settings["threads"]:
        torch.set_num_threads(settings["threads"])

    x_np, y_np = load_data(settings["train_examples"])
    x_dev, y_dev = torch.from_numpy(x_np).to(device), torch.from_numpy(y_np).to(device)

    if device.type == "cuda":
        amp_dtype, amp_note = torch.float16, "float16 autocast + GradScaler, fused AdamW"
    elif device.type == "cpu":
        helps, speedup = cpu_autocast_helps(x_dev, y_dev, device, batch_size)
        amp_dtype = torch.bfloat16 if helps else None
        amp_note = (f"bfloat16 autocast ({speedup:.2f}x float32 here)" if helps
                    else f"float32 (bfloat16 autocast measured {speedup:.2f}x float32 here: left off)")
    else:
        amp_dtype, amp_note = None, "float32"

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"device: {name} | torch {torch.__version__} | threads {torch.get_num_threads()}")
    print(f"data: {len(x_np)} training examples of MNIST-1D | batch {batch_size} | "
          f"{steps} timed steps after {warmup} warm-up steps | best of {rounds} rounds")
    print(f"course loop: data on the device, indexed batches, no .item(); {amp_note}")
    print("naive loop: per-example DataLoader from NumPy, pageable copies, .item() every step, float32")

    best = {"naive": 0.0, "course": 0.0}
    for _ in range(rounds):
        for which in ("naive", "course"):
            model = make_model(device)  # same initial weights for both loops
            if which == "naive":
                it = naive_loop(model, x_np, y_np, device, batch_size)
            else:
                it = course_loop(model, x_dev, y_dev, device, batch_size, amp_dtype)
            rate = examples_per_second(it, device, batch_size, steps, warmup)
            best[which] = max(best[which], rate)
    ratio = best["course"] / best["naive"]
    width = len("course loop")
    print(f"{'naive loop'.ljust(width)}  {best['naive']:12,.0f} examples/s")
    print(f"{'course loop'.ljust(width)}  {best['course']:12,.0f} examples/s")
    print(f"ratio course/naive: {ratio:.2f}")
    if args.require_ratio is not None and ratio < args.require_ratio:
        print(f"FAIL: the course loop should be at least {args.require_ratio:g}x the naive one on {device.type}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
