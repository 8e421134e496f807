"""The chapter 8 reference solutions against PyTorch, and the notebook's own tests against planted bugs.

Oracles: autocast's output dtypes on the CPU; an eval-mode forward of the whole set at once for
`evaluate`; `SequentialLR(LinearLR, CosineAnnealingLR)` and `torch.optim.AdamW` stepped by hand for
`make_optimizer`; a step written out here (with an enabled CPU `GradScaler` and bfloat16 autocast)
for `train_step`; a replay of an epoch in `DistributedSampler`'s order for `train_one_epoch`; a
round trip through `torch.save` / `torch.load(weights_only=True)` and an uninterrupted run for the
checkpoints; `consume_prefix_in_state_dict_if_present` and the keys of real `torch.compile` and
`DistributedDataParallel` wrappers for `clean_state_dict`; a simulated asynchronous device for
`measure_throughput`; `DistributedSampler` itself for `shard_indices`; a real two-process Gloo
group for `reduce_metrics`.

Planted bugs: each pitfall of the chapter is planted into a copy of the reference solution (a
small edit of its source, or a wrong version written here) and the notebook's own test cell must
reject it; for most, its visible part already does.
"""

import ast
import io
import math
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DistributedSampler

from autograder.course import is_optional, is_test_cell, nbgrader_meta, read_source
from autograder.feedback import without_hidden_tests
from autograder.recheck import strip_magics
from conftest import ROOT, _is_definition
from nnkit.distributed import DeviceBatches

ASSIGNMENT = "ch8_training_loop"


@pytest.fixture(scope="module")
def ref(reference):
    torch.set_num_threads(1)
    return reference(ASSIGNMENT)


# -- mixed precision and evaluation ---------------------------------------------------------------

def test_amp_policy_and_the_dtypes_autocast_gives_on_the_cpu(ref):
    assert ref["amp_policy"]("cuda") == (torch.float16, True)
    assert ref["amp_policy"]("cpu") == (torch.bfloat16, False)
    assert ref["amp_policy"]("mps") == (None, False)
    conv = nn.Conv1d(1, 2, 3)
    with torch.autocast("cpu", dtype=ref["amp_policy"]("cpu")[0]):
        out = conv(torch.randn(2, 1, 8))
        loss = F.cross_entropy(out.flatten(1), torch.tensor([0, 1]))
    assert out.dtype == torch.bfloat16 and loss.dtype == torch.float32  # the loss is computed in float32


@pytest.mark.parametrize("seed, n, batch_size, training", [(0, 300, 128, True), (1, 64, 64, False), (2, 101, 7, True)])
def test_evaluate_is_an_eval_mode_forward_of_the_whole_set(ref, seed, n, batch_size, training):
    rng = np.random.default_rng(800 + seed)
    inputs = torch.from_numpy(rng.normal(size=(n, 40)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 10, size=n))
    net = ref["make_model"](seed)
    net.train(training)
    snapshot = {k: v.clone() for k, v in net.state_dict().items()}
    flags = []
    net.register_forward_pre_hook(lambda m, i: flags.append((m.training, torch.is_inference_mode_enabled())))
    got = ref["evaluate"](net, inputs, labels, batch_size)
    assert net.training is training and all(m.training is training for m in net.modules())
    assert flags and all(f == (False, True) for f in flags) and len(flags) == math.ceil(n / batch_size)
    assert all(torch.equal(v, snapshot[k]) for k, v in net.state_dict().items())
    oracle = ref["make_model"](seed).eval()
    with torch.no_grad():
        logits = oracle(inputs).double()
    assert got["loss"] == pytest.approx(F.cross_entropy(logits, labels).item(), rel=1e-6)
    assert got["accuracy"] == (logits.argmax(1) == labels).double().mean().item()


# -- optimizer and schedule -----------------------------------------------------------------------

def pytorch_warmup_cosine(lr, warmup, total, floor):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        schedule = torch.optim.lr_scheduler.SequentialLR(
            opt, [torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / warmup, total_iters=warmup - 1),
                  torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=floor * lr)],
            milestones=[warmup])
        values = []
        for _ in range(total + 1):
            values.append(opt.param_groups[0]["lr"])
            opt.step()
            schedule.step()
    return values


@pytest.mark.parametrize("lr, warmup, total, floor", [(0.1, 4, 12, 0.0), (3e-3, 5, 23, 0.1), (1.0, 2, 3, 0.5),
                                                      (0.02, 30, 200, 0.01)])
def test_make_optimizer_schedule_matches_pytorch_schedulers(ref, lr, warmup, total, floor):
    net = ref["make_model"](0)
    opt, schedule = ref["make_optimizer"](net, lr, 0.05, warmup, total, floor)
    assert isinstance(opt, torch.optim.AdamW) and isinstance(schedule, torch.optim.lr_scheduler.LambdaLR)
    seen = []
    for _ in range(total + 1):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        schedule.step()
    want = pytorch_warmup_cosine(lr, warmup, total, floor)
    for group in range(2):
        np.testing.assert_allclose([s[group] for s in seen], want, rtol=1e-12, atol=1e-15)


def test_make_optimizer_is_adamw_with_decay_on_weights_only(ref):
    net = ref["make_model"](3)
    twin = ref["make_model"](3)
    opt, schedule = ref["make_optimizer"](net, 0.01, 0.3, 3, 10)
    by_param = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    assert len(by_param) == sum(len(g["params"]) for g in opt.param_groups) == len(list(net.parameters()))
    assert all(by_param[id(p)] == (0.3 if p.ndim > 1 else 0.0) for p in net.parameters())
    heavy = [p for p in twin.parameters() if p.ndim > 1]
    light = [p for p in twin.parameters() if p.ndim <= 1]
    oracle = torch.optim.AdamW([{"params": heavy, "weight_decay": 0.3}, {"params": light, "weight_decay": 0.0}], lr=0.01)
    lrs = pytorch_warmup_cosine(0.01, 3, 10, 0.0)
    gen = torch.Generator().manual_seed(5)
    for k in range(10):
        grads = [torch.randn(p.shape, generator=gen) for p in net.parameters()]
        for p, q, g in zip(net.parameters(), twin.parameters(), grads):
            p.grad, q.grad = g.clone(), g.clone()
        for g in oracle.param_groups:
            g["lr"] = lrs[k]
        opt.step()
        schedule.step()
        oracle.step()
    for p, q in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


# -- one step, one epoch ----------------------------------------------------------------------------

def written_out_steps(make_model, seed, batches, clip_at, autocast_dtype, first_scale, clip_first=False):
    """The reference order of a mixed-precision step, written here: (losses, norms, lrs, params, scale)."""
    net = make_model(seed)
    net.train()
    adamw = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.01)
    decay = torch.optim.lr_scheduler.LambdaLR(adamw, lambda k: 1.0 / (1 + k))
    grad_scaler = torch.amp.GradScaler("cpu", init_scale=first_scale or 1.0, growth_interval=1,
                                       enabled=first_scale is not None)
    torch.manual_seed(0)
    losses, norms, lrs = [], [], []
    for inputs, labels in batches:
        lrs.append(adamw.param_groups[0]["lr"])
        for p in net.parameters():
            p.grad = None
        with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            batch_loss = F.cross_entropy(net(torch.as_tensor(inputs)), torch.as_tensor(labels))
        grad_scaler.scale(batch_loss).backward()
        if clip_first:
            total_norm = nn.utils.clip_grad_norm_(net.parameters(), clip_at)
            grad_scaler.unscale_(adamw)
        else:
            grad_scaler.unscale_(adamw)
            total_norm = nn.utils.clip_grad_norm_(net.parameters(), clip_at)
        grad_scaler.step(adamw)
        grad_scaler.update()
        decay.step()
        losses.append(float(batch_loss))
        norms.append(float(total_norm))
    return losses, norms, lrs, {k: v.detach().clone() for k, v in net.named_parameters()}, grad_scaler.get_scale()


STEP_CASES = [(0, 0.5, None, None), (1, 0.5, None, 2.0 ** 16), (2, 1.0, torch.bfloat16, 2.0 ** 10),
              (3, 100.0, torch.bfloat16, None), (4, 0.05, None, 2.0 ** 24)]


@pytest.mark.parametrize("seed, clip_at, autocast_dtype, first_scale", STEP_CASES)
def test_train_step_matches_the_written_out_step(ref, seed, clip_at, autocast_dtype, first_scale):
    rng = np.random.default_rng(810 + seed)
    batches = [(rng.normal(size=(24, 40)).astype(np.float32), rng.integers(0, 10, size=24)) for _ in range(4)]
    name = None if autocast_dtype is None else str(autocast_dtype).split(".")[-1]
    got = ref["train_step_run"](seed, [b[0] for b in batches], [b[1] for b in batches], clip_at, name, first_scale,
                                dropout_seed=0)
    losses, norms, lrs, params, scale = written_out_steps(ref["make_model"], seed, batches, clip_at, autocast_dtype,
                                                           first_scale)
    np.testing.assert_allclose(got["lrs"], lrs, rtol=1e-12)
    np.testing.assert_allclose(got["losses"], losses, rtol=1e-6)
    np.testing.assert_allclose(got["grad_norms"], norms, rtol=1e-5)
    assert got["scale"] == scale
    for k, v in params.items():
        torch.testing.assert_close(got["params"][k], v, rtol=1e-6, atol=1e-7)


def test_an_enabled_cpu_scaler_makes_clipping_before_unscaling_visible(ref):
    """The premise of the notebook's test: on the CPU, with init_scale 2**16, the wrong order changes
    the reported norm by the scale factor and the parameters by far more than rounding."""
    rng = np.random.default_rng(820)
    batches = [(rng.normal(size=(32, 40)).astype(np.float32), rng.integers(0, 10, size=32)) for _ in range(3)]
    right = written_out_steps(ref["make_model"], 0, batches, 0.5, None, 2.0 ** 16)
    wrong = written_out_steps(ref["make_model"], 0, batches, 0.5, None, 2.0 ** 16, clip_first=True)
    ratio = np.array(wrong[1]) / np.array(right[1])
    assert ratio[0] == pytest.approx(2.0 ** 16, rel=1e-5)  # the same first step: the norm of the scaled gradients
    np.testing.assert_allclose(ratio[1:], 2.0 ** 16 * 2.0 ** np.arange(1, 3), rtol=0.2)  # the scale grew each step
    worst = max((wrong[3][k] - right[3][k]).abs().max().item() for k in right[3])
    assert worst > 1e-4


def test_train_one_epoch_follows_the_sampler_of_each_epoch(ref):
    rng = np.random.default_rng(830)
    inputs = torch.from_numpy(rng.normal(size=(200, 40)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 10, size=200))

    def build():
        net = ref["make_model"](4)
        adamw = torch.optim.AdamW(net.parameters(), lr=2e-3)
        return net, adamw, torch.optim.lr_scheduler.LambdaLR(adamw, lambda k: 0.9 ** k), \
            torch.amp.GradScaler("cpu", enabled=False)

    net, adamw, decay, grad_scaler = build()
    sampler = DistributedSampler(range(200), num_replicas=2, rank=1, shuffle=True, seed=9)
    batches = DeviceBatches(inputs, labels, 16, sampler)
    torch.manual_seed(1)
    got = []
    for epoch in range(3):
        net.eval()
        got.append(ref["train_one_epoch"](net, batches, adamw, decay, grad_scaler, epoch, 1.0))
    assert net.training
    twin, twin_opt, twin_decay, _ = build()
    torch.manual_seed(1)
    want = []
    for epoch in range(3):
        twin.train()
        shard = DistributedSampler(range(200), num_replicas=2, rank=1, shuffle=True, seed=9)
        shard.set_epoch(epoch)
        order = list(shard)
        total = 0.0
        for k in range(len(order) // 16):
            rows = torch.tensor(order[16 * k:16 * (k + 1)])
            twin_opt.zero_grad()
            batch_loss = F.cross_entropy(twin(inputs[rows]), labels[rows])
            batch_loss.backward()
            nn.utils.clip_grad_norm_(twin.parameters(), 1.0)
            twin_opt.step()
            twin_decay.step()
            total += batch_loss.item() * 16
        want.append(total / (len(order) // 16 * 16))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    for p, q in zip(net.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)


# -- checkpoints --------------------------------------------------------------------------------------

def test_checkpoint_survives_torch_save_and_weights_only_load(ref):
    net = ref["make_model"](2)
    opt, schedule = ref["make_optimizer"](net, 1e-3, 0.05, 2, 10)
    grad_scaler = torch.amp.GradScaler("cpu", init_scale=64.0)
    for _ in range(3):
        batch_loss = net(torch.randn(8, 40)).square().mean()
        grad_scaler.scale(batch_loss).backward()
        grad_scaler.step(opt)
        grad_scaler.update()
        schedule.step()
    saved = ref["make_checkpoint"](net, opt, schedule, grad_scaler, 3, 0.5)
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    after_save = torch.rand(3)
    other = ref["make_model"](9)
    other_opt, other_schedule = ref["make_optimizer"](other, 1e-3, 0.05, 2, 10)
    other_scaler = torch.amp.GradScaler("cpu", init_scale=2.0)
    assert ref["restore_checkpoint"](loaded, other, other_opt, other_schedule, other_scaler) == (3, 0.5)
    assert torch.equal(torch.rand(3), after_save)
    for k, v in net.state_dict().items():
        assert torch.equal(other.state_dict()[k], v), k
    assert other_schedule.last_epoch == 3 and other_scaler.get_scale() == grad_scaler.get_scale()
    assert str(other_opt.state_dict()) == str(opt.state_dict())


@pytest.mark.parametrize("epochs, stop_after", [(3, 1), (3, 2)])
def test_a_resumed_run_ends_exactly_where_the_straight_run_ends(ref, epochs, stop_after):
    from nnkit.data import load_mnist1d_large

    x, y, xv, yv = load_mnist1d_large()
    rows = np.random.default_rng(840 + stop_after).permutation(len(x))[:768]
    out = ref["resume_probe"](1, (x[rows], y[rows], xv[:200], yv[:200]), epochs, stop_after)
    straight, resumed = out["straight"], out["resumed"]
    assert resumed["history"] == straight["history"][stop_after:]
    for k, v in straight["state"].items():
        assert torch.equal(resumed["state"][k], v), k
    assert resumed["scale"] == straight["scale"] > 2.0 ** 16  # the scale grew (growth_interval 3)
    assert resumed["best_metric"] == straight["best_metric"]


# -- wrapped models, throughput -------------------------------------------------------------------------

def test_clean_state_dict_against_real_wrappers(ref):
    from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

    net = ref["make_model"](0)
    plain_keys = list(net.state_dict())
    compiled = torch.compile(net)  # the wrapper alone: nothing is compiled before its first call
    assert list(compiled.state_dict())[0].startswith("_orig_mod.")
    assert list(ref["clean_state_dict"](compiled.state_dict())) == plain_keys
    store = dist.HashStore()
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        wrapped = nn.parallel.DistributedDataParallel(ref["make_model"](0))
        both = torch.compile(wrapped)
        for state, prefixes in ((wrapped.state_dict(), ["module."]), (both.state_dict(), ["_orig_mod.", "module."])):
            oracle = dict(state)
            for prefix in prefixes:
                consume_prefix_in_state_dict_if_present(oracle, prefix)
            cleaned = ref["clean_state_dict"](state)
            assert list(cleaned) == list(oracle) == plain_keys
            fresh = ref["make_model"](5)
            fresh.load_state_dict(cleaned)
    finally:
        dist.destroy_process_group()


class AsyncDevice:
    """Work queued by launch() finishes `cost` seconds apart; wait() blocks until it is done."""

    def __init__(self, cost):
        self.cost, self.host, self.done_at, self.launches = cost, 0.0, 0.0, 0

    def launch(self):
        self.launches += 1
        self.done_at = max(self.done_at, self.host) + self.cost
        self.host += self.cost / 100

    def wait(self):
        self.host = max(self.host, self.done_at)

    def read(self):
        return self.host


@pytest.mark.parametrize("cost, batch, steps, warmup", [(0.3, 16, 5, 2), (1.0, 1, 1, 0), (0.002, 512, 50, 10)])
def test_measure_throughput_on_a_simulated_asynchronous_device(ref, cost, batch, steps, warmup):
    device = AsyncDevice(cost)
    rate = ref["measure_throughput"](device.launch, batch, steps, warmup, clock=device.read, synchronize=device.wait)
    assert device.launches == steps + warmup
    assert rate == pytest.approx(batch / cost, rel=1e-12)


# -- several processes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 2, 5, 9, 10, 16, 33, 100])
@pytest.mark.parametrize("world_size", [1, 2, 3, 4, 7])
def test_shard_indices_is_distributed_sampler(ref, n, world_size):
    for shuffle in (True, False):
        for drop_last in (False, True):
            for epoch, seed in ((0, 0), (1, 0), (3, 41)):
                for rank in range(world_size):
                    sampler = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=shuffle,
                                                 seed=seed, drop_last=drop_last)
                    sampler.set_epoch(epoch)
                    got = ref["shard_indices"](n, rank, world_size, epoch, seed, shuffle, drop_last)
                    assert got == list(sampler), (n, rank, world_size, epoch, seed, shuffle, drop_last)


def test_reduce_metrics_in_a_one_process_group_and_over_simulated_ranks(ref):
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        assert ref["reduce_metrics"](torch.tensor(3.0), 2, 4) == {"loss": 0.75, "accuracy": 0.5, "count": 4}
    finally:
        dist.destroy_process_group()
    shares = [(4.0, 3, 5), (9.0, 1, 2), (0.5, 7, 9), (2.5, 0, 1)]
    out = ref["reduce_across_fake_ranks"](shares)
    assert out["results"] == [{"loss": 16.0 / 17, "accuracy": 11 / 17, "count": 17}] * 4
    assert out["all_reduce_calls"] == [1] * 4


TWO_RANKS = """
import sys, torch, torch.distributed as dist
rank, store = int(sys.argv[1]), sys.argv[2]
dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=2)
{source}
shares = [(12.5, 8, 10), (3.0, 1, 6)]
print(reduce_metrics(*shares[rank]))
dist.destroy_process_group()
"""


def test_reduce_metrics_with_two_real_gloo_processes(tmp_path):
    cell = next(c for c in read_source(ASSIGNMENT).cells if nbgrader_meta(c).get("grade_id") == "reduce_sol")
    script = tmp_path / "ranks.py"
    script.write_text(TWO_RANKS.format(source=cell.source))
    store = tmp_path / "store"
    procs = [subprocess.Popen([sys.executable, str(script), str(rank), str(store)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT) for rank in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-2000:]
        assert out.strip() == str({"loss": 15.5 / 16, "accuracy": 9 / 16, "count": 16})


# -- on a CUDA GPU (skipped without one) ------------------------------------------------------------------

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture
def deterministic_cudnn():
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    yield
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


@pytest.mark.cuda
@needs_cuda
def test_train_step_on_cuda_in_float16_with_a_scaler(ref, deterministic_cudnn):
    gpu = torch.device("cuda")
    half, use_scaler = ref["amp_policy"]("cuda")
    assert half == torch.float16 and use_scaler
    rng = np.random.default_rng(850)
    batches = [(torch.from_numpy(rng.normal(size=(64, 40)).astype(np.float32)).to(gpu),
                torch.from_numpy(rng.integers(0, 10, size=64)).to(gpu)) for _ in range(4)]
    runs = []
    for through_reference in (True, False):
        net = ref["make_model"](0).to(gpu)
        net.train()
        adamw = torch.optim.AdamW(net.parameters(), lr=3e-3)
        decay = torch.optim.lr_scheduler.LambdaLR(adamw, lambda k: 1.0 / (1 + k))
        grad_scaler = torch.amp.GradScaler("cuda", init_scale=2.0 ** 16, growth_interval=1)
        torch.manual_seed(0)
        norms = []
        for inputs, labels in batches:
            if through_reference:
                batch_loss, total_norm = ref["train_step"](net, inputs, labels, adamw, decay, grad_scaler, 0.5, half)
                assert batch_loss.device.type == "cuda" and not batch_loss.requires_grad
            else:
                for p in net.parameters():
                    p.grad = None
                with torch.autocast("cuda", dtype=half):
                    batch_loss = F.cross_entropy(net(inputs).float(), labels)
                grad_scaler.scale(batch_loss).backward()
                grad_scaler.unscale_(adamw)
                total_norm = nn.utils.clip_grad_norm_(net.parameters(), 0.5)
                grad_scaler.step(adamw)
                grad_scaler.update()
                decay.step()
            norms.append(float(total_norm))
        runs.append((norms, [p.detach().cpu() for p in net.parameters()], grad_scaler.get_scale()))
    np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-3)
    assert runs[0][2] == runs[1][2]
    for a, b in zip(runs[0][1], runs[1][1]):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


@pytest.mark.cuda
@needs_cuda
def test_fit_resumes_on_cuda_in_mixed_precision(ref, tmp_path, deterministic_cudnn):
    from nnkit.data import load_mnist1d_large

    x, y, xv, yv = load_mnist1d_large()
    data = (x[:4096], y[:4096], xv[:1024], yv[:1024])
    settings = dict(epochs=3, batch_size=128, lr=3e-3, seed=0, device="cuda", amp=True)
    path = str(tmp_path / "checkpoint.pt")
    straight = ref["fit"](data, **settings)
    ref["fit"](data, **settings, checkpoint_path=path, stop_after_epoch=2)
    torch.manual_seed(4321)
    torch.cuda.manual_seed_all(4321)
    resumed = ref["fit"](data, **settings, checkpoint_path=path, resume=True)
    assert [r["epoch"] for r in resumed["history"]] == [3]
    assert resumed["scale"] == straight["scale"]
    assert resumed["history"][0]["train_loss"] == pytest.approx(straight["history"][-1]["train_loss"], rel=1e-4)
    for (name, a), b in zip(straight["model"].state_dict().items(), resumed["model"].state_dict().values()):
        torch.testing.assert_close(b.double(), a.double(), rtol=1e-3, atol=1e-4, msg=name)
    assert straight["best_metric"] > 0.8


# -- the notebook's tests against planted bugs ----------------------------------------------------------

NOTEBOOK = read_source(ASSIGNMENT)
TEST_CELLS = {nbgrader_meta(c)["grade_id"]: c.source for c in NOTEBOOK.cells if is_test_cell(c)}


def notebook_namespace(edits: dict) -> dict:
    """The solved notebook's definitions (and its setup and data), with the cells named in ``edits`` changed."""
    namespace = {"__name__": "planted"}
    for cell in NOTEBOOK.cells:
        if cell.cell_type != "code" or is_test_cell(cell) or is_optional(cell):
            continue
        grade_id = nbgrader_meta(cell)["grade_id"]
        source = strip_magics(cell.source)
        if grade_id in edits:
            source = edits[grade_id](source)
        tree = ast.parse(source)
        if grade_id not in ("setup", "data"):  # those two run whole: the data set and the device
            tree.body = [node for node in tree.body if _is_definition(node)]
        exec(compile(tree, f"<{grade_id}>", "exec"), namespace)
    return namespace


def run_test_cell(namespace: dict, grade_id: str, visible_only: bool) -> None:
    source = TEST_CELLS[grade_id]
    if visible_only:
        source = without_hidden_tests(source)
    exec(compile(strip_magics(source), f"<{grade_id}>", "exec"), namespace)


def sub(old, new):
    def edit(source):
        assert old in source, f"the planted bug expects {old!r} in the solution"
        return source.replace(old, new)
    return edit


def drop(fragment):
    def edit(source):
        lines = source.splitlines()
        assert any(fragment in line for line in lines), fragment
        return "\n".join(line for line in lines if fragment not in line)
    return edit


def swap(first, second):
    def edit(source):
        lines = source.splitlines()
        i = next(k for k, line in enumerate(lines) if first in line)
        j = next(k for k, line in enumerate(lines) if second in line)
        lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    return edit


def insert_after(fragment, new_line):
    def edit(source):
        lines = source.splitlines()
        k = next(k for k, line in enumerate(lines) if fragment in line)
        indent = lines[k][:len(lines[k]) - len(lines[k].lstrip())]
        return "\n".join(lines[:k + 1] + [indent + new_line] + lines[k + 1:])
    return edit


def indent_between(after, before):
    """Indent the lines strictly between the first line holding ``after`` and the next holding ``before``."""
    def edit(source):
        lines = source.splitlines()
        i = next(k for k, line in enumerate(lines) if after in line)
        j = next(k for k, line in enumerate(lines) if k > i and before in line)
        return "\n".join(lines[:i + 1] + ["    " + line for line in lines[i + 1:j]] + lines[j:])
    return edit


def chain(*edits):
    def edit(source):
        for one in edits:
            source = one(source)
        return source
    return edit


def redefine(code):
    """Append another definition of a function to its cell (the later one wins)."""
    return lambda source: source + "\n\n" + textwrap.dedent(code)


LSTRIP = """
def clean_state_dict(state_dict):
    return {k.lstrip("_orig_mod.").lstrip("module."): v for k, v in state_dict.items()}
"""
REPLACE_ANYWHERE = """
def clean_state_dict(state_dict):
    return {k.replace("_orig_mod.", "").replace("module.", ""): v for k, v in state_dict.items()}
"""
ONE_PREFIX_ONCE = """
def clean_state_dict(state_dict):
    out = {}
    for k, v in state_dict.items():
        for prefix in ("_orig_mod.", "module."):
            if k.startswith(prefix):
                k = k[len(prefix):]
                break
        out[k] = v
    return out
"""
IN_PLACE = """
def clean_state_dict(state_dict):
    for k in list(state_dict):
        v = state_dict.pop(k)
        while k.startswith(("_orig_mod.", "module.")):
            k = k.split(".", 1)[1]
        state_dict[k] = v
    return state_dict
"""
SYNC_AT_END_ONLY = """
def measure_throughput(step, batch_size, steps, warmup, clock=time.perf_counter, synchronize=None):
    for _ in range(warmup):
        step()
    t0 = clock()
    for _ in range(steps):
        step()
    if synchronize:
        synchronize()
    return steps * batch_size / (clock() - t0)
"""
MEAN_OF_MEANS = """
def reduce_metrics(loss_sum, correct, count, device="cpu"):
    means = torch.tensor([float(loss_sum) / float(count), float(correct) / float(count)], dtype=torch.float64)
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(means)
        means = means / dist.get_world_size()
    return {"loss": means[0].item(), "accuracy": means[1].item(), "count": int(count)}
"""

# (name, solution cell, edit, the test cell that must reject it, whether its visible part does)
PLANTED = [
    ("amp: float16 on the CPU", "amp_sol", sub("torch.bfloat16, False", "torch.float16, False"), "test_amp_policy", True),
    ("amp: a scaler on the CPU", "amp_sol", sub("bfloat16, False", "bfloat16, True"), "test_amp_policy", True),
    ("evaluate in train mode", "evaluate_sol", drop("model.eval()"), "test_evaluate", True),
    ("evaluate leaves eval mode", "evaluate_sol", drop("train(was_training)"), "test_evaluate", True),
    ("evaluate always ends in train mode", "evaluate_sol", sub("train(was_training)", "train()"),
     "test_evaluate", True),
    ("evaluate under no_grad", "evaluate_sol", sub("torch.inference_mode()", "torch.no_grad()"), "test_evaluate", True),
    ("evaluate averages the batch means", "evaluate_sol",
     chain(sub('reduction="sum"', 'reduction="mean"'), sub("loss_sum.item() / len(x)",
                                                          "loss_sum.item() / math.ceil(len(x) / batch_size)")),
     "test_evaluate", True),
    ("decay on every parameter", "optimizer_sol", sub('"weight_decay": 0.0}', '"weight_decay": weight_decay}'),
     "test_optimizer_groups", True),
    ("Adam with L2 instead of AdamW", "optimizer_sol", sub("torch.optim.AdamW(", "torch.optim.Adam("),
     "test_optimizer_groups", True),
    ("warmup from 0", "optimizer_sol", sub("(step + 1) / warmup_steps", "step / warmup_steps"),
     "test_optimizer_schedule", True),
    ("cosine over all the steps", "optimizer_sol", sub("/ (total_steps - warmup_steps)", "/ total_steps"),
     "test_optimizer_schedule", True),
    ("min_factor ignored", "optimizer_sol", sub("min_factor + (1.0 - min_factor) * ", ""),
     "test_optimizer_schedule", False),
    ("clip before unscale_", "step_sol", swap("scaler.unscale_(", "clip_grad_norm_("), "test_train_step_values", True),
    ("clip before unscale_ (the order)", "step_sol", swap("scaler.unscale_(", "clip_grad_norm_("),
     "test_train_step_order", True),
    ("scheduler before optimizer", "step_sol", swap("scheduler.step()", "scaler.step(optimizer)"),
     "test_train_step_values", True),
    ("scheduler before optimizer (the order)", "step_sol", swap("scheduler.step()", "scaler.step(optimizer)"),
     "test_train_step_order", True),
    ("backward and step inside autocast", "step_sol", indent_between("loss = F.cross_entropy", "return "),
     "test_train_step_order", True),
    ("backward without the scaler", "step_sol", sub("scaler.scale(loss).backward()", "loss.backward()"),
     "test_train_step_values", True),
    ("optimizer.step() past the scaler", "step_sol", sub("scaler.step(optimizer)", "optimizer.step()"),
     "test_train_step_order", True),
    ("no scaler.update()", "step_sol", drop("scaler.update()"), "test_train_step_values", True),
    ("floats from .item() every step", "step_sol",
     sub("loss.detach(), grad_norm.detach()", "loss.item(), grad_norm.item()"), "test_train_step_order", True),
    ("gradients accumulate (no zero_grad)", "step_sol", drop("zero_grad("), "test_train_step_values", True),
    ("the norm after clipping", "step_sol",
     insert_after("clip_grad_norm_(", "grad_norm = torch.stack([p.grad.norm() for p in model.parameters()]).norm()"),
     "test_train_step_values", True),
    ("no autocast at all", "step_sol", sub("enabled=amp_dtype is not None", "enabled=False"),
     "test_train_step_order", True),
    ("the sampler's epoch never set", "epoch_sol", drop("set_epoch("), "test_train_one_epoch", True),
    ("the sampler's epoch stuck at 0", "epoch_sol", sub("set_epoch(epoch)", "set_epoch(0)"),
     "test_train_one_epoch", True),
    ("training left in eval mode", "epoch_sol", drop("model.train()"), "test_train_one_epoch", True),
    (".item() every step", "epoch_sol", chain(sub("loss.double()", "loss.item()"), sub("loss_sum.item()", "loss_sum")),
     "test_train_one_epoch", True),
    ("checkpoint of live tensors", "checkpoint_sol", sub("copy.deepcopy(", "("), "test_checkpoint_contents", True),
    ("random generator not restored", "checkpoint_sol", drop("torch.set_rng_state("), "test_resume", True),
    ("random generator not restored (contents)", "checkpoint_sol", drop("torch.set_rng_state("),
     "test_checkpoint_contents", True),
    ("optimizer not restored", "checkpoint_sol", drop("optimizer.load_state_dict("), "test_resume", True),
    ("scheduler not restored", "checkpoint_sol", drop("scheduler.load_state_dict("), "test_resume", True),
    ("scaler not restored", "checkpoint_sol", drop("scaler.load_state_dict("), "test_resume", True),
    ("epoch off by one", "checkpoint_sol", sub('return checkpoint["epoch"]', 'return checkpoint["epoch"] - 1'),
     "test_resume", True),
    ("lstrip of the prefixes", "clean_sol", redefine(LSTRIP), "test_clean_state_dict", True),
    ("prefixes removed anywhere", "clean_sol", redefine(REPLACE_ANYWHERE), "test_clean_state_dict", True),
    ("one prefix removed once", "clean_sol", redefine(ONE_PREFIX_ONCE), "test_clean_state_dict", True),
    ("the argument changed in place", "clean_sol", redefine(IN_PLACE), "test_clean_state_dict", True),
    ("no synchronization", "throughput_sol", sub("synchronize()", "pass"), "test_measure_throughput", True),
    ("synchronized at the end only", "throughput_sol", redefine(SYNC_AT_END_ONLY), "test_measure_throughput", True),
    ("warm-up timed", "throughput_sol", chain(drop("start = clock()"), insert_after('"""', "start = clock()")),
     "test_measure_throughput", True),
    ("warm-up examples counted", "throughput_sol", sub("steps * batch_size", "(steps + warmup) * batch_size"),
     "test_measure_throughput", True),
    ("contiguous shards", "shard_sol", sub("order[rank:total:world_size]", "order[rank * per_rank:(rank + 1) * per_rank]"),
     "test_shard_indices", True),
    ("the seed without the epoch", "shard_sol", sub("manual_seed(seed + epoch)", "manual_seed(seed)"),
     "test_shard_indices", True),
    ("no padding", "shard_sol", sub("total - len(order)", "0"), "test_shard_indices", True),
    ("NumPy's permutation", "shard_sol",
     sub("torch.randperm(n, generator=epoch_generator)", "torch.from_numpy(np.random.default_rng(seed + epoch).permutation(n))"),
     "test_shard_indices", True),
    ("padding repeated at most once", "shard_sol", sub("(order * math.ceil(padding / len(order)))", "order"),
     "test_shard_indices", False),
    ("the mean of the ranks' means", "reduce_sol", redefine(MEAN_OF_MEANS), "test_reduce_metrics", True),
    ("no all_reduce", "reduce_sol", sub("dist.all_reduce(totals)", "pass"), "test_reduce_metrics", True),
    ("an average all_reduce", "reduce_sol", sub("dist.all_reduce(totals)", "dist.all_reduce(totals, op=dist.ReduceOp.AVG)"),
     "test_reduce_metrics", True),
]


@pytest.mark.parametrize("grade_id", sorted(TEST_CELLS))
def test_each_test_cell_passes_the_reference(grade_id):
    run_test_cell(notebook_namespace({}), grade_id, visible_only=False)


@pytest.mark.parametrize("name, cell, edit, test_cell, visible", PLANTED, ids=[p[0] for p in PLANTED])
def test_the_notebook_rejects_the_planted_bug(name, cell, edit, test_cell, visible):
    namespace = notebook_namespace({cell: edit})
    for visible_only in ((True, False) if visible else (False,)):
        with pytest.raises(Exception) as caught:
            run_test_cell(namespace, test_cell, visible_only)
        assert not isinstance(caught.value, (SyntaxError, NameError)), f"the planted bug is broken: {caught.value!r}"
    if not visible:  # documented as caught by the hidden tests only: the visible part lets it pass
        run_test_cell(namespace, test_cell, visible_only=True)
