# ---
# jupyter:
#   jupytext:
#     notebook_metadata_filter: kernelspec,language_info,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
#   language_info:
#     name: python
# ---

# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false, "task": false}
# # Exercise 8: The PyTorch training loop, put together
#
# This exercise assembles everything the course has built into one training loop that you can reuse for real
# work: it runs on a GPU when there is one (and on the CPU otherwise), in mixed precision, survives being
# stopped and restarted, and splits its work over several processes. You write the pieces; a provided function,
# `fit`, puts them together and trains a small convolutional network on MNIST-1D generated at 100,000 training
# examples (on a CPU, on a part of them).
#
# 1. **Mixed precision**: `amp_policy` chooses the reduced precision of a device.
# 2. **Evaluation**: `evaluate` in eval mode and without autograd, leaving the model as it found it.
# 3. **Optimizer and schedule**: `make_optimizer`, AdamW with weight decay on the weights only, and a linear
#    warmup followed by a cosine decay.
# 4. **One step**: `train_step`, with autocast, a gradient scaler, clipping and the scheduler, in the one order
#    that works.
# 5. **One epoch**: `train_one_epoch`, in train mode, with a new order of the examples every epoch.
# 6. **Checkpoints**: `make_checkpoint` and `restore_checkpoint`; a run stopped and resumed must end exactly
#    where an uninterrupted run ends.
# 7. **Checkpoints of wrapped models**: `clean_state_dict` for models saved by `torch.compile` or DDP.
# 8. **Throughput**: `measure_throughput`, with warm-up and synchronization.
# 9. **Several processes**: `shard_indices`, the split of `DistributedSampler`, and `reduce_metrics`, the
#    metrics summed over the processes.
#
# Conventions: tensors live on the device of the model; a function returns plain Python numbers where it says
# so (a `float`, a `dict` of floats) and tensors elsewhere. Functions that take an optimizer, a scheduler or a
# gradient scaler work on the objects they are given, which is what a training loop needs; everything else
# returns new objects and leaves its arguments unchanged.
#
# Each graded cell shows some of its tests; more tests, against PyTorch's own classes on other settings, run
# when your notebook is graded. The tests run on the CPU, so they pass without a GPU.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false, "task": false}
import copy
import math
import os
import tempfile
import threading
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DistributedSampler
from tqdm.auto import tqdm

import nnkit
from nnkit.data import load_mnist1d_large
from nnkit.distributed import DeviceBatches
from nnkit.testing import check_array, check_close, check_scalar

np.set_printoptions(precision=6, suppress=True)
# The network is small: on a CPU one thread is faster than two that wait for each other.
torch.set_num_threads(1)
device = nnkit.pick_device()
print("torch", torch.__version__, "| device for training:", device)

# %% [markdown] nbgrader={"grade": false, "grade_id": "data_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 1. Data and model
#
# `load_mnist1d_large` generates MNIST-1D (the course's 40-point signals of ten digit templates, shifted,
# scaled, sheared and noisy) at a larger size: 100,000 training and 10,000 validation examples. The first call
# generates them (a few seconds) and caches them on disk; later calls read the cache.
#
# The whole training set takes 16 MB as `float32`: it fits in any GPU's memory, so the loop keeps it **on the
# device** and cuts minibatches there by indexing. A `torch.utils.data.DataLoader` would collate every batch
# from single examples on the CPU and copy it to the device (with `pin_memory=True` and `non_blocking=True`
# the copy can overlap the computation; `num_workers > 0` prepares batches in other processes). That is
# the right tool for data that do not fit, or that need per-example work such as decoding images; here it
# would only add work. `nnkit.distributed.DeviceBatches(x, y, batch_size, sampler)` yields the batches
# `(x[idx], y[idx])` in the order of a sampler, and drops an incomplete last batch (`drop_last`), because batch
# normalization cannot train on a batch of one example and a small last batch gives a noisy step.
#
# On a CPU this notebook trains on the first 20,000 training examples, so that it runs in about a minute; on
# a GPU it trains on all 100,000.

# %% nbgrader={"grade": false, "grade_id": "data", "locked": true, "schema_version": 3, "solution": false, "task": false}
started = time.perf_counter()
x_all, y_all, x_val_all, y_val_all = load_mnist1d_large(n_train=100_000, n_test=10_000, seed=0)
print(f"MNIST-1D (large): {len(x_all):,} training and {len(x_val_all):,} validation examples of "
      f"{x_all.shape[1]} points, in {time.perf_counter() - started:.1f} s (generated once, then read from the cache)")
N_TRAIN = len(x_all) if device.type == "cuda" else 20_000
x_train, y_train = torch.from_numpy(x_all[:N_TRAIN]), torch.from_numpy(y_all[:N_TRAIN])
x_val, y_val = torch.from_numpy(x_val_all), torch.from_numpy(y_val_all)
print(f"training on {len(x_train):,} examples on {device}")

# %% [markdown] nbgrader={"grade": false, "grade_id": "model_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The model is a small 1-D convolutional network with the course's pieces: three convolutions, each followed by
# batch normalization over the channels (chapter 4's spatial batch norm, here over batch and length) and a ReLU,
# two max-pools, dropout, and a linear classifier. The convolutions have no bias, because the batch norm that
# follows them subtracts any constant anyway. Their weights get He initialization with the **fan-in of a
# convolution**, input channels × kernel size (chapter 3); the classifier gets a variance of 1 / fan-in.

# %% nbgrader={"grade": false, "grade_id": "model_code", "locked": true, "schema_version": 3, "solution": false, "task": false}
def make_model(seed, dropout=0.1, channels=(16, 32)):
    """The course's CNN for MNIST-1D: inputs (N, 40), scores (N, 10); weights drawn after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    c1, c2 = channels
    model = nn.Sequential(
        nn.Unflatten(1, (1, 40)),                                    # (N, 40) -> (N, 1, 40)
        nn.Conv1d(1, c1, kernel_size=5, padding=2, bias=False),     # (N, c1, 40)
        nn.BatchNorm1d(c1), nn.ReLU(), nn.MaxPool1d(2),              # (N, c1, 20)
        nn.Conv1d(c1, c2, kernel_size=3, padding=1, bias=False),    # (N, c2, 20)
        nn.BatchNorm1d(c2), nn.ReLU(), nn.MaxPool1d(2),              # (N, c2, 10)
        nn.Conv1d(c2, c2, kernel_size=3, padding=1, bias=False),    # (N, c2, 10)
        nn.BatchNorm1d(c2), nn.ReLU(),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(c2 * 10, 10))  # (N, 10)
    for layer in model.modules():
        if isinstance(layer, nn.Conv1d):
            fan_in = layer.in_channels * layer.kernel_size[0]
            nn.init.normal_(layer.weight, mean=0.0, std=math.sqrt(2.0 / fan_in))
        elif isinstance(layer, nn.Linear):
            nn.init.normal_(layer.weight, mean=0.0, std=math.sqrt(1.0 / layer.in_features))
            nn.init.constant_(layer.bias, 0.0)
    return model


def plain(value):
    """A copy of a (nested) state as plain data for the tests: dicts, lists, tuples, tensors, numbers."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    return value


print(make_model(0))
print("parameters:", sum(p.numel() for p in make_model(0).parameters()))

# %% [markdown] nbgrader={"grade": false, "grade_id": "amp_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 2. Mixed precision
#
# Inside `with torch.autocast(device_type, dtype=...)`, PyTorch runs the operations that tolerate it
# (matrix products, convolutions) in a 16-bit type and keeps the others (reductions, softmax, the loss) in
# `float32`. The parameters stay `float32`. Two 16-bit types exist:
#
# * `torch.float16`: 10 bits of mantissa but only 5 of exponent; values below about $6 \cdot 10^{-8}$ become 0.
#   Small gradients would vanish, so the loss is multiplied by a large factor before `backward` and the
#   gradients divided by it before the step: `torch.amp.GradScaler` does both, and lowers the factor when a
#   gradient overflows to `inf`. Used on CUDA GPUs.
# * `torch.bfloat16`: the 8 exponent bits of `float32` and only 7 bits of mantissa. Its range is that of
#   `float32`, so it needs no scaler. Used on CPUs (and on recent GPUs).
#
# Whether it is faster depends on the hardware: GPUs and CPUs with 16-bit matrix units (recent server CPUs)
# gain, a CPU without them emulates the type and is slower. The loop takes a flag for it.
#
# **Task.** Write `amp_policy(device_type)` that returns `(dtype, use_scaler)`: `(torch.float16, True)` for
# `"cuda"`, `(torch.bfloat16, False)` for `"cpu"`, and `(None, False)` (no autocast) for any other device.

# %% nbgrader={"grade": false, "grade_id": "amp_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def amp_policy(device_type):
    """(autocast dtype or None, whether a GradScaler is needed) for a device type such as "cuda" or "cpu"."""
    ### BEGIN SOLUTION
    if device_type == "cuda":
        return torch.float16, True
    if device_type == "cpu":
        return torch.bfloat16, False
    return None, False
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "amp_drivers", "locked": true, "schema_version": 3, "solution": false, "task": false}
def describe_amp_policy(device_type):
    """amp_policy(device_type) with the dtype written as a string, for the tests."""
    dtype, use_scaler = amp_policy(device_type)
    return (None if dtype is None else str(dtype)), use_scaler


def autocast_output_dtype(device_type):
    """The dtype of a linear layer's output on the CPU under autocast with amp_policy(device_type)'s dtype."""
    dtype, _ = amp_policy(device_type)
    layer = nn.Linear(4, 3)
    with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        return str(layer(torch.ones(2, 4)).dtype)


# %% nbgrader={"grade": true, "grade_id": "test_amp_policy", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
for device_type, want in [("cuda", ("torch.float16", True)), ("cpu", ("torch.bfloat16", False)),
                          ("mps", (None, False))]:
    got = describe_amp_policy(device_type)
    assert tuple(got) == want, f"amp_policy({device_type!r}) should give {want[0]} and {want[1]}, got {tuple(got)}"
assert autocast_output_dtype("cpu") == "torch.bfloat16", \
    f"a linear layer under autocast with amp_policy('cpu') gives {autocast_output_dtype('cpu')}, not bfloat16"
print("amp_policy: visible checks passed")
### BEGIN HIDDEN TESTS
for device_type in ("xpu", "meta", "hpu"):
    got = describe_amp_policy(device_type)
    assert tuple(got) == (None, False), f"amp_policy({device_type!r}) should give (None, False), got {tuple(got)}"
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "evaluate_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 3. Evaluation
#
# Batch norm and dropout behave differently in training and in evaluation: in `model.train()` mode batch norm
# normalizes with the statistics of the batch and updates its running statistics, and dropout zeroes random
# activations; in `model.eval()` mode batch norm uses its running statistics and dropout does nothing. An
# evaluation left in train mode gives scores that depend on the other examples of the batch and on chance, and
# it changes the running statistics. And a training loop that calls an evaluation which leaves the model in
# eval mode trains the next epoch without dropout and with frozen batch statistics, silently.
#
# `torch.inference_mode()` turns autograd off: no graph is recorded, which saves memory and time (it is
# stricter and faster than `torch.no_grad()`: tensors made inside cannot enter autograd later).
#
# **Task.** Write `evaluate(model, x, y, batch_size=1000)` that returns `{"loss": float, "accuracy": float}`,
# the mean cross-entropy and the fraction of correct predictions (the class with the highest score) over all
# examples of `x` (a tensor of shape (N, 40) on the model's device) and `y` (labels), computed in batches of
# `batch_size` (the last may be smaller), in eval mode and inside `torch.inference_mode()`. Afterwards the
# model must be back in the mode it was in when `evaluate` was called (`model.training` tells it). Use
# `.item()` only at the end.

# %% nbgrader={"grade": false, "grade_id": "evaluate_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def evaluate(model, x, y, batch_size=1000):
    """Mean cross-entropy and accuracy of model on (x, y), in eval mode and inference mode.
    Returns {"loss": float, "accuracy": float}; the model is left in the mode it was in."""
    ### BEGIN SOLUTION
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    n_correct = torch.zeros((), dtype=torch.int64, device=x.device)
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            scores = model(x[start:start + batch_size]).float()
            labels = y[start:start + batch_size]
            loss_sum += F.cross_entropy(scores, labels, reduction="sum").double()
            n_correct += (scores.argmax(dim=1) == labels).sum()
    model.train(was_training)
    return {"loss": loss_sum.item() / len(x), "accuracy": n_correct.item() / len(x)}
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "evaluate_drivers", "locked": true, "schema_version": 3, "solution": false, "task": false}
def evaluate_probe(seed, x, y, batch_size, start_in_train_mode):
    """evaluate on a fresh make_model(seed) put in train (or eval) mode first; reports what evaluate did.
    Returns {"result", "seen": [{"training", "inference_mode", "grad_enabled", "batch"} per forward],
    "training_after", "changed": [names of parameters and buffers evaluate changed]}."""
    model = make_model(seed)
    model.train(start_in_train_mode)
    seen = []

    def record(module, inputs):
        seen.append({"training": module.training, "inference_mode": torch.is_inference_mode_enabled(),
                     "grad_enabled": torch.is_grad_enabled(), "batch": len(inputs[0])})

    handle = model.register_forward_pre_hook(record)
    before = copy.deepcopy(model.state_dict())
    try:
        result = evaluate(model, torch.as_tensor(x), torch.as_tensor(y), batch_size)
    finally:
        handle.remove()
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    return {"result": result, "seen": seen, "training_after": model.training,
            "all_modes_after": sorted({m.training for m in model.modules()}), "changed": changed}


# %% nbgrader={"grade": true, "grade_id": "test_evaluate", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
import torch.nn.functional as F


def eval_reference(seed, x, y):
    """(mean cross-entropy, accuracy) of make_model(seed) in eval mode, computed here."""
    model = make_model(seed).eval()
    with torch.no_grad():
        scores = model(torch.as_tensor(x)).double()
    labels = torch.as_tensor(y)
    return F.cross_entropy(scores, labels).item(), (scores.argmax(1) == labels).double().mean().item()


rng_t = np.random.default_rng(8101)
x_t = rng_t.normal(size=(300, 40)).astype(np.float32)
y_t = rng_t.integers(0, 10, size=300)
probe = evaluate_probe(0, x_t, y_t, 128, start_in_train_mode=True)
result = probe["result"]
assert isinstance(result, dict) and set(result) >= {"loss", "accuracy"} and \
    all(isinstance(result[k], float) for k in ("loss", "accuracy")), \
    f"evaluate should return {{'loss': float, 'accuracy': float}}, got {result!r:.200}"
want_loss, want_acc = eval_reference(0, x_t, y_t)
check_scalar(result["loss"], want_loss, "evaluate: mean cross-entropy of make_model(0) on 300 examples", rtol=1e-5,
             hint="eval mode: batch norm with its running statistics, no dropout; average over all examples")
check_scalar(result["accuracy"], want_acc, "evaluate: accuracy", rtol=1e-6)
sizes = [s["batch"] for s in probe["seen"]]
assert sizes == [128, 128, 44], f"evaluate should run batches of 128, 128 and 44 examples, ran {sizes}"
assert all(not s["training"] for s in probe["seen"]), "evaluate ran the model in train mode: call model.eval() first"
assert all(s["inference_mode"] for s in probe["seen"]), "evaluate should run the model inside torch.inference_mode()"
assert probe["changed"] == [], f"evaluate changed the model's parameters or buffers: {probe['changed']}"
assert probe["training_after"] is True and probe["all_modes_after"] == [True], \
    "a model in train mode should be in train mode again after evaluate (the training loop goes on after it)"
probe = evaluate_probe(0, x_t, y_t, 1000, start_in_train_mode=False)
assert probe["training_after"] is False, "a model in eval mode should stay in eval mode after evaluate"
print(f"evaluate: loss {result['loss']:.4f}, accuracy {result['accuracy']:.3f}; visible checks passed")
### BEGIN HIDDEN TESTS
for seed, n, batch_size, mode in [(1, 257, 64, True), (2, 1000, 1000, True), (3, 77, 7, False), (4, 5, 100, True)]:
    x_h = rng_t.normal(size=(n, 40)).astype(np.float32) * rng_t.uniform(0.5, 2.0)
    y_h = rng_t.integers(0, 10, size=n)
    probe = evaluate_probe(seed, x_h, y_h, batch_size, start_in_train_mode=mode)
    want_loss, want_acc = eval_reference(seed, x_h, y_h)
    setting = f"make_model({seed}), {n} examples, batch_size {batch_size}"
    check_scalar(probe["result"]["loss"], want_loss, f"evaluate: loss ({setting})", rtol=1e-5)
    check_scalar(probe["result"]["accuracy"], want_acc, f"evaluate: accuracy ({setting})", rtol=1e-6)
    want_sizes = [min(batch_size, n - s) for s in range(0, n, batch_size)]
    assert [s["batch"] for s in probe["seen"]] == want_sizes, f"evaluate: batches ({setting})"
    assert all(not s["training"] and s["inference_mode"] for s in probe["seen"]), f"evaluate: modes ({setting})"
    assert probe["training_after"] is mode and probe["changed"] == [], f"evaluate: left the model changed ({setting})"
# A model of the test's: its running statistics must come back unchanged.
import copy

model_t = make_model(5)
model_t.train()
kept = copy.deepcopy(model_t.state_dict())
result = evaluate(model_t, torch.from_numpy(x_t), torch.from_numpy(y_t), 50)
for name, value in model_t.state_dict().items():
    assert torch.equal(value, kept[name]), f"evaluate changed {name} of the model it evaluated"
check_scalar(result["loss"], eval_reference(5, x_t, y_t)[0], "evaluate: loss of make_model(5)", rtol=1e-5)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "optimizer_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 4. Optimizer and schedule
#
# The loop trains with AdamW (chapter 5): Adam's step plus a *decoupled* weight decay that shrinks each weight
# by `lr * weight_decay` at every step. Decay is meant for the weights of convolutions and linear layers (the
# parameters with two or more dimensions); on biases and on batch norm's $\gamma$ and $\beta$ it only pulls
# scales and offsets toward 0, and the common practice is to leave them out. `torch.optim.AdamW` takes
# **parameter groups**, a list of dicts each with its own `"params"` and settings.
#
# The learning rate follows a schedule stepped after **every optimizer step** (not every epoch): a linear
# warmup over the first $W$ steps, then a cosine decay over the remaining $T - W$ steps down to
# `min_factor` times the base rate. As a factor $f(k)$ of the base learning rate after $k$ scheduler steps:
#
# $$f(k) = \frac{k + 1}{W} \quad (0 \le k < W), \qquad
# f(k) = m + (1 - m)\, \tfrac12 \left(1 + \cos\frac{\pi (k - W)}{T - W}\right) \quad (W \le k \le T),$$
#
# with $m$ = `min_factor`. The first step runs at `lr / W` (not at 0, which would waste it), the rate reaches
# `lr` at step $W - 1$, and it ends at `m * lr` after $T$ steps. `torch.optim.lr_scheduler.LambdaLR(optimizer,
# f)` multiplies each group's base learning rate by `f(k)`.
#
# **Task.** Write `make_optimizer(model, lr, weight_decay, warmup_steps, total_steps, min_factor=0.0)` that
# returns `(optimizer, scheduler)`: a `torch.optim.AdamW` with two groups, the parameters of `model` with two
# or more dimensions with `weight_decay` and all others with weight decay 0 (every parameter in exactly one
# group; AdamW's other settings at their defaults), and a `LambdaLR` with the factor above
# ($1 \le W < T$).

# %% nbgrader={"grade": false, "grade_id": "optimizer_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_optimizer(model, lr, weight_decay, warmup_steps, total_steps, min_factor=0.0):
    """AdamW (decay on parameters with 2+ dimensions only) and a LambdaLR warmup-cosine schedule per step.
    Returns (optimizer, scheduler)."""
    ### BEGIN SOLUTION
    decayed = [p for p in model.parameters() if p.ndim >= 2]
    not_decayed = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decayed, "weight_decay": weight_decay},
                                   {"params": not_decayed, "weight_decay": 0.0}], lr=lr)

    def factor(step):
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(step - warmup_steps, total_steps - warmup_steps) / (total_steps - warmup_steps)
        return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "optimizer_drivers", "locked": true, "schema_version": 3, "solution": false, "task": false}
def optimizer_probe(seed, lr, weight_decay, warmup_steps, total_steps, min_factor=0.0, grad_seed=0):
    """make_optimizer on a fresh make_model(seed), then total_steps steps (optimizer, then scheduler) on
    gradients drawn from torch.Generator().manual_seed(grad_seed), in the order of model.parameters().
    Returns the optimizer's class, its groups (parameter names and settings), the learning rate of every group
    at every step, and the parameters at the end."""
    model = make_model(seed)
    optimizer, scheduler = make_optimizer(model, lr, weight_decay, warmup_steps, total_steps, min_factor)
    names = {id(p): name for name, p in model.named_parameters()}
    groups = [{"params": [names.get(id(p), "?") for p in g["params"]],
               **{k: plain(v) for k, v in g.items() if k in ("lr", "weight_decay", "betas", "eps", "amsgrad")}}
              for g in optimizer.param_groups]
    draws = torch.Generator().manual_seed(grad_seed)
    lrs = []
    for _ in range(total_steps):
        lrs.append([float(g["lr"]) for g in optimizer.param_groups])
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=draws)
        optimizer.step()
        scheduler.step()
    return {"optimizer": type(optimizer).__name__, "scheduler": type(scheduler).__name__, "groups": groups,
            "lrs": lrs, "params": {name: p.detach().clone() for name, p in model.named_parameters()}}


# %% nbgrader={"grade": true, "grade_id": "test_optimizer_groups", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
probe = optimizer_probe(0, lr=0.01, weight_decay=0.05, warmup_steps=2, total_steps=3)
assert probe["optimizer"] == "AdamW", f"make_optimizer should build torch.optim.AdamW, built {probe['optimizer']}"
decay = {}
for group in probe["groups"]:
    for name in group["params"]:
        assert name not in decay, f"make_optimizer: {name} is in two parameter groups"
        decay[name] = group["weight_decay"]
dims = {name: p.ndim for name, p in make_model(0).named_parameters()}
assert sorted(decay) == sorted(dims), f"make_optimizer: the groups hold {sorted(decay)}, the model has {sorted(dims)}"
for name, p_ndim in dims.items():
    want = 0.05 if p_ndim >= 2 else 0.0
    assert decay[name] == want, f"make_optimizer: {name} ({p_ndim} dimensions) should have weight decay {want}, " \
                                f"has {decay[name]}"
assert all(tuple(g["betas"]) == (0.9, 0.999) and g["eps"] == 1e-8 for g in probe["groups"]), \
    "make_optimizer: keep AdamW's default betas and eps"
print("make_optimizer: groups:", [(len(g["params"]), g["weight_decay"]) for g in probe["groups"]])
### BEGIN HIDDEN TESTS
probe = optimizer_probe(1, lr=3e-3, weight_decay=0.2, warmup_steps=1, total_steps=2)
dims = {name: p.ndim for name, p in make_model(1).named_parameters()}
assert sorted(n for g in probe["groups"] for n in g["params"]) == sorted(dims), "make_optimizer: every parameter once"
for group in probe["groups"]:
    for name in group["params"]:
        want = 0.2 if dims[name] >= 2 else 0.0
        assert group["weight_decay"] == want, f"make_optimizer(weight_decay=0.2): {name} has {group['weight_decay']}"
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_optimizer_schedule", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import warnings

import numpy as np
import torch
from nnkit.testing import check_close

probe = optimizer_probe(0, lr=0.1, weight_decay=0.0, warmup_steps=4, total_steps=12)
first_group = [step_lrs[0] for step_lrs in probe["lrs"]]
# warmup 0.1 * (k + 1) / 4; cosine from 0.1 at k = 4 to 0 at k = 12, half way (0.05) at k = 8
check_close(first_group[:5], [0.025, 0.05, 0.075, 0.1, 0.1], "make_optimizer: learning rates of steps 0-4 "
            "(warmup 4 of 12 steps, lr 0.1)", rtol=1e-12, hint="f(k) = (k + 1) / W during the warmup")
check_close(first_group[8], 0.05, "make_optimizer: learning rate at step 8 (half way through the cosine)", rtol=1e-12)
assert all(len(set(step_lrs)) == 1 for step_lrs in probe["lrs"]), "make_optimizer: both groups share the schedule"
print("make_optimizer: learning rates", np.round(first_group, 4))
### BEGIN HIDDEN TESTS


def oracle_lrs(lr, warmup, total, min_factor):
    """Learning rates of PyTorch's own warmup + cosine (LinearLR, then CosineAnnealingLR, in SequentialLR)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = [torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / warmup, total_iters=warmup - 1),
                 torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=min_factor * lr)]
        sched = torch.optim.lr_scheduler.SequentialLR(opt, parts, milestones=[warmup])
        out = []
        for _ in range(total):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    return out


for seed, lr, decay, warmup, total, min_factor in [(2, 3e-3, 0.05, 5, 23, 0.1), (3, 0.02, 0.3, 2, 9, 0.0),
                                                   (4, 1e-3, 0.01, 10, 40, 0.25)]:
    probe = optimizer_probe(seed, lr, decay, warmup, total, min_factor, grad_seed=seed + 10)
    setting = f"lr {lr}, weight_decay {decay}, warmup {warmup}, total {total}, min_factor {min_factor}"
    want_lrs = oracle_lrs(lr, warmup, total, min_factor)
    for g in range(len(probe["groups"])):
        check_close([step_lrs[g] for step_lrs in probe["lrs"]], want_lrs,
                    f"make_optimizer: learning rates against PyTorch's LinearLR + CosineAnnealingLR ({setting})",
                    rtol=1e-9, atol=1e-15)
    # AdamW with the same groups, stepped by hand at the oracle's learning rates on the same gradients
    model_t = make_model(seed)
    named = dict(model_t.named_parameters())
    reference = torch.optim.AdamW([{"params": [p for p in model_t.parameters() if p.ndim >= 2], "weight_decay": decay},
                                   {"params": [p for p in model_t.parameters() if p.ndim < 2], "weight_decay": 0.0}],
                                  lr=lr)
    draws = torch.Generator().manual_seed(seed + 10)
    for step_lr in want_lrs:
        for group in reference.param_groups:
            group["lr"] = step_lr
        for p in model_t.parameters():
            p.grad = torch.randn(p.shape, generator=draws)
        reference.step()
    for name, value in probe["params"].items():
        check_close(value.numpy(), named[name].detach().numpy(),
                    f"make_optimizer: {name} after {total} steps against torch.optim.AdamW ({setting})",
                    rtol=1e-5, atol=1e-6)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "step_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 5. One training step
#
# One step on a minibatch `(x, y)`, in this order:
#
# 1. clear the gradients (the optimizer's `zero_grad(set_to_none=True)`);
# 2. forward and loss (mean cross-entropy) **inside** `torch.autocast(device_type=x.device.type,
#    dtype=amp_dtype)`, and only those: `backward` and the optimizer step run outside it (autocast chooses the
#    precision of the forward operations; the backward pass runs each operation in the precision its forward
#    used anyway). With `amp_dtype=None`, no autocast (`enabled=False`);
# 3. `scaler.scale(loss).backward()`: the gradients of the loss times the scaler's factor $s$;
# 4. `scaler.unscale_(optimizer)`: divide the gradients by $s$ (and check them for `inf` and `NaN`);
# 5. clip the global norm of the gradients to `max_norm` with `torch.nn.utils.clip_grad_norm_(model.parameters(),
#    max_norm)`, which returns the norm before clipping. Clipping before step 4 would compare $s$ times the norm
#    with `max_norm` and shrink the gradients by a factor that has nothing to do with their size;
# 6. `scaler.step(optimizer)`: the optimizer step, skipped if a gradient was `inf` or `NaN`;
# 7. `scaler.update()`: lower $s$ after a skipped step, raise it after many good ones;
# 8. `scheduler.step()`, **after** the optimizer step: stepping it before skips the schedule's first value.
#
# A scaler built with `enabled=False` passes everything through (`scale` returns the loss itself, `step` calls
# `optimizer.step()`), so the same code runs with and without one: always go through the scaler.
#
# The step returns the loss and the gradient norm as **tensors** (0-d, detached): reading a number with
# `.item()` forces the CPU to wait until the GPU has finished all the work queued so far, at every step. The
# loop sums the losses on the device and reads the sum once per epoch.
#
# **Task.** Write `train_step(model, x, y, optimizer, scheduler, scaler, max_norm, amp_dtype=None)` that takes
# one such step and returns `(loss, grad_norm)`: the mean cross-entropy of the batch before the step (not
# multiplied by the scaler's factor) and the global gradient norm before clipping (after unscaling), both 0-d
# tensors, detached from the graph. It does not change the model's train/eval mode.

# %% nbgrader={"grade": false, "grade_id": "step_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_step(model, x, y, optimizer, scheduler, scaler, max_norm, amp_dtype=None):
    """One optimizer step on (x, y) with autocast, gradient scaling, clipping and the schedule.
    Returns (loss, grad_norm), detached 0-d tensors on the device."""
    ### BEGIN SOLUTION
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device_type=x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        loss = F.cross_entropy(model(x), target=y)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return loss.detach(), grad_norm.detach()
    ### END SOLUTION


# %% [markdown] nbgrader={"grade": false, "grade_id": "step_drivers_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The helpers below run your `train_step` for the tests. `train_step_events` records what happens, in order:
# the forward pass (and whether autocast was on), the scaler's methods, the backward pass, the optimizer's
# step, the scheduler's step; and it counts the calls of `.item()`, `.tolist()` and `float()` on tensors made
# by your code. `train_step_run` runs a few steps with an enabled gradient scaler, also on the CPU, and reports
# the loss, the gradient norm and the learning rate of every step, and the parameters at the end.

# %% nbgrader={"grade": false, "grade_id": "step_drivers", "locked": true, "schema_version": 3, "solution": false, "task": false}
class _Watch:
    """Counts .item(), .tolist() and float() on tensors while active, except inside PyTorch's own steps."""

    def __init__(self):
        self.count, self.active, self.inside = 0, False, 0

    def __enter__(self):
        self.saved = {name: getattr(torch.Tensor, name) for name in ("item", "tolist", "__float__")}
        for name, original in self.saved.items():
            setattr(torch.Tensor, name, self._counting(original))
        self.active = True
        return self

    def __exit__(self, *exc):
        self.active = False
        for name, original in self.saved.items():
            setattr(torch.Tensor, name, original)

    def _counting(self, original):
        def counted(tensor, *args, **kwargs):
            if self.active and self.inside == 0:
                self.count += 1
            return original(tensor, *args, **kwargs)
        return counted


class RecordingScaler(torch.amp.GradScaler):
    """A GradScaler that writes its calls into log (calls made inside step are not written twice)."""

    def __init__(self, log, watch, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.log, self.watch, self.depth = log, watch, 0

    def _call(self, name, method, *args, **kwargs):
        if self.depth == 0:
            self.log.append(name)
        self.depth += 1
        self.watch.inside += 1
        try:
            return method(*args, **kwargs)
        finally:
            self.depth -= 1
            self.watch.inside -= 1

    def scale(self, outputs):
        return self._call("scaler.scale", super().scale, outputs)

    def unscale_(self, optimizer):
        return self._call("scaler.unscale_", super().unscale_, optimizer)

    def step(self, optimizer, *args, **kwargs):
        return self._call("scaler.step", super().step, optimizer, *args, **kwargs)

    def update(self, new_scale=None):
        return self._call("scaler.update", super().update, new_scale)


class RecordingLambdaLR(torch.optim.lr_scheduler.LambdaLR):
    """A LambdaLR that writes its steps into log (after it is built)."""

    def __init__(self, optimizer, factor, log, watch):
        self.log, self.watch = None, watch
        super().__init__(optimizer, factor)
        self.log = log

    def step(self, *args, **kwargs):
        if self.log is not None:
            self.log.append("scheduler.step")
        self.watch.inside += 1
        try:
            return super().step(*args, **kwargs)
        finally:
            self.watch.inside -= 1


def _dtype(name):
    return None if name is None else getattr(torch, name)


def train_step_events(seed, xs, ys, max_norm, amp_dtype_name=None, init_scale=None):
    """Your train_step on a fresh make_model(seed) in train mode, one step per batch (xs[k], ys[k]), with an
    AdamW, a LambdaLR and a GradScaler (enabled on the CPU when init_scale is given) that record their calls.
    Returns {"events": [...], "returned": [type names per step], "item_calls": int, "clip_calls": int}."""
    log, watch = [], _Watch()
    model = make_model(seed)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = RecordingLambdaLR(optimizer, lambda k: 1.0 / (1 + k), log, watch)
    scaler = RecordingScaler(log, watch, "cpu", init_scale=init_scale or 1.0, enabled=init_scale is not None)
    last_linear = model[-1]
    hooks = [model.register_forward_pre_hook(
                 lambda m, i: log.append(("forward", torch.is_autocast_enabled("cpu"), m.training))),
             last_linear.register_forward_hook(lambda m, i, o: log.append(("output dtype", str(o.dtype)))),
             model[1].weight.register_hook(lambda g: log.append(("backward", torch.is_autocast_enabled("cpu"))))]

    def before_step(opt, args, kwargs):
        log.append(("optimizer.step", torch.is_autocast_enabled("cpu")))
        watch.inside += 1

    def after_step(opt, args, kwargs):
        watch.inside -= 1

    hooks += [optimizer.register_step_pre_hook(before_step), optimizer.register_step_post_hook(after_step)]
    original_clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(*args, **kwargs):
        log.append("clip")
        return original_clip(*args, **kwargs)

    returned = []
    torch.nn.utils.clip_grad_norm_ = recording_clip
    try:
        with watch:
            for x, y in zip(xs, ys):
                log.append("-- step")
                out = train_step(model, torch.as_tensor(x), torch.as_tensor(y), optimizer, scheduler, scaler,
                                 max_norm, _dtype(amp_dtype_name))
                returned.append([type(v).__name__ + ("" if not isinstance(v, torch.Tensor) else
                                                     f" {tuple(v.shape)} requires_grad={v.requires_grad}")
                                 for v in (out if isinstance(out, tuple) else (out,))])
    finally:
        torch.nn.utils.clip_grad_norm_ = original_clip
        for hook in hooks:
            hook.remove()
    events = [list(e) if isinstance(e, tuple) else e for e in log]
    return {"events": events, "returned": returned, "item_calls": watch.count,
            "clip_calls": sum(e == "clip" for e in log)}


def train_step_run(seed, xs, ys, max_norm, amp_dtype_name=None, init_scale=None, lr=3e-3, dropout_seed=0):
    """Your train_step for len(xs) steps on a fresh make_model(seed) in train mode, with torch.optim.AdamW(lr,
    weight_decay=0.01), LambdaLR(1 / (1 + k)) and GradScaler("cpu", init_scale, growth_interval=1), enabled
    when init_scale is given; torch.manual_seed(dropout_seed) right before the first step.
    Returns the loss, gradient norm and learning rate of every step, the final parameters and scale."""
    model = make_model(seed)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0 / (1 + k))
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale or 1.0, growth_interval=1,
                                  enabled=init_scale is not None)
    lrs = []
    hook = optimizer.register_step_pre_hook(lambda opt, a, k: lrs.append(float(opt.param_groups[0]["lr"])))
    torch.manual_seed(dropout_seed)
    losses, norms = [], []
    try:
        for x, y in zip(xs, ys):
            loss, norm = train_step(model, torch.as_tensor(x), torch.as_tensor(y), optimizer, scheduler, scaler,
                                    max_norm, _dtype(amp_dtype_name))
            losses.append(float(loss))
            norms.append(float(norm))
    finally:
        hook.remove()
    return {"losses": losses, "grad_norms": norms, "lrs": lrs, "scale": float(scaler.get_scale()),
            "params": {name: p.detach().clone() for name, p in model.named_parameters()}}


# %% nbgrader={"grade": true, "grade_id": "test_train_step_order", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
import numpy as np

rng_t = np.random.default_rng(8103)
xs = [rng_t.normal(size=(16, 40)).astype(np.float32) for _ in range(2)]
ys = [rng_t.integers(0, 10, size=16) for _ in range(2)]
run = train_step_events(0, xs, ys, max_norm=1.0, amp_dtype_name="bfloat16", init_scale=2.0 ** 10)
events = run["events"]
print("events of the first step:", [e if isinstance(e, str) else " ".join(map(str, e)) for e in events[:12]])
steps = []
for e in events:
    if e == "-- step":
        steps.append([])
    else:
        steps[-1].append(e)
assert len(steps) == 2, f"train_step_events ran {len(steps)} steps"
for k, step in enumerate(steps):
    names = [e if isinstance(e, str) else e[0] for e in step]
    where = f"train_step, step {k + 1}: events {names}"
    for name in ("forward", "scaler.scale", "backward", "scaler.unscale_", "scaler.step", "optimizer.step",
                 "scaler.update", "scheduler.step"):
        assert names.count(name) == 1, f"{where}: expected exactly one {name!r}"
    order = [n for n in names if n in ("forward", "scaler.scale", "backward", "scaler.unscale_", "clip",
                                       "scaler.step", "optimizer.step", "scaler.update", "scheduler.step")]
    want = ["forward", "scaler.scale", "backward", "scaler.unscale_", "scaler.step", "optimizer.step",
            "scaler.update", "scheduler.step"]
    if "clip" in order:
        want.insert(4, "clip")
    assert order == want, f"{where}: the order should be {want}"
    forward = next(e for e in step if not isinstance(e, str) and e[0] == "forward")
    assert forward[1] is True, f"{where}: the forward pass should run inside torch.autocast"
    dtype = next(e for e in step if not isinstance(e, str) and e[0] == "output dtype")
    assert dtype[1] == "torch.bfloat16", f"{where}: under autocast with bfloat16 the scores should be bfloat16, " \
                                         f"were {dtype[1]}"
    backward = next(e for e in step if not isinstance(e, str) and e[0] == "backward")
    assert backward[1] is False, f"{where}: backward should run outside the autocast block"
    opt_step = next(e for e in step if not isinstance(e, str) and e[0] == "optimizer.step")
    assert opt_step[1] is False, f"{where}: the optimizer step should run outside the autocast block"
for k, types in enumerate(run["returned"]):
    assert types == ["Tensor () requires_grad=False"] * 2, \
        f"train_step, step {k + 1}: should return (loss, grad_norm) as detached 0-d tensors, returned {types}"
assert run["item_calls"] == 0, \
    f"train_step called .item(), .tolist() or float() {run['item_calls']} times: return tensors, read them later"
print("train_step: the order of the calls is right")
### BEGIN HIDDEN TESTS
run = train_step_events(1, xs[:1], ys[:1], max_norm=0.5, amp_dtype_name=None, init_scale=None)
names = [e if isinstance(e, str) else e[0] for e in run["events"]]
forward = next(e for e in run["events"] if not isinstance(e, str) and e[0] == "forward")
dtype = next(e for e in run["events"] if not isinstance(e, str) and e[0] == "output dtype")
assert forward[1] is False and dtype[1] == "torch.float32", \
    f"train_step with amp_dtype=None should not use autocast: {run['events']}"
assert names.count("scaler.scale") == 1 and names.count("scaler.step") == 1 and names.count("optimizer.step") == 1, \
    f"train_step with a disabled scaler should still go through it: {names}"
assert names.index("optimizer.step") < names.index("scheduler.step"), f"train_step: scheduler after optimizer: {names}"
assert run["returned"] == [["Tensor () requires_grad=False"] * 2] and run["item_calls"] == 0, run
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_train_step_values", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
import torch.nn.functional as F
from nnkit.testing import check_close

rng_t = np.random.default_rng(8104)
xs = [rng_t.normal(size=(32, 40)).astype(np.float32) for _ in range(3)]
ys = [rng_t.integers(0, 10, size=32) for _ in range(3)]
run = train_step_run(0, xs, ys, max_norm=0.5)
assert len(run["losses"]) == 3 and len(run["lrs"]) == 3, f"train_step_run: 3 steps expected, got {run!r:.300}"
check_close(run["lrs"], [3e-3, 1.5e-3, 1e-3], "train_step: learning rate of each optimizer step (LambdaLR 1/(1+k))",
            rtol=1e-9, hint="the first step runs at the base learning rate: scheduler.step() after the optimizer")
assert 2.0 < run["losses"][0] < 3.0, f"train_step: the first loss should be near ln 10, got {run['losses'][0]}"
assert all(norm > 0.5 for norm in run["grad_norms"]), \
    f"train_step: return the gradient norm before clipping (it exceeds max_norm 0.5 here): {run['grad_norms']}"
scaled = train_step_run(0, xs, ys, max_norm=0.5, init_scale=2.0 ** 16)
check_close(scaled["grad_norms"], run["grad_norms"], "train_step: gradient norms with an enabled scaler (init_scale "
            "2**16) against the same steps without one", rtol=1e-4,
            hint="take the norm after scaler.unscale_(optimizer) (clip the true gradients, not the scaled ones), "
            "of this step's gradients only (clear them first)")
check_close(scaled["scale"], 2.0 ** 19, "train_step: the scaler's factor after 3 steps with growth_interval=1",
            hint="scaler.update() after every step")
for name, value in scaled["params"].items():
    check_close(value.numpy(), run["params"][name].numpy(), f"train_step: {name} after 3 steps, with and without "
                "a scaler", rtol=1e-4, atol=1e-6)
print("train_step: losses", np.round(run["losses"], 4), "gradient norms", np.round(run["grad_norms"], 4))
### BEGIN HIDDEN TESTS


def replay(seed, xs, ys, max_norm, amp_dtype, init_scale, lr=3e-3, dropout_seed=0):
    """The step as it should be, written out: losses, norms, learning rates, parameters, final scale."""
    model = make_model(seed)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0 / (1 + k))
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale or 1.0, growth_interval=1,
                                  enabled=init_scale is not None)
    torch.manual_seed(dropout_seed)
    out = {"losses": [], "grad_norms": [], "lrs": []}
    for x, y in zip(xs, ys):
        out["lrs"].append(optimizer.param_groups[0]["lr"])
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = F.cross_entropy(model(torch.as_tensor(x)), torch.as_tensor(y))
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        norm_before = torch.nn.utils.clip_grad_norm_(list(model.parameters()), max_norm=max_norm)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        out["losses"].append(loss.item())
        out["grad_norms"].append(norm_before.item())
    out["params"] = {name: p.detach().clone() for name, p in model.named_parameters()}
    out["scale"] = scaler.get_scale()
    return out


for seed, n, steps, max_norm, amp, init_scale in [(1, 24, 4, 0.3, None, 2.0 ** 20), (2, 16, 3, 1.0, "bfloat16", 2.0 ** 12),
                                                  (3, 40, 3, 100.0, None, None), (4, 8, 3, 0.05, "bfloat16", None)]:
    xs_h = [rng_t.normal(size=(n, 40)).astype(np.float32) for _ in range(steps)]
    ys_h = [rng_t.integers(0, 10, size=n) for _ in range(steps)]
    got = train_step_run(seed, xs_h, ys_h, max_norm, amp, init_scale, dropout_seed=seed)
    want = replay(seed, xs_h, ys_h, max_norm, getattr(torch, amp) if amp else None, init_scale, dropout_seed=seed)
    setting = f"seed {seed}, batches of {n}, max_norm {max_norm}, autocast {amp}, init_scale {init_scale}"
    check_close(got["lrs"], want["lrs"], f"train_step: learning rates ({setting})", rtol=1e-9)
    check_close(got["losses"], want["losses"], f"train_step: losses ({setting})", rtol=1e-4, atol=1e-6)
    check_close(got["grad_norms"], want["grad_norms"], f"train_step: gradient norms before clipping ({setting})",
                rtol=1e-3, atol=1e-7)
    check_close(got["scale"], want["scale"], f"train_step: the scaler's factor at the end ({setting})")
    for name, value in got["params"].items():
        check_close(value.numpy(), want["params"][name].numpy(), f"train_step: {name} at the end ({setting})",
                    rtol=1e-3, atol=1e-5)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "epoch_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 6. One epoch
#
# An epoch visits the training examples once, in an order that must be new at every epoch. The loop takes the
# order from a `torch.utils.data.DistributedSampler`, which section 9 takes apart: it shuffles with a generator
# seeded with `seed + epoch`, where `epoch` is what `sampler.set_epoch(epoch)` last set. Without that call the
# epoch stays 0, and every epoch visits the examples in the same order.
#
# **Task.** Write `train_one_epoch(model, batches, optimizer, scheduler, scaler, epoch, max_norm,
# amp_dtype=None)`: put the model in train mode (the evaluation after the previous epoch may have left it in
# eval mode), call `batches.sampler.set_epoch(epoch)`, then call your `train_step` on every minibatch
# `(x, y)` of `batches` (a `DeviceBatches`, or a `DataLoader` with a sampler). Return the mean training loss of
# the epoch as a `float`: the mean of the steps' losses weighted by their numbers of examples, summed on the
# device and read with **one** `.item()` at the end.

# %% nbgrader={"grade": false, "grade_id": "epoch_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def train_one_epoch(model, batches, optimizer, scheduler, scaler, epoch, max_norm, amp_dtype=None):
    """One epoch of train_step over batches, in train mode, with the sampler's epoch set.
    Returns the example-weighted mean training loss (float)."""
    ### BEGIN SOLUTION
    model.train()
    batches.sampler.set_epoch(epoch)
    loss_sum, count = None, 0
    for x, y in batches:
        loss, _ = train_step(model, x, y, optimizer, scheduler, scaler, max_norm, amp_dtype)
        weighted = loss.double() * len(y)
        loss_sum = weighted if loss_sum is None else loss_sum + weighted
        count += len(y)
    return loss_sum.item() / count
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "epoch_drivers", "locked": true, "schema_version": 3, "solution": false, "task": false}
class RecordingSampler(DistributedSampler):
    """A DistributedSampler that records set_epoch calls and the orders it hands out."""

    def __init__(self, *args, watch=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.epochs_set, self.orders, self.watch = [], [], watch

    def set_epoch(self, epoch):
        self.epochs_set.append(epoch)
        super().set_epoch(epoch)

    def __iter__(self):
        if self.watch is not None:
            self.watch.inside += 1
        try:
            order = list(super().__iter__())
        finally:
            if self.watch is not None:
                self.watch.inside -= 1
        self.orders.append(order)
        return iter(order)


def epoch_probe(seed, x, y, batch_size, epochs, world_size=1, rank=0, data_seed=0, max_norm=1.0):
    """Your train_one_epoch for epochs 0, 1, ... on a fresh make_model(seed), put in eval mode before each epoch
    (as an evaluation that forgot to restore it would), on DeviceBatches(x, y, batch_size, sampler) with a
    DistributedSampler(num_replicas=world_size, rank=rank, shuffle=True, seed=data_seed).
    Returns, per epoch, what it returned, the set_epoch calls, the orders handed out, the train_step calls
    (examples and loss of each), the modes seen in the forward passes, and the count of .item() and the like."""
    watch = _Watch()
    model = make_model(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    sampler = RecordingSampler(range(len(x)), num_replicas=world_size, rank=rank, shuffle=True, seed=data_seed,
                               watch=watch)
    batches = DeviceBatches(torch.as_tensor(x), torch.as_tensor(y), batch_size, sampler)
    modes, calls = [], []
    hooks = [model.register_forward_pre_hook(lambda m, i: modes[-1].append(m.training)),
             optimizer.register_step_pre_hook(lambda o, a, k: setattr(watch, "inside", watch.inside + 1)),
             optimizer.register_step_post_hook(lambda o, a, k: setattr(watch, "inside", watch.inside - 1))]
    student_step = globals()["train_step"]

    def recording_step(*args, **kwargs):
        out = student_step(*args, **kwargs)
        y_ = args[2] if len(args) > 2 else kwargs.get("y")
        loss = out[0] if isinstance(out, (tuple, list)) and len(out) == 2 else None
        calls[-1].append((len(y_), loss.detach().clone() if isinstance(loss, torch.Tensor) else None))
        return out

    report = []
    globals()["train_step"] = recording_step
    try:
        for epoch in range(epochs):
            model.eval()
            modes.append([])
            calls.append([])
            epochs_before, orders_before = len(sampler.epochs_set), len(sampler.orders)
            with watch:
                watch.count = 0
                returned = train_one_epoch(model, batches, optimizer, scheduler, scaler, epoch, max_norm)
            report.append({"returned": returned, "set_epoch": sampler.epochs_set[epochs_before:],
                           "orders": sampler.orders[orders_before:], "item_calls": watch.count,
                           "modes": modes[-1],
                           "steps": [(n, None if loss is None else float(loss)) for n, loss in calls[-1]]})
    finally:
        globals()["train_step"] = student_step
        for hook in hooks:
            hook.remove()
    return report


# %% nbgrader={"grade": true, "grade_id": "test_train_one_epoch", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
import math

import numpy as np
from torch.utils.data import DistributedSampler


def sampler_orders(n, epochs, world_size=1, rank=0, seed=0):
    """The orders PyTorch's DistributedSampler gives for epochs 0, 1, ... when set_epoch is called."""
    sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    orders = []
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        orders.append(list(sampler))
    return orders


def check_epochs(report, n, batch_size, epochs, world_size=1, rank=0, data_seed=0):
    want_orders = sampler_orders(n, epochs, world_size, rank, data_seed)
    assert len(report) == epochs, f"epoch_probe ran {len(report)} epochs"
    for epoch, r in enumerate(report):
        where = f"train_one_epoch, epoch {epoch} ({n} examples, batch_size {batch_size}, rank {rank} of {world_size})"
        assert r["set_epoch"] and r["set_epoch"][-1] == epoch, \
            f"{where}: call batches.sampler.set_epoch({epoch}) before the batches; calls seen: {r['set_epoch']}"
        assert r["orders"] and r["orders"][-1] == want_orders[epoch], \
            f"{where}: the examples were not visited in the order of the sampler's epoch {epoch}"
        steps = r["steps"]
        assert len(steps) == len(want_orders[epoch]) // batch_size, \
            f"{where}: train_step should be called once per batch ({len(want_orders[epoch]) // batch_size} " \
            f"batches), was called {len(steps)} times"
        assert all(loss is not None for _, loss in steps), f"{where}: train_step's result was not (loss, grad_norm)"
        assert r["modes"] and all(r["modes"]), f"{where}: the model ran in eval mode: call model.train() first"
        mean = sum(size * loss for size, loss in steps) / sum(size for size, _ in steps)
        assert isinstance(r["returned"], float) and math.isclose(r["returned"], mean, rel_tol=1e-6), \
            f"{where}: should return the example-weighted mean of the steps' losses ({mean}), got {r['returned']!r}"
        assert r["item_calls"] <= 2, \
            f"{where}: {r['item_calls']} calls of .item()/.tolist()/float(); sum on the device, read once per epoch"
    assert report[0]["orders"][-1] != report[1]["orders"][-1], "train_one_epoch: the order should change every epoch"


rng_t = np.random.default_rng(8105)
x_t = rng_t.normal(size=(96, 40)).astype(np.float32)
y_t = rng_t.integers(0, 10, size=96)
report = epoch_probe(0, x_t, y_t, batch_size=16, epochs=2)
check_epochs(report, 96, 16, 2)
print("train_one_epoch: mean losses", [round(r["returned"], 4) for r in report])
### BEGIN HIDDEN TESTS
x_h = rng_t.normal(size=(150, 40)).astype(np.float32)
y_h = rng_t.integers(0, 10, size=150)
for seed, batch_size, world_size, rank, data_seed in [(1, 12, 2, 1, 5), (2, 20, 3, 0, 7), (3, 9, 1, 0, 11)]:
    report = epoch_probe(seed, x_h, y_h, batch_size, epochs=3, world_size=world_size, rank=rank, data_seed=data_seed)
    check_epochs(report, 150, batch_size, 3, world_size, rank, data_seed)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "checkpoint_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 7. Checkpoints that resume the same run
#
# A long run gets interrupted: a preempted cloud machine, a time limit on a cluster, a crash. A checkpoint must
# hold everything the rest of the run depends on, so that the resumed run continues **exactly** as the
# uninterrupted one would have:
#
# * the model's `state_dict()` (parameters **and** buffers: batch norm's running statistics);
# * the optimizer's (AdamW's moments and step counts: without them the resumed run restarts its moment estimates
#   from zero, and its first steps move every weight by about the learning rate);
# * the scheduler's (where the schedule is; without it the warmup starts over);
# * the gradient scaler's (its factor);
# * the random number generators' states: PyTorch's CPU generator (`torch.get_rng_state()`, which dropout draws
#   from) and, on CUDA, the GPU's (`torch.cuda.get_rng_state_all()`); the order of the examples comes from the
#   sampler's seed and the epoch, so it needs nothing more;
# * the number of epochs completed and the best validation metric so far.
#
# `state_dict()` returns the **live** tensors of the model and the optimizer, not copies: a checkpoint kept in
# memory while training goes on would change with the model. Copy them (`copy.deepcopy`). The checkpoint holds
# only tensors, numbers, strings, lists and dicts, so that `torch.load(path, weights_only=True)`, which refuses
# to run arbitrary code from a file, can read it back.
#
# **Task.** Write `make_checkpoint(model, optimizer, scheduler, scaler, epoch, best_metric)` that returns a new
# dict with the keys `"model"`, `"optimizer"`, `"scheduler"`, `"scaler"` (deep copies of their `state_dict()`s),
# `"rng"` (a dict: `"torch"`, the CPU generator's state; `"cuda"`, the list of the GPUs' states, empty without
# CUDA), `"epoch"` and `"best_metric"`. Write `restore_checkpoint(checkpoint, model, optimizer, scheduler,
# scaler)` that loads the four states into the objects it is given, sets the random generators' states, and
# returns `(epoch, best_metric)`.

# %% nbgrader={"grade": false, "grade_id": "checkpoint_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def make_checkpoint(model, optimizer, scheduler, scaler, epoch, best_metric):
    """A snapshot of the training state (copies, not live tensors), as a dict of plain data."""
    ### BEGIN SOLUTION
    return {
        "model": copy.deepcopy(model.state_dict()),
        "optimizer": copy.deepcopy(optimizer.state_dict()),
        "scheduler": copy.deepcopy(scheduler.state_dict()),
        "scaler": copy.deepcopy(scaler.state_dict()),
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        "epoch": epoch,
        "best_metric": best_metric,
    }
    ### END SOLUTION


def restore_checkpoint(checkpoint, model, optimizer, scheduler, scaler):
    """Load a checkpoint of make_checkpoint into the objects and the random generators. Returns (epoch, best_metric)."""
    ### BEGIN SOLUTION
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    scaler.load_state_dict(checkpoint["scaler"])
    torch.set_rng_state(checkpoint["rng"]["torch"].cpu())
    if checkpoint["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([state.cpu() for state in checkpoint["rng"]["cuda"]])
    return checkpoint["epoch"], checkpoint["best_metric"]
    ### END SOLUTION


# %% [markdown] nbgrader={"grade": false, "grade_id": "fit_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# `fit` (below) puts your pieces together. It trains `make_model(seed)` with `make_optimizer` (a warmup over
# the first 5 % of the steps), `train_one_epoch` and `evaluate` once per epoch, and keeps the best validation
# accuracy. With a `checkpoint_path` it saves `make_checkpoint(...)` after every epoch, **atomically**: it
# writes a temporary file and renames it over the old one, so that a crash in the middle of writing leaves the
# previous checkpoint intact. With `resume=True` it starts from the checkpoint instead; `stop_after_epoch`
# stops the run early, as an interruption would. (With several processes, only rank 0 would write it.)

# %% nbgrader={"grade": false, "grade_id": "fit_code", "locked": true, "schema_version": 3, "solution": false, "task": false}
def fit(data, *, epochs, batch_size=128, lr=3e-3, weight_decay=0.05, max_norm=1.0, seed=0, device="cpu",
        amp=False, scaler_enabled=None, scaler_growth_interval=2000, checkpoint_path=None, resume=False,
        stop_after_epoch=None, progress=False):
    """Train make_model(seed) on data = (x_train, y_train, x_val, y_val) with your pieces.
    amp: autocast with amp_policy's dtype; scaler_enabled: None follows amp_policy.
    Returns {"model", "history": [dict per epoch], "best_metric", "scale"}."""
    where = torch.device(device)
    x, y, x_check, y_check = (torch.as_tensor(a).to(where) for a in data)
    model = make_model(seed).to(where)
    sampler = DistributedSampler(range(len(x)), num_replicas=1, rank=0, shuffle=True, seed=seed)
    batches = DeviceBatches(x, y, batch_size, sampler, drop_last=True)
    total_steps = epochs * len(batches)
    optimizer, scheduler = make_optimizer(model, lr, weight_decay, max(1, round(0.05 * total_steps)), total_steps)
    amp_dtype, use_scaler = amp_policy(where.type) if amp else (None, False)
    scaler = torch.amp.GradScaler(where.type, enabled=use_scaler if scaler_enabled is None else scaler_enabled,
                                  growth_interval=scaler_growth_interval)
    start, best = 0, 0.0
    if resume:
        saved = torch.load(checkpoint_path, map_location="cpu", weights_only=True)  # load_state_dict moves it
        start, best = restore_checkpoint(saved, model, optimizer, scheduler, scaler)
    history = []
    bar = tqdm(range(start, epochs), desc="epochs", disable=not progress)
    for epoch in bar:
        started = time.perf_counter()
        train_loss = train_one_epoch(model, batches, optimizer, scheduler, scaler, epoch, max_norm, amp_dtype)
        metrics = evaluate(model, x_check, y_check)
        best = max(best, metrics["accuracy"])
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": metrics["loss"],
                        "val_accuracy": metrics["accuracy"], "lr": scheduler.get_last_lr()[0],
                        "seconds": time.perf_counter() - started})
        bar.set_postfix(train_loss=f"{train_loss:.3f}", val_accuracy=f"{metrics['accuracy']:.3f}")
        if checkpoint_path is not None:
            state = make_checkpoint(model, optimizer, scheduler, scaler, epoch + 1, best)
            torch.save(state, checkpoint_path + ".tmp")
            os.replace(checkpoint_path + ".tmp", checkpoint_path)
        if stop_after_epoch is not None and epoch + 1 >= stop_after_epoch:
            break
    return {"model": model, "history": history, "best_metric": best, "scale": float(scaler.get_scale())}


# %% nbgrader={"grade": false, "grade_id": "checkpoint_drivers", "locked": true, "schema_version": 3, "solution": false, "task": false}
def checkpoint_probe(seed):
    """Train a fresh make_model(seed) a little (AdamW, LambdaLR, an enabled GradScaler on the CPU), take
    make_checkpoint(..., epoch=3, best_metric=0.625), train on, then restore_checkpoint into fresh objects.
    Returns the checkpoint as it is after the further training, copies of the states taken when it was made,
    what restore_checkpoint returned, and the states and random numbers after restoring."""
    draws = torch.Generator().manual_seed(seed)

    def build():
        model = make_model(seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0 / (1 + k))
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 8, growth_interval=1)
        return model, optimizer, scheduler, scaler

    def some_steps(model, optimizer, scheduler, scaler, k):
        model.train()
        for _ in range(k):
            model(torch.randn(8, 40, generator=draws))  # batch norm's statistics move, dropout draws numbers
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=draws)
            optimizer.step()
            scheduler.step()
            scaler.scale(torch.ones(()))
            scaler.update(new_scale=2.0 * scaler.get_scale())

    model, optimizer, scheduler, scaler = build()
    some_steps(model, optimizer, scheduler, scaler, 3)
    torch.manual_seed(seed + 100)
    parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    at_save = {**{key: plain(part.state_dict()) for key, part in parts.items()}, "torch_rng": torch.get_rng_state()}
    checkpoint = make_checkpoint(model, optimizer, scheduler, scaler, 3, 0.625)
    random_after_save = torch.rand(4)
    some_steps(model, optimizer, scheduler, scaler, 2)
    fresh = build()
    torch.manual_seed(seed + 200)
    returned = restore_checkpoint(checkpoint, *fresh)
    random_after_restore = torch.rand(4)
    restored = {key: plain(part.state_dict()) for key, part in zip(parts, fresh)}
    return {"checkpoint": plain(checkpoint), "at_save": at_save, "returned": plain(returned), "restored": restored,
            "random_after_save": random_after_save, "random_after_restore": random_after_restore}


def resume_probe(seed, data, epochs, stop_after, batch_size=64, lr=3e-3):
    """fit for `epochs` epochs straight through, and fit stopped after `stop_after` epochs then resumed from its
    checkpoint file (after the random generator was moved on, as in a new process), with an enabled scaler.
    Returns, for both, the history, the final state of the model, the best metric and the scaler's factor."""
    settings = dict(epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, device="cpu", scaler_enabled=True,
                    scaler_growth_interval=3)
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "checkpoint.pt")
        straight = fit(data, **settings)
        first = fit(data, **settings, checkpoint_path=path, stop_after_epoch=stop_after)
        torch.manual_seed(12345)
        resumed = fit(data, **settings, checkpoint_path=path, resume=True)
    for name, run in (("straight", straight), ("first", first), ("resumed", resumed)):
        out[name] = {"history": [{k: v for k, v in r.items() if k != "seconds"} for r in run["history"]],
                     "state": plain(run["model"].state_dict()), "best_metric": run["best_metric"],
                     "scale": run["scale"]}
    return out


# %% nbgrader={"grade": true, "grade_id": "test_checkpoint_contents", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import copy

import torch


def same(a, b, where):
    """Assert that two nested states are equal (tensors bit for bit)."""
    if isinstance(b, dict):
        assert isinstance(a, dict), f"{where}: expected a dict, got {type(a).__name__}"
        assert set(a) == set(b), f"{where}: keys {sorted(map(str, a))}, expected {sorted(map(str, b))}"
        for k in b:
            same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(b, (list, tuple)):
        assert isinstance(a, (list, tuple)) and len(a) == len(b), f"{where}: expected {len(b)} items, got {a!r:.100}"
        for i, (u, v) in enumerate(zip(a, b)):
            same(u, v, f"{where}[{i}]")
    elif isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and a.shape == b.shape and torch.equal(a.to(b.dtype), b), \
            f"{where}: the tensor differs from the state at the time of the checkpoint"
    else:
        assert a == b, f"{where}: {a!r:.100} instead of {b!r:.100}"


probe = checkpoint_probe(0)
checkpoint, at_save = probe["checkpoint"], probe["at_save"]
assert isinstance(checkpoint, dict), f"make_checkpoint should return a dict, returned {checkpoint!r:.100}"
missing = {"model", "optimizer", "scheduler", "scaler", "rng", "epoch", "best_metric"} - set(checkpoint)
assert not missing, f"make_checkpoint: the checkpoint lacks {sorted(missing)}"
assert checkpoint["epoch"] == 3 and checkpoint["best_metric"] == 0.625, "make_checkpoint: epoch and best_metric"
for key in ("model", "optimizer", "scheduler", "scaler"):
    same(checkpoint[key], at_save[key], f"make_checkpoint: checkpoint[{key!r}] after two more steps of training "
         "(copy the state_dict()s: they hold the live tensors)")
assert isinstance(checkpoint["rng"], dict) and torch.equal(checkpoint["rng"].get("torch"), at_save["torch_rng"]), \
    "make_checkpoint: checkpoint['rng']['torch'] should be torch.get_rng_state() at the time of the checkpoint"
assert list(checkpoint["rng"].get("cuda", [None])) == [] or torch.cuda.is_available(), \
    "make_checkpoint: checkpoint['rng']['cuda'] should be an empty list without CUDA"
assert tuple(probe["returned"]) == (3, 0.625), \
    f"restore_checkpoint should return (epoch, best_metric) = (3, 0.625), returned {probe['returned']!r}"
for key in ("model", "optimizer", "scheduler", "scaler"):
    same(probe["restored"][key], at_save[key], f"restore_checkpoint: the {key}'s state after restoring")
assert torch.equal(probe["random_after_restore"], probe["random_after_save"]), \
    "restore_checkpoint: the random generator should continue as it did after the checkpoint (torch.set_rng_state)"
print("make_checkpoint and restore_checkpoint: visible checks passed")
### BEGIN HIDDEN TESTS
probe = checkpoint_probe(7)
for key in ("model", "optimizer", "scheduler", "scaler"):
    same(probe["checkpoint"][key], probe["at_save"][key], f"make_checkpoint (seed 7): {key}")
    same(probe["restored"][key], probe["at_save"][key], f"restore_checkpoint (seed 7): {key}")
assert torch.equal(probe["random_after_restore"], probe["random_after_save"]), "restore_checkpoint (seed 7): RNG"
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "resume_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The next test runs `fit` on 1,024 examples three ways: three epochs straight through; two epochs, stopped;
# and the third epoch resumed from the checkpoint file, in a fresh model, optimizer, scheduler and scaler after
# the random generator has moved on (as in a new process). The resumed run must end where the straight run
# ends: the same parameters and batch norm statistics, the same losses, the same best accuracy and scaler
# factor. On a CPU the runs are deterministic, so "the same" means equal to rounding.

# %% nbgrader={"grade": true, "grade_id": "test_resume", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
import numpy as np
import torch
from nnkit.testing import check_close


def check_resume(out, epochs, stop_after, where):
    straight, first, resumed = out["straight"], out["first"], out["resumed"]
    assert len(first["history"]) == stop_after, f"{where}: the first run should stop after {stop_after} epochs"
    got_epochs = [r["epoch"] for r in resumed["history"]]
    assert got_epochs == list(range(stop_after + 1, epochs + 1)), \
        f"{where}: the resumed run should run epochs {list(range(stop_after + 1, epochs + 1))}, ran {got_epochs}" \
        " (restore_checkpoint returns the number of epochs completed)"
    for got, want in zip(resumed["history"], straight["history"][stop_after:]):
        for key in ("train_loss", "lr", "val_loss", "val_accuracy"):
            check_close(got[key], want[key], f"{where}: {key} of epoch {want['epoch']}, resumed and straight",
                        rtol=1e-6, atol=1e-9, hint="the optimizer, the scheduler and the random generator must "
                        "continue where they were")
    for name, value in straight["state"].items():
        check_close(resumed["state"][name].double().numpy(), value.double().numpy(),
                    f"{where}: {name} at the end, resumed and straight", rtol=1e-6, atol=1e-7)
    check_close(resumed["best_metric"], straight["best_metric"], f"{where}: best metric", rtol=1e-12)
    check_close(resumed["scale"], straight["scale"], f"{where}: the scaler's factor at the end",
                hint="save and load the scaler's state_dict too")


rng_t = np.random.default_rng(8106)
rows = rng_t.permutation(len(x_all))[:1024]
data_t = (x_all[rows], y_all[rows], x_val_all[:256], y_val_all[:256])
out = resume_probe(0, data_t, epochs=3, stop_after=2)
check_resume(out, 3, 2, "fit stopped after epoch 2 and resumed")
print("resume: val accuracy per epoch, straight", [round(r["val_accuracy"], 3) for r in out["straight"]["history"]],
      "resumed", [round(r["val_accuracy"], 3) for r in out["resumed"]["history"]])
### BEGIN HIDDEN TESTS
for seed, epochs, stop_after, batch_size in [(3, 4, 1, 32)]:
    rows = rng_t.permutation(len(x_all))[:640]
    out = resume_probe(seed, (x_all[rows], y_all[rows], x_val_all[256:512], y_val_all[256:512]), epochs=epochs,
                       stop_after=stop_after, batch_size=batch_size)
    check_resume(out, epochs, stop_after, f"fit (seed {seed}, batch_size {batch_size}) stopped after epoch "
                 f"{stop_after} of {epochs} and resumed")
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "run_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## The whole loop
#
# The cell below trains the network with your loop: AdamW at `lr=3e-3` with warmup and cosine decay, batches of
# 128, three epochs (on a CPU, on 20,000 examples), a checkpoint after every epoch. On a CUDA GPU it trains on
# all 100,000 examples, in `float16` with a gradient scaler. On a CPU it trains in `float32`: a CPU without 16-bit
# matrix units emulates `bfloat16` and runs slower with it (the optional cell of section 8 measures both on your
# machine).

# %% nbgrader={"grade": false, "grade_id": "run_code", "locked": true, "schema_version": 3, "solution": false, "task": false}
run_folder = os.path.join(tempfile.gettempdir(), "ch8-training-loop")  # the checkpoints of this run go here
os.makedirs(run_folder, exist_ok=True)
run = fit((x_train, y_train, x_val, y_val), epochs=3, batch_size=128, lr=3e-3, seed=0, device=device,
          amp=device.type == "cuda", checkpoint_path=os.path.join(run_folder, "checkpoint.pt"), progress=True)
for record in run["history"]:
    print(f"epoch {record['epoch']}: train loss {record['train_loss']:.3f}, val loss {record['val_loss']:.3f}, "
          f"val accuracy {record['val_accuracy']:.3f}, lr at the end {record['lr']:.2e} ({record['seconds']:.1f} s)")
print(f"best val accuracy {run['best_metric']:.3f}; checkpoint: "
      f"{os.path.getsize(os.path.join(run_folder, 'checkpoint.pt')) / 1e3:.0f} kB")

# %% [markdown] nbgrader={"grade": false, "grade_id": "curves_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The cell below (optional, not graded) plots the run's losses and the validation accuracy per epoch.

# %% tags=["optional"] nbgrader={"grade": false, "grade_id": "curves_plot", "locked": true, "schema_version": 3, "solution": false, "task": false}
epochs_seen = list(r["epoch"] for r in run["history"])
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
ax_loss.plot(epochs_seen, [r["train_loss"] for r in run["history"]], marker="o", label="training (mean over the epoch)")
ax_loss.plot(epochs_seen, [r["val_loss"] for r in run["history"]], marker="o", label="validation (end of the epoch)")
ax_loss.set(xlabel="epoch", ylabel="cross-entropy")
ax_loss.legend()
ax_acc.plot(epochs_seen, [r["val_accuracy"] for r in run["history"]], marker="o")
ax_acc.set(xlabel="epoch", ylabel="validation accuracy")
fig.tight_layout()
plt.show()

# %% [markdown] nbgrader={"grade": false, "grade_id": "clean_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 8. Checkpoints of wrapped models, and throughput
#
# `torch.compile(model)` returns a wrapper whose own module is the model, under the attribute `_orig_mod`; its
# `state_dict()` names every entry with that prefix (`_orig_mod.1.weight`). `DistributedDataParallel(model)`
# does the same with `module.` (`module.1.weight`), and a compiled DDP model has both. Such a state dict does
# not load into the plain model. The fix is to save `model._orig_mod.state_dict()` (or `model.module...`) in the
# first place; for checkpoints saved the other way, strip the prefixes when loading.
#
# **Task.** Write `clean_state_dict(state_dict)` that returns a **new** dict with the same values, whose keys
# have the prefixes `_orig_mod.` and `module.` removed from their **start**, as many times and in whatever order
# they appear there (`module._orig_mod.1.weight` → `1.weight`). A `module.` or `_orig_mod.` further inside a
# key (a submodule that happens to be called `module`) stays. Do not change the argument.

# %% nbgrader={"grade": false, "grade_id": "clean_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def clean_state_dict(state_dict):
    """A new dict with the leading "_orig_mod." and "module." prefixes removed from every key."""
    ### BEGIN SOLUTION
    prefixes = ("_orig_mod.", "module.")
    cleaned = {}
    for key, value in state_dict.items():
        while key.startswith(prefixes):
            key = key[len(next(p for p in prefixes if key.startswith(p))):]
        cleaned[key] = value
    return cleaned
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "clean_drivers", "locked": true, "schema_version": 3, "solution": false, "task": false}
def clean_state_dict_probe(state_dict):
    """clean_state_dict on state_dict: {"keys": its keys in order, "values": its values, "mapping": whether it is a
    dict (or another mapping), "changed": whether the argument's keys or values changed}."""
    given = dict(state_dict)
    keys_before, values_before = list(given), list(given.values())
    cleaned = clean_state_dict(given)
    changed = list(given) != keys_before or any(a is not b for a, b in zip(given.values(), values_before))
    is_mapping = hasattr(cleaned, "keys") and hasattr(cleaned, "__getitem__")
    return {"keys": list(cleaned.keys()) if is_mapping else None,
            "values": [cleaned[k] for k in cleaned.keys()] if is_mapping else None,
            "mapping": is_mapping, "changed": changed}


# %% nbgrader={"grade": true, "grade_id": "test_clean_state_dict", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import torch

state = make_model(0).state_dict()
compiled_like = {"_orig_mod." + k: v for k, v in state.items()}
probe = clean_state_dict_probe(compiled_like)
assert probe["mapping"], "clean_state_dict should return a dict"
assert probe["keys"] == list(state), f"clean_state_dict: keys {probe['keys'][:4]}..., expected {list(state)[:4]}..."
assert all(torch.equal(v, state[k]) for k, v in zip(probe["keys"], probe["values"])), \
    "clean_state_dict: the values should stay the same"
assert not probe["changed"], "clean_state_dict: do not change the dict you were given, return a new one"
fresh = make_model(1)
fresh.load_state_dict(dict(zip(probe["keys"], probe["values"])))  # strict: every key must match
for key, want in [("module._orig_mod.1.weight", "1.weight"), ("_orig_mod.module.2.running_mean", "2.running_mean"),
                  ("module.module.3.bias", "3.bias"), ("4.module.weight", "4.module.weight"),
                  ("module.out.bias", "out.bias")]:
    got = clean_state_dict_probe({key: torch.zeros(1)})["keys"]
    assert got == [want], f"clean_state_dict: the key {key!r} became {got}, expected {want!r}"
print("clean_state_dict: visible checks passed")
### BEGIN HIDDEN TESTS
import torch.nn as nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = nn.Linear(3, 2)
        self.out = nn.BatchNorm1d(2)
        self.dense = nn.ModuleDict({"module": nn.Linear(2, 1)})     # keys "dense.module...." keep it
        self.wrap = nn.ModuleDict({"_orig_mod": nn.Linear(1, 1)})   # keys "wrap._orig_mod...." keep it


inner = Inner()
state = inner.state_dict()
for prefixes in (["_orig_mod."], ["module."], ["module.", "_orig_mod."], ["_orig_mod.", "module."],
                 ["module.", "module."], []):
    wrapped = dict(state)
    for prefix in reversed(prefixes):
        wrapped = {prefix + k: v for k, v in wrapped.items()}
    expected = dict(wrapped)
    for prefix in prefixes:  # PyTorch's own helper, once per prefix, outermost first
        consume_prefix_in_state_dict_if_present(expected, prefix)
    assert list(expected) == list(state)
    probe = clean_state_dict_probe(wrapped)
    assert probe["keys"] == list(expected), \
        f"clean_state_dict with prefixes {prefixes}: {probe['keys']}, expected {list(expected)}"
    assert all(torch.equal(v, state[k]) for k, v in zip(probe["keys"], probe["values"])), \
        f"clean_state_dict with prefixes {prefixes}: values changed"
    assert not probe["changed"], f"clean_state_dict with prefixes {prefixes}: the argument was changed"
    Inner().load_state_dict(dict(zip(probe["keys"], probe["values"])))
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "throughput_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Throughput.** How many examples per second does the loop train? Two things make a naive measurement wrong:
#
# * **warm-up**: the first steps are slow (memory allocation, cuDNN choosing its algorithms, `torch.compile`
#   compiling): run some steps before starting the clock;
# * **asynchrony**: on a GPU, a call like `train_step(...)` only *queues* the work and returns at once; the clock
#   read right after the loop measures how fast Python queued the steps, not how fast the GPU ran them. Call
#   `torch.cuda.synchronize()` (wait for all queued work) before reading the clock, at the start and at the end.
#
# **Task.** Write `measure_throughput(step, batch_size, steps, warmup, clock=time.perf_counter,
# synchronize=None)`: call `step()` `warmup` times (not timed), then `steps` times between two readings of
# `clock()`, calling `synchronize()` (when it is given) right before **each** reading. Return the examples per
# second, `steps * batch_size` divided by the time between the readings, as a float.

# %% nbgrader={"grade": false, "grade_id": "throughput_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def measure_throughput(step, batch_size, steps, warmup, clock=time.perf_counter, synchronize=None):
    """Examples per second of step() over `steps` timed calls after `warmup` untimed ones."""
    ### BEGIN SOLUTION
    for _ in range(warmup):
        step()
    if synchronize is not None:
        synchronize()
    start = clock()
    for _ in range(steps):
        step()
    if synchronize is not None:
        synchronize()
    return float(steps * batch_size / (clock() - start))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_measure_throughput", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math


class FakeGPU:
    """A device that runs each step for `step_time` seconds after it is queued, while the host moves on at once.
    step() queues one; synchronize() waits for the queue; clock() reads the host's time."""

    def __init__(self, step_time, host_time=0.001):
        self.step_time, self.host_time = step_time, host_time
        self.now, self.busy_until, self.events = 0.0, 0.0, []

    def step(self):
        self.events.append("step")
        self.busy_until = max(self.busy_until, self.now) + self.step_time
        self.now += self.host_time

    def synchronize(self):
        self.events.append("synchronize")
        self.now = max(self.now, self.busy_until)

    def clock(self):
        self.events.append("clock")
        return self.now


gpu = FakeGPU(step_time=0.25)
rate = measure_throughput(gpu.step, batch_size=32, steps=4, warmup=2, clock=gpu.clock, synchronize=gpu.synchronize)
print("events:", gpu.events)
assert gpu.events.count("step") == 6, f"measure_throughput: 2 warm-up and 4 timed steps expected, events {gpu.events}"
assert isinstance(rate, float) and math.isclose(rate, 32 / 0.25, rel_tol=1e-9), \
    f"measure_throughput: 4 steps of 32 examples, 0.25 s each, are {32 / 0.25} examples/s; got {rate!r}. " \
    f"Events: {gpu.events}"
clocks = [k for k, e in enumerate(gpu.events) if e == "clock"]
assert all(k > 0 and gpu.events[k - 1] == "synchronize" for k in clocks), \
    f"measure_throughput: call synchronize() right before each reading of the clock: {gpu.events}"
assert gpu.events[:gpu.events.index("clock")].count("step") == 2, \
    f"measure_throughput: the 2 warm-up steps come before the clock is first read: {gpu.events}"
print(f"measure_throughput: {rate:.1f} examples/s; visible checks passed")
### BEGIN HIDDEN TESTS
for step_time, batch_size, steps, warmup in [(0.01, 100, 7, 3), (2.5, 8, 3, 0), (0.4, 64, 10, 5)]:
    gpu = FakeGPU(step_time, host_time=step_time / 50)
    rate = measure_throughput(gpu.step, batch_size, steps, warmup, clock=gpu.clock, synchronize=gpu.synchronize)
    assert math.isclose(rate, batch_size / step_time, rel_tol=1e-9), \
        f"measure_throughput (step time {step_time}, batch {batch_size}, {steps} steps, warm-up {warmup}): " \
        f"{rate}, expected {batch_size / step_time}; events {gpu.events}"
    assert gpu.events.count("step") == steps + warmup
# without a synchronize function (a CPU): the clock alone, with steps that take time on the host
ticks = {"now": 0.0, "steps": 0}


def host_step():
    ticks["now"] += 0.5
    ticks["steps"] += 1


rate = measure_throughput(host_step, 10, 6, 2, clock=lambda: ticks["now"])
assert math.isclose(rate, 20.0, rel_tol=1e-9) and ticks["steps"] == 8, \
    f"measure_throughput without synchronize: {rate} examples/s after {ticks['steps']} steps; expected 20.0 after 8"
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "speed_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# The cell below (optional, not graded) measures your `train_step` on this machine's device: examples per second
# in `float32` and with autocast (bfloat16 on a CPU, float16 with a scaler on CUDA), batches of 256.

# %% tags=["optional"] nbgrader={"grade": false, "grade_id": "speed_code", "locked": true, "schema_version": 3, "solution": false, "task": false}
def step_throughput(use_amp, batch_size=256, steps=20, warmup=5):
    model = make_model(0).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1.0)
    amp_dtype, use_scaler = amp_policy(device.type) if use_amp else (None, False)
    scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
    xb, yb = x_train[:batch_size].to(device), y_train[:batch_size].to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    return measure_throughput(lambda: train_step(model, xb, yb, optimizer, scheduler, scaler, 1.0, amp_dtype),
                              batch_size, steps, warmup, synchronize=sync)


for use_amp in (False, True):
    label = "float32" if not use_amp else f"autocast {amp_policy(device.type)[0]}"
    print(f"{device.type}, {label}: {step_throughput(use_amp):,.0f} examples/s")

# %% [markdown] nbgrader={"grade": false, "grade_id": "ddp_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## 9. Several processes
#
# **Distributed data parallelism.** `torchrun --standalone --nproc_per_node=N train.py` starts $N$ copies of a
# script on one machine (one per GPU; on a CPU they share its cores) and gives each its **rank** $0 \dots N-1$
# through environment variables. Each process builds the same model and wraps it in
# `torch.nn.parallel.DistributedDataParallel`, which copies rank 0's parameters to all at the start and, during
# `backward`, averages the gradients over the processes (an *all-reduce*). Every process then takes the same
# optimizer step, so the copies stay identical, and $N$ processes with batches of $B$ take the steps of one
# process with batches of $NB$ (up to rounding, for a model without statistics over the batch or random masks:
# batch norm normalizes each process's batch on its own unless it is converted to `SyncBatchNorm`, and each
# process draws its own dropout masks). The processes talk through a backend: NCCL between GPUs, Gloo on CPUs.
# The course's example runs on two CPU processes:
#
# ```
# torchrun --standalone --nproc_per_node=2 -m nnkit.ddp_example --epochs 2
# ```
#
# Each process must train on its **own** share of the examples. `DistributedSampler(dataset, num_replicas=N,
# rank=r, shuffle=True, seed=s, drop_last=False)` gives rank $r$ its share of an epoch:
#
# 1. the order: with `shuffle`, `torch.randperm(n, generator=g)` with `g = torch.Generator()` seeded by
#    `g.manual_seed(seed + epoch)` (so every process draws the same permutation, and each epoch a new one);
#    without it, $0, 1, \dots, n-1$;
# 2. equal shares: each rank gets `num_samples` examples, $\lceil n / N \rceil$; with `drop_last=True`,
#    $\lceil (n - N) / N \rceil$ when $N$ does not divide $n$ (and $n / N$ when it does). Without `drop_last`
#    the order is **padded** by repeating its first entries (again from the start, as many times as needed when
#    it is shorter than the padding) up to `num_samples * N`; with `drop_last` it is cut to that length;
# 3. rank $r$ takes every $N$-th entry starting at position $r$: positions $r, r + N, r + 2N, \dots$
#
# **Task.** Write `shard_indices(n, rank, world_size, epoch, seed=0, shuffle=True, drop_last=False)` that
# returns rank `rank`'s list of example indices (Python ints) for epoch `epoch`, exactly as `DistributedSampler`
# gives it after `set_epoch(epoch)`.

# %% nbgrader={"grade": false, "grade_id": "shard_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def shard_indices(n, rank, world_size, epoch, seed=0, shuffle=True, drop_last=False):
    """The indices DistributedSampler(range(n), world_size, rank, shuffle, seed, drop_last) yields at `epoch`."""
    ### BEGIN SOLUTION
    if shuffle:
        epoch_generator = torch.Generator()
        epoch_generator.manual_seed(seed + epoch)
        order = torch.randperm(n, generator=epoch_generator).tolist()
    else:
        order = list(range(n))
    if drop_last and n % world_size != 0:
        per_rank = math.ceil((n - world_size) / world_size)
    else:
        per_rank = math.ceil(n / world_size)
    total = per_rank * world_size
    if drop_last:
        order = order[:total]
    else:
        padding = total - len(order)
        order = order + (order * math.ceil(padding / len(order)))[:padding]
    return order[rank:total:world_size]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_shard_indices", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from torch.utils.data import DistributedSampler

# 10 examples in order over 3 ranks: padded with the first 2 to 12, then every third
for rank, want in enumerate([[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]):
    got = shard_indices(10, rank, 3, epoch=0, shuffle=False)
    assert list(got) == want, f"shard_indices(10, rank={rank}, world_size=3, shuffle=False): {got}, expected {want}"
# with drop_last: ceil((10 - 3) / 3) = 3 each, the first 9
for rank, want in enumerate([[0, 3, 6], [1, 4, 7], [2, 5, 8]]):
    got = shard_indices(10, rank, 3, epoch=0, shuffle=False, drop_last=True)
    assert list(got) == want, f"shard_indices(10, rank={rank}, 3, drop_last=True, shuffle=False): {got}, expected {want}"


def sampler_indices(n, rank, world_size, epoch, seed=0, shuffle=True, drop_last=False):
    sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed,
                                 drop_last=drop_last)
    sampler.set_epoch(epoch)
    return list(sampler)


for epoch in (0, 1):
    got = shard_indices(20, 1, 4, epoch=epoch, seed=3)
    want = sampler_indices(20, 1, 4, epoch, seed=3)
    assert all(type(i) is int for i in got), "shard_indices should return Python ints"
    assert list(got) == want, f"shard_indices(20, rank 1, 4 ranks, epoch {epoch}, seed 3): {got}, DistributedSampler " \
                              f"gives {want}"
assert shard_indices(20, 1, 4, 0, seed=3) != shard_indices(20, 1, 4, 1, seed=3), "the order should change with the epoch"
print("shard_indices: visible checks passed")
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(8109)
cases = [(2, 5, False, True), (3, 5, False, False), (7, 2, True, True), (101, 4, True, False), (64, 8, True, True),
         (1, 3, True, False), (17, 17, False, False), (50, 3, True, True)]
for n, world_size, drop_last, shuffle in cases:
    seed, epoch = int(rng_t.integers(0, 1000)), int(rng_t.integers(0, 10))
    shares = []
    for rank in range(world_size):
        got = shard_indices(n, rank, world_size, epoch, seed, shuffle, drop_last)
        want = sampler_indices(n, rank, world_size, epoch, seed, shuffle, drop_last)
        assert list(got) == want, f"shard_indices(n={n}, rank={rank}, world_size={world_size}, epoch={epoch}, " \
                                  f"seed={seed}, shuffle={shuffle}, drop_last={drop_last}): {got}, expected {want}"
        shares.append(list(got))
    assert len({len(s) for s in shares}) == 1, "every rank gets as many indices"
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "reduce_md", "locked": true, "schema_version": 3, "solution": false, "task": false}
# **Metrics over the processes.** Each process sees only its share, so its loss and accuracy are its own. The
# metric of the whole set needs the **sums** from every process: `torch.distributed.all_reduce(t)` replaces a
# tensor `t` on every process by the sum of all processes' `t` (in place). Averaging the processes' means would
# be wrong whenever the shares have different sizes (a validation set split without padding, as
# `nnkit.ddp_example` does, so that no example is counted twice).
#
# **Task.** Write `reduce_metrics(loss_sum, correct, count, device="cpu")`: from this process's summed loss,
# number of correct predictions and number of examples (numbers or 0-d tensors), return
# `{"loss": float, "accuracy": float, "count": int}` for all processes together. When a process group is running
# (`dist.is_available() and dist.is_initialized()`), put the three numbers in one `float64` tensor on `device`,
# `dist.all_reduce` it (the default operation, a sum) and divide; without one, divide this process's numbers.

# %% nbgrader={"grade": false, "grade_id": "reduce_sol", "locked": false, "schema_version": 3, "solution": true, "task": false}
def reduce_metrics(loss_sum, correct, count, device="cpu"):
    """Mean loss and accuracy over all processes from each process's sums. Returns {"loss", "accuracy", "count"}."""
    ### BEGIN SOLUTION
    totals = torch.tensor([float(loss_sum), float(correct), float(count)], dtype=torch.float64, device=device)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(totals)
    loss_total, correct_total, count_total = totals.tolist()
    return {"loss": loss_total / count_total, "accuracy": correct_total / count_total, "count": int(count_total)}
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "reduce_drivers", "locked": true, "schema_version": 3, "solution": false, "task": false}
class _Done:
    """What an asynchronous collective returns: wait() until it is done (here it already is)."""

    def wait(self, timeout=None):
        return True

    def is_completed(self):
        return True


def reduce_across_fake_ranks(per_rank):
    """Run reduce_metrics(*per_rank[r]) for every rank r at once, in threads, with torch.distributed replaced by a
    stand-in whose all_reduce sums a tensor over the threads in place, as a process group does over processes.
    Returns {"results": [what each rank got], "all_reduce_calls": [how many calls each rank made]}."""
    world = len(per_rank)
    barrier = threading.Barrier(world, timeout=30)
    slots, calls, errors, results = [None] * world, [0] * world, [None] * world, [None] * world
    here = threading.local()

    def all_reduce(tensor, op=dist.ReduceOp.SUM, group=None, async_op=False):
        if op != dist.ReduceOp.SUM:
            raise ValueError("all_reduce here supports the sum only (Gloo has no average either)")
        calls[here.rank] += 1
        slots[here.rank] = tensor.detach().clone()
        barrier.wait()
        total = slots[0].clone()
        for other in slots[1:]:
            total += other
        barrier.wait()
        tensor.copy_(total)
        return _Done() if async_op else None

    stand_ins = {"is_available": lambda: True, "is_initialized": lambda: True,
                 "get_world_size": lambda group=None: world, "get_rank": lambda group=None: here.rank,
                 "all_reduce": all_reduce}
    saved = {name: getattr(dist, name) for name in stand_ins}

    def run(rank):
        here.rank = rank
        try:
            results[rank] = reduce_metrics(*per_rank[rank])
        except BaseException as exc:
            errors[rank] = exc
            barrier.abort()

    for name, value in stand_ins.items():
        setattr(dist, name, value)
    try:
        threads = [threading.Thread(target=run, args=(rank,)) for rank in range(world)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for name, value in saved.items():
            setattr(dist, name, value)
    first = next((e for e in errors if e is not None and not isinstance(e, threading.BrokenBarrierError)),
                 next((e for e in errors if e is not None), None))
    if first is not None:
        raise RuntimeError(f"reduce_metrics failed on a rank: {type(first).__name__}: {first}")
    return {"results": results, "all_reduce_calls": calls}


# %% nbgrader={"grade": true, "grade_id": "test_reduce_metrics", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math

alone = reduce_metrics(12.0, 7, 10)
assert isinstance(alone, dict) and isinstance(alone.get("loss"), float) and isinstance(alone.get("accuracy"), float) \
    and alone.get("count") == 10, f"reduce_metrics(12.0, 7, 10) without a process group: {alone!r}"
assert math.isclose(alone["loss"], 1.2) and math.isclose(alone["accuracy"], 0.7), f"reduce_metrics alone: {alone}"
# three ranks with shares of 25, 10 and 45 examples
ranks = [(30.0, 20, 25), (10.0, 9, 10), (50.5, 40, 45)]
out = reduce_across_fake_ranks(ranks)
for rank, got in enumerate(out["results"]):
    assert math.isclose(got["loss"], 90.5 / 80) and math.isclose(got["accuracy"], 69 / 80) and got["count"] == 80, \
        f"reduce_metrics on rank {rank} of 3: {got}; expected loss {90.5 / 80:.6f}, accuracy {69 / 80}, count 80 " \
        "(sum the three numbers over the ranks, then divide; the mean of the ranks' means is wrong)"
assert all(c >= 1 for c in out["all_reduce_calls"]), f"reduce_metrics should call dist.all_reduce: {out}"
print("reduce_metrics:", out["results"][0])
### BEGIN HIDDEN TESTS
rng_t = np.random.default_rng(8110)
for world in (2, 4):
    counts = rng_t.integers(1, 200, size=world)
    ranks = [(float(rng_t.uniform(0, 3) * c), int(rng_t.integers(0, c + 1)), int(c)) for c in counts]
    out = reduce_across_fake_ranks(ranks)
    total = sum(r[2] for r in ranks)
    for rank, got in enumerate(out["results"]):
        assert math.isclose(got["loss"], sum(r[0] for r in ranks) / total, rel_tol=1e-12) and \
            math.isclose(got["accuracy"], sum(r[1] for r in ranks) / total, rel_tol=1e-12) and got["count"] == total, \
            f"reduce_metrics, rank {rank} of {world} with shares {list(counts)}: {got}"
got = reduce_metrics(torch.tensor(6.5), torch.tensor(3), torch.tensor(4))
assert math.isclose(got["loss"], 6.5 / 4) and math.isclose(got["accuracy"], 0.75) and got["count"] == 4, \
    f"reduce_metrics with 0-d tensors: {got}"
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "refs", "locked": true, "schema_version": 3, "solution": false, "task": false}
# ## References
#
# * S. Greydanus. *Scaling down deep learning* (MNIST-1D). arXiv:2011.14439, 2020.
# * P. Micikevicius et al. *Mixed precision training.* ICLR 2018.
# * I. Loshchilov, F. Hutter. *Decoupled weight decay regularization.* ICLR 2019; *SGDR: stochastic gradient
#   descent with warm restarts.* ICLR 2017.
# * P. Goyal et al. *Accurate, large minibatch SGD: training ImageNet in 1 hour* (linear warmup). arXiv:1706.02677,
#   2017.
# * S. Li et al. *PyTorch Distributed: experiences on accelerating data parallel training.* VLDB 2020.
# * PyTorch documentation: automatic mixed precision (`torch.amp`), `torch.optim.lr_scheduler`, saving and
#   loading a general checkpoint, `DistributedDataParallel`, `torchrun`, `DistributedSampler`.
