"""Chapter 8's data-parallel example on two processes: ``torchrun --standalone --nproc_per_node=2``
with the Gloo backend on the CPU (``python -m nnkit.ddp_example``).

After training, the two ranks hold identical parameters (DDP averages the gradients, so both take
the same steps), and those parameters are the ones a single process reaches when it trains on the
two ranks' batches put together (GroupNorm and no dropout: nothing in the model couples examples
of a batch or draws random numbers, so the gradient of the combined batch's mean loss is the
average of the ranks' gradients). Rank 0, and only rank 0, writes the checkpoint, whose model
state loads into a plain (unwrapped) model. A second run, with batch norm and dropout, no longer
matches one process but still keeps the ranks identical, running statistics included (DDP's
forward copies rank 0's buffers to every rank).

The tests skip only if torchrun cannot start two processes that talk to each other here.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DistributedSampler

from nnkit.data import load_mnist1d_large
from nnkit.ddp_example import make_cnn

ROOT = Path(__file__).resolve().parent.parent
WORLD = 2
COMMON = ["--epochs", "2", "--n-train", "2048", "--n-val", "512", "--batch-size", "32", "--seed", "3",
          "--data-seed", "1", "--max-norm", "1.0", "--save-params"]
EQUIVALENCE = ["--norm", "group", "--dropout", "0", "--optimizer", "sgd", "--lr", "0.05"]
BATCHNORM = ["--norm", "batch", "--dropout", "0.1", "--optimizer", "adamw", "--lr", "0.003"]

PROBE = """
import torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.ones(1)
dist.all_reduce(t)
assert t.item() == dist.get_world_size()
dist.destroy_process_group()
"""


def torchrun_command() -> list[str]:
    launcher = Path(sys.executable).with_name("torchrun")
    if launcher.exists():
        return [str(launcher)]
    return [sys.executable, "-m", "torch.distributed.run"]


def run_torchrun(args: list[str], tmp_path: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("NNKIT_DEVICE", None)
    return subprocess.run(torchrun_command() + ["--standalone", f"--nproc_per_node={WORLD}"] + args,
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


def train_with_torchrun(extra: list[str], out: Path) -> subprocess.CompletedProcess:
    proc = run_torchrun(["-m", "nnkit.ddp_example", *COMMON, *extra, "--device", "cpu", "--out", str(out)],
                        out.parent)
    if proc.returncode != 0:
        probe_file = out.parent / "probe.py"
        probe_file.write_text(PROBE)
        probe = run_torchrun([str(probe_file)], out.parent, timeout=120)
        if probe.returncode != 0:
            pytest.skip("torchrun cannot start two Gloo processes on localhost here: "
                        + (probe.stderr.strip().splitlines() or ["no output"])[-1][:300])
        pytest.fail(f"the DDP example failed under torchrun:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc


def single_process_replay(epochs=2, n_train=2048, n_val=512, batch_size=32, seed=3, data_seed=1, lr=0.05,
                          max_norm=1.0):
    """One process, the same model and optimizer, each step on the ranks' batches put together."""
    torch.set_num_threads(1)
    x, y, _, _ = (torch.from_numpy(a) for a in load_mnist1d_large(n_train, n_val, seed=data_seed))
    net = make_cnn(seed, dropout=0.0, norm="group")
    sgd = torch.optim.SGD(net.parameters(), momentum=0.9, lr=lr)
    steps = 0
    for epoch in range(epochs):
        shards = []
        for rank in range(WORLD):
            sampler = DistributedSampler(range(n_train), num_replicas=WORLD, rank=rank, shuffle=True, seed=seed,
                                         drop_last=True)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
        for k in range(len(shards[0]) // batch_size):
            rows = torch.tensor([i for shard in shards for i in shard[k * batch_size:(k + 1) * batch_size]])
            sgd.zero_grad()
            F.cross_entropy(net(x[rows]), y[rows]).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm)
            sgd.step()
            steps += 1
    return net.state_dict(), steps


@pytest.fixture(scope="module")
def equivalence_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp-group") / "out"
    proc = train_with_torchrun(EQUIVALENCE, out)
    return out, proc


def max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys(), (sorted(a), sorted(b))
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def test_ranks_hold_identical_parameters(equivalence_run):
    out, _ = equivalence_run
    ranks = [torch.load(out / f"params_rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), \
            f"{name}: rank 0 and rank 1 differ by {(ranks[0][name] - ranks[1][name]).abs().max().item():.3g}"


def test_ranks_match_one_process_on_the_combined_batches(equivalence_run):
    out, _ = equivalence_run
    rank0 = torch.load(out / "params_rank0.pt", weights_only=True)
    replay, steps = single_process_replay()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == WORLD and metrics["backend"] == "gloo", metrics
    assert metrics["steps_per_epoch"] * 2 == steps and metrics["global_batch"] == 64, (metrics, steps)
    difference = max_difference(rank0, replay)
    print(f"DDP (2 ranks x 32) vs one process (64 per step), {steps} SGD steps: max |difference| {difference:.3g}")
    assert difference < 1e-5, f"DDP's parameters differ from the single-process run by up to {difference:.3g}"


def test_only_rank0_writes_a_checkpoint_that_loads_into_a_plain_model(equivalence_run):
    out, proc = equivalence_run
    files = sorted(p.name for p in out.iterdir())
    assert files == ["checkpoint.pt", "metrics.json", "params_rank0.pt", "params_rank1.pt"], files
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 2 and len(checkpoint["history"]) == 2
    assert not any(k.startswith("module.") for k in checkpoint["model"]), list(checkpoint["model"])[:3]
    unwrapped = make_cnn(0, dropout=0.0, norm="group")
    unwrapped.load_state_dict(checkpoint["model"])  # strict: the same keys as the unwrapped model
    rank0 = torch.load(out / "params_rank0.pt", weights_only=True)
    assert max_difference(unwrapped.state_dict(), rank0) == 0.0
    assert proc.stdout.count("epoch 2:") == 1, f"only rank 0 prints:\n{proc.stdout}"


def test_batchnorm_and_dropout_runs_stay_identical_across_ranks(tmp_path):
    """With batch norm and dropout the ranks no longer match one process on the combined batch
    (each normalizes with its own batch's statistics and draws its own masks), but they still
    take the same steps: parameters identical. The running statistics are identical too: each
    rank updates them from its own examples in training, and DDP's forward copies rank 0's buffers
    to every rank (``broadcast_buffers=True``), which the evaluation forward after the last epoch
    does."""
    out = tmp_path / "out"
    train_with_torchrun(BATCHNORM, out)
    ranks = [torch.load(out / f"params_rank{r}.pt", weights_only=True) for r in range(WORLD)]
    parameters = {name for name, _ in make_cnn(0).named_parameters()}
    buffers = [k for k in ranks[0] if k not in parameters]
    assert parameters <= set(ranks[0]) and any("running_mean" in k for k in buffers), sorted(ranks[0])
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), f"{name} differs between the ranks"
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert all(torch.equal(checkpoint["model"][k], ranks[0][k]) for k in ranks[0])
