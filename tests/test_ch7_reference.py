"""The chapter 7 reference solutions against independent computations, and the notebook's own tests against
planted bugs.

Oracles: the cross-entropy written out with scipy's logsumexp; torch.optim replays of every training recipe
(Adam on a tiny subset, the learning-rate sweep with SGD+momentum and with Adam); activations recomputed layer by
layer without hooks and weight gradients from torch.autograd.grad; the log-uniform law of scipy.stats; the
search's draws replayed from a fresh generator; the diagnosis rules on the planted runs of several seeds (the
reference's accuracy there is printed and must be 100 %).

Planted bugs: each is a plausible wrong version of one graded function, made by a text edit of the reference's
solution cell. The notebook is then run top to bottom with that cell edited (test cells skipped except the ones
named), and the named test cells must fail with an AssertionError: the notebook's own tests, hidden parts
included, reject the bug. Two variants that are right in a different way (another base of logarithm, another
form of the same draw) must pass.
"""

import copy
import io
import math
import contextlib
from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy import stats
from scipy.special import logsumexp

from autograder.course import is_optional, is_test_cell, nbgrader_meta, read_source
from autograder.recheck import strip_magics

ID = "ch7_babysitting"


@pytest.fixture(scope="module")
def ref(reference):
    return reference(ID)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """As the notebook's setup cell does: the networks are small, and threads would only wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    from nnkit.data import load_mnist1d

    return load_mnist1d()


def numpy_cross_entropy(scores, labels):
    scores = np.asarray(scores, dtype=np.float64)
    return float(np.mean(logsumexp(scores, axis=1) - scores[np.arange(len(labels)), labels]))


def as_numpy_scores(model, x):
    with torch.no_grad():
        return model(torch.as_tensor(x, dtype=torch.float32)).double().numpy()


# ----------------------------------------------------------------------------------------------- initial loss

@pytest.mark.parametrize("seed, classes, hidden", [(0, 10, 64), (1, 3, 8), (2, 7, 32), (3, 100, 16)])
def test_initial_loss_against_logsumexp(ref, seed, classes, hidden):
    rng = np.random.default_rng(70 + seed)
    model = ref["make_tanh_mlp"](seed, hidden=hidden, classes=classes)
    x = rng.normal(size=(41, 40)).astype(np.float32)
    y = rng.integers(0, min(classes, 3), size=41)  # a few classes only: C comes from the model
    before = copy.deepcopy(model.state_dict())
    measured, expected = ref["check_initial_loss"](model, x, y)
    assert type(measured) is float and type(expected) is float
    assert expected == pytest.approx(math.log(classes), rel=1e-15)
    assert measured == pytest.approx(numpy_cross_entropy(as_numpy_scores(model, x), y), rel=1e-5)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_fresh_mlps_start_at_ln_c_and_a_big_last_layer_does_not(ref, data):
    x, y = data[0][:1000], data[1][:1000]
    for seed in range(5):
        measured, expected = ref["check_initial_loss"](ref["make_tanh_mlp"](seed), x, y)
        assert abs(measured - expected) < 0.1, (seed, measured)
        big = ref["make_tanh_mlp"](seed)
        with torch.no_grad():
            big[-1].weight.mul_(30)
            big[-1].bias.mul_(30)
        assert ref["check_initial_loss"](big, x, y)[0] > expected + 3


# ----------------------------------------------------------------------------------------------- tiny subset

@pytest.mark.parametrize("seed, count, steps, lr", [(0, 20, 30, 1e-2), (3, 9, 17, 5e-3), (5, 40, 25, 1e-3)])
def test_overfit_tiny_subset_replays_adam(ref, data, seed, count, steps, lr):
    x = torch.from_numpy(data[0][500:500 + count])
    y = torch.from_numpy(data[1][500:500 + count])
    model = ref["make_tanh_mlp"](seed, hidden=48)
    twin = copy.deepcopy(model)
    optimizer = torch.optim.Adam(twin.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        value = F.cross_entropy(twin(x), y)
        losses.append(value.item())
        value.backward()
        optimizer.step()
    accuracy = float((as_numpy_scores(twin, x).argmax(1) == y.numpy()).mean())
    got = ref["overfit_tiny_subset"](model, x.numpy(), y.numpy(), steps, lr, "cpu")
    np.testing.assert_allclose(got["loss"], losses, rtol=1e-5)
    assert got["accuracy"] == pytest.approx(accuracy, abs=1e-7)
    assert all(type(v) is float for v in got["loss"]) and type(got["accuracy"]) is float


def test_a_correct_mlp_memorizes_twenty_examples_and_a_tiny_lr_does_not(ref, data):
    x, y = data[0][:20], data[1][:20]
    for seed in range(3):
        good = ref["overfit_tiny_subset"](ref["make_tanh_mlp"](seed), x, y, 150, 1e-2, "cpu")
        assert good["accuracy"] == 1.0 and good["loss"][-1] < 0.01
        slow = ref["overfit_tiny_subset"](ref["make_tanh_mlp"](seed), x, y, 150, 1e-4, "cpu")
        assert slow["accuracy"] < 1.0 and slow["loss"][-1] > 1.0


# ----------------------------------------------------------------------------------------------- update ratios

def test_update_ratio_of_plain_sgd_is_lr_times_gradient_over_weight(ref):
    """For plain SGD the step is -lr * grad, so the ratio is lr ||g|| / ||w||: an oracle that needs no step."""
    rng = np.random.default_rng(71)
    model = ref["make_tanh_mlp"](4, hidden=20)
    x = torch.from_numpy(rng.normal(size=(30, 40)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 10, size=30))
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()))
    before = {n: p.detach().double().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for p, g in zip(model.parameters(), grads):
            p.sub_(0.07 * g)
    after = {n: p.detach().double().clone() for n, p in model.named_parameters()}
    got = ref["update_ratios"](before, after)
    for (name, w), g in zip(before.items(), grads):
        assert got[name] == pytest.approx(0.07 * g.double().norm().item() / w.norm().item(), rel=1e-5)


def test_update_ratios_of_numpy_and_zero_tensors(ref):
    rng = np.random.default_rng(72)
    before = {"a": rng.normal(size=(4, 5)), "b": rng.normal(size=3), "zero": np.zeros(2), "born": np.zeros((2, 2))}
    after = {k: v + rng.normal(size=v.shape) * 1e-3 for k, v in before.items()}
    after["zero"] = np.zeros(2)
    kept = copy.deepcopy(before)
    got = ref["update_ratios"](before, after)
    for k in ("a", "b"):
        assert got[k] == pytest.approx(math.sqrt(((after[k] - before[k]) ** 2).sum() / (before[k] ** 2).sum()), rel=1e-12)
    assert got["zero"] == 0.0 and got["born"] == math.inf
    for k in before:
        np.testing.assert_array_equal(before[k], kept[k])


# ----------------------------------------------------------------------------------------------- monitor

def layer_outputs(model, x):
    """Every layer's output of an nn.Sequential, nested Sequentials unrolled: {name: (layer, output)}."""
    found = {}

    def walk(seq, h, prefix):
        for name, layer in seq.named_children():
            full = f"{prefix}{name}"
            if isinstance(layer, nn.Sequential):
                h = walk(layer, h, full + ".")
            else:
                h = layer(h)
                found[full] = (layer, h.detach().double().numpy())
        return h

    with torch.no_grad():
        walk(model, torch.as_tensor(x), "")
    return found


def monitor_oracle(model, x, y, lr, steps, threshold):
    """What the monitor should report after each step, without hooks: activations recomputed layer by layer,
    weight gradients from torch.autograd.grad."""
    twin = copy.deepcopy(model)
    linears = {n: m for n, m in twin.named_modules() if isinstance(m, nn.Linear)}
    acts, grads = [], []
    for _ in range(steps):
        loss = F.cross_entropy(twin(x), y)
        pieces = torch.autograd.grad(loss, [m.weight for m in linears.values()] + [m.bias for m in linears.values()])
        grads.append({n: float(np.linalg.norm(g.double().numpy())) for n, g in zip(linears, pieces)})
        outputs = layer_outputs(twin, x)  # the forward pass of this step, before its update
        with torch.no_grad():
            for p, g in zip([m.weight for m in linears.values()] + [m.bias for m in linears.values()], pieces):
                p.sub_(lr * g)
        acts.append({n: {"mean": a.mean(), "std": a.std(), "saturated":
                         float(np.mean(np.abs(a) > threshold) if isinstance(layer, nn.Tanh) else np.mean(a == 0))}
                     for n, (layer, a) in outputs.items() if isinstance(layer, (nn.Tanh, nn.ReLU))})
    return acts, grads


@pytest.mark.parametrize("threshold", [0.97, 0.8])
def test_monitor_matches_a_hook_free_oracle(ref, threshold):
    rng = np.random.default_rng(73)
    x = torch.from_numpy(rng.normal(size=(40, 40)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 10, size=40))
    torch.manual_seed(13)
    model = nn.Sequential(OrderedDict(stem=nn.Sequential(nn.Linear(40, 24), nn.Tanh()), mid=nn.Linear(24, 24),
                                      act=nn.ReLU(), deep=nn.Sequential(nn.Linear(24, 16), nn.Tanh()),
                                      out=nn.Linear(16, 10)))
    with torch.no_grad():
        model.stem[0].weight.mul_(4.0)
    want_acts, want_grads = monitor_oracle(model, x, y, 0.3, 3, threshold)
    got = ref["train_with_monitor"](model, x.numpy(), y.numpy(), 0.3, 3, "cpu", threshold)
    for k in range(3):
        assert set(got["activations"][k]) == {"stem.1", "act", "deep.1"} == set(want_acts[k])
        assert set(got["gradients"][k]) == {"stem.0", "mid", "deep.0", "out"} == set(want_grads[k])
        for name, stats_ in want_acts[k].items():
            for key, value in stats_.items():
                assert got["activations"][k][name][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (k, name, key)
                assert type(got["activations"][k][name][key]) is float
        for name, value in want_grads[k].items():
            assert got["gradients"][k][name] == pytest.approx(value, rel=1e-5, abs=1e-9), (k, name)
    assert 0.1 < want_acts[0]["stem.1"]["saturated"] < 0.9  # the planted saturation shows
    assert got["after_remove"] == got["activations"][-1]


def test_monitor_reports_the_last_backward_not_the_accumulated_grad(ref):
    model = ref["small_mixed_net"]()
    twin = copy.deepcopy(model)
    monitor = ref["TrainingMonitor"](model)
    x = torch.tensor([[1.0, 0.5], [-2.0, 1.0]])
    for labels in (torch.tensor([0, 1]), torch.tensor([1, 1])):
        F.cross_entropy(model(x), labels).backward()  # no zero_grad: .grad accumulates over the two passes
    alone = torch.autograd.grad(F.cross_entropy(twin(x), torch.tensor([1, 1])), twin[4].weight)[0]
    assert monitor.gradient_norms()["4"] == pytest.approx(alone.norm().item(), rel=1e-6)
    assert abs(model[4].weight.grad.norm().item() - alone.norm().item()) > 1e-3
    reported = monitor.activation_stats()
    reported["1"]["mean"] = 99.0  # a caller's change does not reach the monitor
    assert monitor.activation_stats()["1"]["mean"] != 99.0
    monitor.remove()


# ----------------------------------------------------------------------------------------------- abort rule

def test_should_abort_against_numpy(ref):
    rng = np.random.default_rng(74)
    for trial in range(500):
        initial = float(rng.uniform(0.1, 5.0))
        trace = initial * rng.lognormal(0.0, 0.6, size=int(rng.integers(0, 9)))
        if len(trace) and trial % 3 == 0:
            trace[rng.integers(len(trace))] = rng.choice([np.nan, np.inf, -np.inf])
        values = [float(v) for v in trace]
        with np.errstate(invalid="ignore"):
            want = bool(len(trace) and (~np.isfinite(trace)).any() or (np.nan_to_num(trace, posinf=0, neginf=0) > 3 * initial).any())
        got = ref["should_abort"](values, initial)
        assert got is want, (values, initial)
    assert ref["should_abort"]([7.5], 2.5) is False and ref["should_abort"]([math.nextafter(7.5, 8)], 2.5) is True


# ----------------------------------------------------------------------------------------------- range test

def sweep_oracle(model, optimizer, x, y, *, lr_min, lr_max, num_steps, batch_size, beta, diverge, seed):
    gen = torch.Generator()
    gen.manual_seed(seed)
    queue = []
    rates, raws, smooth = [], [], []
    ema = 0.0
    for k in range(num_steps):
        if not queue:
            queue = torch.randperm(len(x), generator=gen).split(batch_size)[::-1]
            queue = list(queue)
        rows = queue.pop()
        rate = math.exp(math.log(lr_min) + (math.log(lr_max) - math.log(lr_min)) * k / (num_steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = rate
        loss = F.cross_entropy(model(x[rows]), y[rows])
        ema = beta * ema + (1 - beta) * loss.item()
        rates.append(rate)
        raws.append(loss.item())
        smooth.append(ema / (1 - beta ** (k + 1)))
        if not np.isfinite(smooth[-1]) or (k and smooth[-1] > diverge * min(smooth[:-1])):
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return rates, raws, smooth


@pytest.mark.parametrize("name, options", [
    ("sgd", dict(lr_min=1e-4, lr_max=10.0, num_steps=100, batch_size=64, beta=0.98, diverge=4.0, seed=0)),
    ("sgd", dict(lr_min=1e-3, lr_max=50.0, num_steps=80, batch_size=300, beta=0.9, diverge=2.0, seed=5)),
    ("adam", dict(lr_min=1e-6, lr_max=3.0, num_steps=90, batch_size=77, beta=0.95, diverge=1.5, seed=2))])
def test_range_test_replays_and_restores(ref, data, name, options):
    x, y = torch.from_numpy(data[0][:900]), torch.from_numpy(data[1][:900])
    start = ref["make_tanh_mlp"](9, hidden=40)
    twin = copy.deepcopy(start)
    opt = (torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9) if name == "sgd"
           else torch.optim.Adam(twin.parameters(), lr=1e-3))
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(twin(x[:256]), y[:256]).backward()
        opt.step()
    weights = copy.deepcopy(twin.state_dict())
    moments = copy.deepcopy(opt.state_dict())
    rates, raws, smooth = sweep_oracle(twin, opt, x, y, **options)
    report = ref["range_test_after_warmup"](start, x.numpy(), y.numpy(), name, 3, "cpu", **options)
    got = report["result"]
    np.testing.assert_allclose(got["lrs"], rates, rtol=1e-12)
    np.testing.assert_allclose(got["raw_losses"], raws, rtol=1e-5)
    np.testing.assert_allclose(got["losses"], smooth, rtol=1e-5)
    slope = np.gradient(smooth)
    assert got["suggestion"] == pytest.approx(rates[10 + int(np.argmin(slope[10:len(smooth) - 5]))], rel=1e-12)
    for k, v in start.state_dict().items():
        assert torch.equal(v, weights[k]), k
    for index, state in enumerate(report["state"]):
        for key, value in moments["state"][index].items():
            assert torch.equal(torch.as_tensor(state[key]), torch.as_tensor(value)), (index, key)
    assert report["lr"] == moments["param_groups"][0]["lr"]


def test_range_test_suggestion_none_when_too_short_and_stops_on_nan(ref, data):
    model = ref["make_tanh_mlp"](1)
    sgd = torch.optim.SGD(model.parameters(), lr=0.1)
    out = ref["lr_range_test"](model, sgd, data[0][:200], data[1][:200], num_steps=12)
    assert len(out["lrs"]) == 12 and out["suggestion"] is None
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    out = ref["lr_range_test"](model, sgd, data[0][:200], data[1][:200], num_steps=30)
    assert len(out["lrs"]) == 1 and math.isnan(out["losses"][0])


def test_the_suggestion_trains_well(ref, data):
    """The steepest-descent suggestion, used for 3 epochs, ends well below the loss of lr 100 times smaller."""
    x, y = data[0][:2000], data[1][:2000]
    model = ref["make_tanh_mlp"](0)
    sgd = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    suggestion = ref["lr_range_test"](model, sgd, x, y)["suggestion"]
    assert 1e-2 < suggestion < 0.5, suggestion
    tuned = ref["record_run"](model, suggestion, 3, 0, x, y, data[2], data[3], "cpu")
    slow = ref["record_run"](model, suggestion / 100, 3, 0, x, y, data[2], data[3], "cpu")
    assert tuned["train_loss"][-1] < slow["train_loss"][-1] - 0.3, (tuned["train_loss"], slow["train_loss"])


# ----------------------------------------------------------------------------------------------- sampling, search

@pytest.mark.parametrize("low, high", [(1e-6, 1.0), (2.0, 3.0), (1e-9, 1e3)])
def test_log_uniform_follows_scipy(ref, low, high):
    sample = ref["sample_log_uniform"](np.random.default_rng(75), low, high, 30000)
    assert stats.kstest(sample, stats.loguniform(low, high).cdf).pvalue > 1e-3
    assert stats.kstest(sample, stats.uniform(low, high - low).cdf).pvalue < 1e-6 or high / low < 2
    np.testing.assert_array_equal(sample, np.exp(np.random.default_rng(75).uniform(np.log(low), np.log(high), 30000)))


def test_random_search_replay(ref):
    space = {"a": (1e-4, 10.0, "log"), "b": (-1.0, 1.0, "linear")}
    values = iter(np.random.default_rng(76).normal(size=100))
    seen = []

    def noisy(config):
        seen.append(config)
        return float(next(values))

    out = ref["random_search"](noisy, space, 8, np.random.default_rng(77), rounds=4, top_k=2, edge=0.2)
    assert len(seen) == 32
    g = np.random.default_rng(77)
    box = {"a": (1e-4, 10.0), "b": (-1.0, 1.0)}
    for r in range(4):
        assert out["ranges"][r] == {k: list(v) for k, v in box.items()}
        for i in range(8):
            t = out["trials"][8 * r + i]
            assert t["round"] == r and t["config"] == seen[8 * r + i]
            assert t["config"]["a"] == pytest.approx(math.exp(g.uniform(math.log(box["a"][0]), math.log(box["a"][1]))), rel=1e-14)
            assert t["config"]["b"] == pytest.approx(g.uniform(*box["b"]), rel=1e-14)
        top = sorted(out["trials"][:8 * (r + 1)], key=lambda t: t["value"])[:2]
        box = {k: (min(t["config"][k] for t in top), max(t["config"][k] for t in top)) for k in box}
    best = min(out["trials"], key=lambda t: t["value"])
    assert out["best"] == {"config": best["config"], "value": best["value"]}
    pa = (math.log(best["config"]["a"]) - math.log(1e-4)) / (math.log(10.0) - math.log(1e-4))
    pb = (best["config"]["b"] + 1) / 2
    assert out["on_edge"] == {"a": pa < 0.2 or pa > 0.8, "b": pb < 0.2 or pb > 0.8}


# ----------------------------------------------------------------------------------------------- diagnosis

EXPECTED = {"healthy": "healthy", "big_last_layer": "bad_init", "lr_too_high": "lr_too_high",
            "lr_too_low": "lr_too_low", "saturated_tanh": "bad_init", "shuffled_labels": "overfitting",
            "tiny_model": "underfitting"}


def test_diagnosis_accuracy_on_planted_runs(ref):
    seeds = range(6)
    right, total, misses = 0, 0, []
    for seed in seeds:
        for problem in ref["PROBLEMS"]:
            named = ref["diagnose"](ref["planted_run"](problem, seed, "cpu"))
            total += 1
            right += named == EXPECTED[problem]
            if named != EXPECTED[problem]:
                misses.append((seed, problem, named))
    print(f"\nreference diagnosis on planted runs, seeds 0-{max(seeds)}: {right}/{total} correct; misses {misses}")
    assert right == total, misses


def test_planted_runs_show_their_problem(ref):
    """The planted problems are real: what each plants is visible in the history, seed 0."""
    runs = {p: ref["planted_run"](p, 0, "cpu") for p in ref["PROBLEMS"]}
    assert runs["big_last_layer"]["initial_loss"] > 5 > runs["healthy"]["initial_loss"]
    assert runs["saturated_tanh"]["initial_saturation"] > 0.6 > 0.05 > runs["healthy"]["initial_saturation"]
    assert runs["lr_too_high"]["train_loss"][-1] > runs["lr_too_high"]["initial_loss"]
    assert runs["shuffled_labels"]["val_acc"][-1] < 0.15 < runs["healthy"]["val_acc"][-1]
    assert runs["tiny_model"]["train_acc"][-1] < runs["healthy"]["train_acc"][-1] - 0.1
    assert runs["lr_too_low"]["train_loss"][-1] > 2.0 > runs["healthy"]["train_loss"][-1]


# ----------------------------------------------------------------------------------------------- planted bugs

def run_notebook(edits, test_ids):
    """Run the solved notebook top to bottom with `edits` ({cell id: [(old, new)]}) applied to its cells, skipping
    the optional cells and every test cell not in `test_ids`; {test id: the AssertionError message, or None}."""
    verdicts = {}
    namespace = {"__name__": "__main__"}
    for cell in read_source(ID).cells:
        if cell.cell_type != "code" or is_optional(cell):
            continue
        grade_id = nbgrader_meta(cell)["grade_id"]
        source = strip_magics(cell.source)
        for old, new in edits.get(grade_id, []):
            assert source.count(old) == 1, f"{grade_id}: the text to replace is not there once: {old!r}"
            source = source.replace(old, new)
        if is_test_cell(cell) and grade_id not in test_ids:
            continue
        code = compile(source, grade_id, "exec")
        with contextlib.redirect_stdout(io.StringIO()):
            if is_test_cell(cell):
                try:
                    exec(code, namespace)
                except AssertionError as exc:
                    verdicts[grade_id] = str(exc)
                else:
                    verdicts[grade_id] = None
            else:
                exec(code, namespace)
    return verdicts


BUGS = {
    # check_initial_loss
    "C from the labels seen": ("initial_sol", [("math.log(scores.shape[1])", "math.log(len(torch.unique(labels)))")],
                               ["test_initial_loss"]),
    "summed, not mean, cross-entropy": ("initial_sol", [("F.cross_entropy(scores, labels).item()",
                                                         "F.cross_entropy(scores, labels, reduction='sum').item()")],
                                        ["test_initial_loss"]),
    "log base 10": ("initial_sol", [("math.log(scores.shape[1])", "math.log10(scores.shape[1])")], ["test_initial_loss"]),
    "softmax without the log": ("initial_sol", [("F.cross_entropy(scores, labels).item()",
                                                 "F.nll_loss(scores.softmax(dim=1), labels).item()")],
                                ["test_initial_loss"]),
    # overfit_tiny_subset
    "weight decay left on": ("overfit_sol", [("weight_decay=0.0", "weight_decay=1e-2")], ["test_overfit"]),
    "trains the caller's model": ("overfit_sol", [("net = copy.deepcopy(model).to(device)", "net = model.to(device)")],
                                  ["test_overfit"]),
    "loss recorded after the update": ("overfit_sol", [("curve.append(loss.item())",
                                                        "curve.append(F.cross_entropy(net(inputs), labels).item())")],
                                       ["test_overfit"]),
    "plain SGD": ("overfit_sol", [("torch.optim.Adam(net.parameters(), lr=lr, weight_decay=0.0)",
                                   "torch.optim.SGD(net.parameters(), lr=lr)")], ["test_overfit"]),
    # update_ratios
    "divided by the new weights": ("ratios_sol", [("scale = torch.linalg.vector_norm(old).item()",
                                                   "scale = torch.linalg.vector_norm(new).item()")],
                                   ["test_update_ratios"]),
    "squared norms": ("ratios_sol", [("ratios[name] = step / scale", "ratios[name] = (step / scale) ** 2")],
                      ["test_update_ratios"]),
    "mean of elementwise ratios": ("ratios_sol", [("ratios[name] = step / scale",
                                                   "ratios[name] = ((new - old).abs() / old.abs()).mean().item()")],
                                   ["test_update_ratios"]),
    "L1 norms": ("ratios_sol", [("vector_norm(new - old)", "vector_norm(new - old, ord=1)"),
                                ("vector_norm(old)", "vector_norm(old, ord=1)")], ["test_update_ratios"]),
    # TrainingMonitor
    "unbiased std": ("monitor_sol", [("a.std(correction=0)", "a.std()")], ["test_monitor_activations"]),
    "saturation of the pre-activation": ("monitor_sol", [
        ("flat_part = (a.abs() > self.threshold) if isinstance(module, nn.Tanh) else (a == 0)",
         "z = inputs[0].detach()\n                flat_part = (z.abs() > self.threshold) if isinstance(module, nn.Tanh) else (z <= 0)")],
        ["test_monitor_activations"]),
    "ReLU saturation as a < 0": ("monitor_sol", [("else (a == 0)", "else (a < 0)")], ["test_monitor_activations"]),
    "remove() leaves the hooks": ("monitor_sol", [("            handle.remove()", "            pass")],
                                  ["test_monitor_activations"]),
    "norm of the bias gradient": ("monitor_sol", [("module.weight.register_hook", "module.bias.register_hook")],
                                  ["test_monitor_gradients"]),
    "first forward only": ("monitor_sol", [("self._activations[name] = {", "self._activations.setdefault(name, {"),
                                           ("flat_part.double().mean().item()}", "flat_part.double().mean().item()})")],
                           ["test_monitor_activations"]),
    # should_abort
    "NaN only": ("abort_sol", [("not math.isfinite(value) or value > 3 * initial_loss", "math.isnan(value)")],
                 ["test_should_abort"]),
    "comparison only (blind to NaN)": ("abort_sol", [("not math.isfinite(value) or value > 3 * initial_loss",
                                                      "value > 3 * initial_loss")], ["test_should_abort"]),
    ">= instead of >": ("abort_sol", [("value > 3 * initial_loss", "value >= 3 * initial_loss")], ["test_should_abort"]),
    "last loss only": ("abort_sol", [("for value in history)", "for value in history[-1:])")], ["test_should_abort"]),
    # lr_range_test
    "model state saved without a copy": ("range_sol", [("saved_model = copy.deepcopy(model.state_dict())",
                                                        "saved_model = model.state_dict()")],
                                         ["test_range_test_restores"]),
    "optimizer not restored": ("range_sol", [("optimizer.load_state_dict(saved_optimizer)", "pass")],
                               ["test_range_test_restores"]),
    "optimizer state saved without a copy": ("range_sol", [("saved_optimizer = copy.deepcopy(optimizer.state_dict())",
                                                            "saved_optimizer = optimizer.state_dict()")],
                                             ["test_range_test_restores"]),
    "no bias correction": ("range_sol", [("current = average / (1 - beta ** (k + 1))", "current = average")],
                           ["test_range_test_curve"]),
    "linear sweep": ("range_sol", [("lr = lr_min * (lr_max / lr_min) ** (k / (num_steps - 1))",
                                    "lr = lr_min + (lr_max - lr_min) * k / (num_steps - 1)")], ["test_range_test_curve"]),
    "never stops": ("range_sol", [("if not math.isfinite(current) or current > diverge * lowest:",
                                   "if not math.isfinite(current):")], ["test_range_test_curve"]),
    "minimum / 10 instead of steepest descent": ("range_sol", [("suggestion = lrs[steepest]",
                                                                "suggestion = lrs[int(np.argmin(smoothed))] / 10")],
                                                 ["test_range_test_curve"]),
    "same minibatch order every pass": ("range_sol", [("order, position = torch.randperm(n, generator=generator), 0\n"
                                                       "        batch",
                                                       "order, position = order, 0\n        batch")],
                                        ["test_range_test_curve"]),
    # sample_log_uniform
    "uniform, not log-uniform": ("loguniform_sol", [("np.exp(rng.uniform(np.log(low), np.log(high), size))",
                                                     "rng.uniform(low, high, size)")], ["test_log_uniform"]),
    "mixed bases": ("loguniform_sol", [("np.exp(rng.uniform(", "10 ** (rng.uniform(")], ["test_log_uniform"]),
    # random_search
    "log hyperparameters drawn uniformly": ("search_sol", [("sample_log_uniform(rng, lo, hi) if scale == \"log\" else ",
                                                           "")], ["test_random_search"]),
    "never refines": ("search_sol", [("if r < rounds - 1:", "if False:")], ["test_random_search"]),
    "refines from the last round only": ("search_sol", [("leaders = sorted(trials, key=rank)[:top_k]",
                                                         "leaders = sorted(trials[-n_trials:], key=rank)[:top_k]")],
                                         ["test_random_search"]),
    "edge judged on a linear scale": ("search_sol", [("t = math.log if scale == \"log\" else float", "t = float")],
                                      ["test_random_search"]),
    "NaN values not ranked last": ("search_sol", [("return trial[\"value\"] if math.isfinite(trial[\"value\"]) else math.inf",
                                                   "return trial[\"value\"]")], ["test_random_search"]),
    # diagnose
    "a high loss anywhere read as bad init": ("diagnose_sol", [
        ("    if any(not math.isfinite(v) or v > 3 * start for v in train) or train[-1] >= start:\n"
         "        return \"lr_too_high\"\n"
         "    if start > math.log(history[\"num_classes\"]) + 1",
         "    if max(train) > math.log(history[\"num_classes\"]) + 1 or history[\"initial_saturation\"] > 0.5:\n"
         "        return \"bad_init\"\n"
         "    if any(not math.isfinite(v) or v > 3 * start for v in train) or train[-1] >= start:\n"
         "        return \"lr_too_high\"\n"
         "    if start > math.log(history[\"num_classes\"]) + 1")], ["test_diagnose_traces", "test_diagnose_planted"]),
    "bad init checked before the explosion": ("diagnose_sol", [
        ("    if any(not math.isfinite(v) or v > 3 * start for v in train) or train[-1] >= start:\n"
         "        return \"lr_too_high\"\n",
         ""),
        ("        return \"bad_init\"\n",
         "        return \"bad_init\"\n"
         "    if any(not math.isfinite(v) or v > 3 * start for v in train) or train[-1] >= start:\n"
         "        return \"lr_too_high\"\n")], ["test_diagnose_traces"]),
    "blind to NaN": ("diagnose_sol", [("any(not math.isfinite(v) or v > 3 * start for v in train)",
                                       "any(v > 3 * start for v in train)")], ["test_diagnose_traces"]),
    "overfitting by the accuracy gap only": ("diagnose_sol", [("if gap > 0.2 or (fell > 0 and val[0] - val[-1] < 0.5 * fell):",
                                                               "if gap > 0.2:")],
                                             ["test_diagnose_traces", "test_diagnose_planted"]),
    "saturation ignored": ("diagnose_sol", [(" or history[\"initial_saturation\"] > 0.5", "")],
                           ["test_diagnose_traces", "test_diagnose_planted"]),
    "ln 10 hard-coded": ("diagnose_sol", [("math.log(history[\"num_classes\"])", "math.log(10)")], ["test_diagnose_traces"]),
}


@pytest.mark.parametrize("bug", list(BUGS))
def test_planted_bug_is_rejected_by_the_notebook_tests(bug):
    cell, edits, tests = BUGS[bug]
    verdicts = run_notebook({cell: edits}, set(tests))
    assert set(verdicts) == set(tests)
    for test_id, message in verdicts.items():
        assert message is not None, f"{bug}: {test_id} passes a notebook with this bug"


@pytest.mark.parametrize("variant, edits", [
    ("base-10 logarithms", [("np.exp(rng.uniform(np.log(low), np.log(high), size))",
                             "10.0 ** rng.uniform(np.log10(low), np.log10(high), size)")]),
    ("a power of a uniform draw", [("np.exp(rng.uniform(np.log(low), np.log(high), size))",
                                    "low * (high / low) ** rng.uniform(0.0, 1.0, size)")]),
])
def test_equivalent_log_uniform_draws_pass(variant, edits):
    verdicts = run_notebook({"loguniform_sol": edits}, {"test_log_uniform", "test_random_search"})
    assert verdicts == {"test_log_uniform": None, "test_random_search": None}, verdicts


def test_the_unchanged_notebook_passes_every_test():
    every = {nbgrader_meta(c)["grade_id"] for c in read_source(ID).cells if is_test_cell(c)}
    verdicts = run_notebook({}, every)
    assert verdicts == {t: None for t in every}, {t: m for t, m in verdicts.items() if m}
