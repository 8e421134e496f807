"""The chapter 6 reference solutions against PyTorch (autograd for the penalties, SGD's weight_decay,
F.dropout's statistics and its own masks injected into the backward pass, torch.save/torch.load round trips,
an uninterrupted run as the oracle of resume equivalence, replays of the training recipes), and the planted
bugs: for each graded function, wrong-but-plausible copies of the reference that the notebook's own test cells
must reject.

The planted bugs are the reference solution cells with one edit each, executed into a fresh namespace of the
notebook's definitions (so the provided drivers call the planted copy), followed by the test cells that must
fail on them, visible and hidden parts together, exactly as they are in the source.
"""

import ast
import copy
import io
import math
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from autograder.course import is_test_cell, nbgrader_meta, read_source
from autograder.recheck import strip_magics
from nnkit.gradcheck import numerical_grad_array, rel_error
from oracles import torch_autograd_named

A = "ch6_regularization"


@pytest.fixture(scope="module")
def ref(reference):
    return reference(A)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """As the notebook's setup cell does: these networks are small, and threads only wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_weights(rng, zeros=0.0):
    weights = {f"p{i}": rng.normal(size=tuple(int(s) for s in rng.integers(1, 6, size=int(rng.integers(1, 4))))) * 2
               for i in range(int(rng.integers(1, 5)))}
    for w in weights.values():
        w[rng.random(w.shape) < zeros] = 0.0
    return weights


# -- penalties --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_penalties_match_autograd(ref, seed):
    rng = np.random.default_rng(600 + seed)
    weights = random_weights(rng, zeros=0.25)
    kept = copy.deepcopy(weights)
    lam = float(rng.uniform(1e-3, 3.0))
    for name, penalty in [("l2_penalty", lambda ts: lam / 2 * sum(t.pow(2).sum() for t in ts.values())),
                          ("l1_penalty", lambda ts: lam * sum(t.abs().sum() for t in ts.values()))]:
        want_loss, want_grads = torch_autograd_named(penalty, weights)
        loss, grads = ref[name](weights, lam)
        assert isinstance(loss, float)
        assert loss == pytest.approx(float(want_loss), rel=1e-12)
        assert grads.keys() == weights.keys()
        for key in weights:
            np.testing.assert_allclose(grads[key], want_grads[key], rtol=1e-12, atol=0)
            np.testing.assert_array_equal(weights[key], kept[key])
            assert grads[key] is not weights[key]


def test_l2_is_sgd_weight_decay_with_momentum(ref):
    """Adding l2_penalty's gradient by hand gives torch.optim.SGD(weight_decay=lam)'s trajectory, with momentum."""
    rng = np.random.default_rng(610)
    w0, lam = rng.normal(size=(3, 4)), 0.07
    data_grads = [rng.normal(size=(3, 4)) for _ in range(15)]
    mine = torch.tensor(w0, requires_grad=True)
    theirs = torch.tensor(w0, requires_grad=True)
    by_hand = torch.optim.SGD([mine], lr=0.05, momentum=0.9)
    built_in = torch.optim.SGD([theirs], lr=0.05, momentum=0.9, weight_decay=lam)
    for g in data_grads:
        _, penalty_grads = ref["l2_penalty"]({"w": mine.detach().numpy().copy()}, lam)
        mine.grad = torch.tensor(g + penalty_grads["w"])
        theirs.grad = torch.tensor(g)
        by_hand.step()
        built_in.step()
        np.testing.assert_allclose(mine.detach().numpy(), theirs.detach().numpy(), rtol=1e-12, atol=1e-14)


# -- dropout ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("p", [0.0, 0.15, 0.5, 0.85, 1.0])
def test_dropout_forward_mask_and_torch_statistics(ref, p):
    shape = (250, 400)
    x = np.random.default_rng(620).normal(size=shape) + 1.0
    x_before = x.copy()
    with np.errstate(all="raise"):
        out, cache = ref["dropout_forward"](x, p, True, np.random.default_rng(621))
    np.testing.assert_array_equal(x, x_before)
    draws = np.random.default_rng(621).random(shape)
    np.testing.assert_array_equal(cache["mask"], draws >= p)
    assert cache["mask"].dtype == bool and cache["p"] == p and cache["train"] is True
    torch.manual_seed(622)
    theirs = F.dropout(torch.tensor(x), p, training=True).numpy()
    n = x.size
    if 0 < p < 1:
        bound = 5 * math.sqrt(p * (1 - p) / n)
        assert abs(np.mean(out != 0) - (1 - p)) < bound
        assert abs(np.mean(theirs != 0) - (1 - p)) < bound
        # Each kept unit is multiplied by F.dropout's factor.
        factor_ours = out[out != 0] / x[out != 0]
        factor_theirs = theirs[theirs != 0] / x[theirs != 0]
        np.testing.assert_allclose(factor_ours, factor_theirs[0], rtol=1e-12)
        spread = math.sqrt(p / (1 - p) * np.mean(x ** 2) / n)
        assert abs(out.mean() - x.mean()) < 5 * spread and abs(theirs.mean() - x.mean()) < 5 * spread
    else:  # p = 0 and p = 1 are deterministic: F.dropout is the oracle element by element
        np.testing.assert_array_equal(out, theirs)


def test_dropout_eval_is_identity_like_torch(ref):
    x = np.random.default_rng(623).normal(size=(7, 3, 2))
    for p in (0.0, 0.4, 1.0):
        out, cache = ref["dropout_forward"](x, p, False, np.random.default_rng(0))
        np.testing.assert_array_equal(out, F.dropout(torch.tensor(x), p, training=False).numpy())
        assert cache["mask"].all() and cache["train"] is False
        dout = np.random.default_rng(624).normal(size=x.shape)
        np.testing.assert_array_equal(ref["dropout_backward"](dout, cache), dout)
    for bad in (-0.01, 1.01):
        with pytest.raises(ValueError):
            ref["dropout_forward"](x, bad, True, np.random.default_rng(0))


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_backward_with_torch_masks(ref, p):
    """F.dropout's own mask injected into dropout_backward: the gradient equals autograd's."""
    rng = np.random.default_rng(int(p * 1000))
    x, dout = rng.normal(size=(8, 11)) + 0.3, rng.normal(size=(8, 11))
    torch.manual_seed(625)
    leaf = torch.tensor(x, requires_grad=True)
    out = F.dropout(leaf, p, training=True)
    out.backward(torch.tensor(dout))
    mask = (out != 0).detach().numpy()
    dx = ref["dropout_backward"](dout, {"mask": mask, "p": p, "train": True})
    np.testing.assert_allclose(dx, leaf.grad.numpy(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("p", [0.3, 0.7])
def test_dropout_backward_against_numerical_gradient(ref, p):
    rng = np.random.default_rng(626)
    x, dout = rng.normal(size=(5, 6)), rng.normal(size=(5, 6))
    _, cache = ref["dropout_forward"](x, p, True, np.random.default_rng(627))
    numeric = numerical_grad_array(lambda z: ref["dropout_forward"](z, p, True, np.random.default_rng(627))[0], x, dout)
    assert rel_error(ref["dropout_backward"](dout, cache), numeric) < 1e-9


# -- parameter groups -------------------------------------------------------------------------------------

def decayed_by_type(model):
    """Names of the weights of Linear and ConvNd modules, found through the module tree, in parameter order."""
    owner_of = {}
    for module in model.modules():
        for pname, param in module.named_parameters(recurse=False):
            owner_of[id(param)] = (module, pname)
    convs = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    return [name for name, param in model.named_parameters()
            if owner_of[id(param)][1] == "weight" and isinstance(owner_of[id(param)][0], (nn.Linear, *convs))]


def test_decay_groups_match_module_types(ref):
    torch.manual_seed(0)
    models = [
        nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(16, 8),
                      nn.LayerNorm(8), nn.Linear(8, 2, bias=False)),
        nn.Sequential(nn.Sequential(nn.Sequential(nn.Linear(5, 5), nn.GroupNorm(1, 5))), nn.Conv1d(2, 2, 1),
                      nn.Conv3d(1, 1, 1, bias=False), nn.InstanceNorm1d(3, affine=True)),
        nn.Linear(3, 3),
        nn.Sequential(nn.BatchNorm1d(3)),
    ]
    for model in models:
        groups = ref["decay_parameter_groups"](model, 0.3)
        names = [n for n, _ in model.named_parameters()]
        want = decayed_by_type(model)
        assert groups[0] == {"params": want, "weight_decay": 0.3}
        assert groups[1] == {"params": [n for n in names if n not in want], "weight_decay": 0.0}


def test_decay_groups_in_adamw_leave_biases_and_norms(ref):
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    groups = ref["decay_parameter_groups"](model, 0.5)
    adamw = torch.optim.AdamW(ref["optimizer_groups"](model, groups), lr=0.1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    adamw.step()
    for name, p in model.named_parameters():
        factor = 1 - 0.1 * 0.5 if name in ("0.weight", "3.weight") else 1.0
        torch.testing.assert_close(p.detach(), before[name] * factor)


# -- early stopping ---------------------------------------------------------------------------------------

def tracker_oracle(history, patience):
    """Stop decision and state after each epoch, by the textbook loop over the history."""
    best, best_epoch, since, out = math.inf, 0, 0, []
    for epoch, value in enumerate(history, start=1):
        if value < best:
            best, best_epoch, since = value, epoch, 0
        else:
            since += 1
        out.append((since >= patience, {"best": best, "best_epoch": best_epoch, "epoch": epoch, "bad_epochs": since}))
    return out


@pytest.mark.parametrize("seed", range(6))
def test_early_stopping_matches_the_loop(ref, seed):
    rng = np.random.default_rng(630 + seed)
    history = [float(v) for v in np.round(rng.normal(1.0, 0.5, size=30), 1)]
    if seed == 2:
        history[4] = float("nan")
    patience = int(rng.integers(1, 7))
    state = ref["early_stopping_init"]()
    for (want_stop, want_state), value in zip(tracker_oracle(history, patience), history):
        kept = copy.deepcopy(state)
        stop, new_state = ref["early_stopping_update"](state, value, patience)
        assert state == kept and new_state is not state
        assert stop == want_stop and new_state == want_state
        state = new_state


# -- checkpoints ------------------------------------------------------------------------------------------

def fresh_objects(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Dropout(0.2), nn.Linear(7, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    return model, opt, sched, torch.Generator().manual_seed(seed)


def test_checkpoint_round_trip_restores_every_state(ref):
    model, opt, sched, gen = fresh_objects(0)
    for _ in range(3):  # some optimizer and scheduler state, moved BN statistics, used generators
        loss = model(torch.randn(8, 5, generator=gen)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    np.random.seed(1)
    random.seed(2)
    np.random.standard_normal(3)
    random.random()
    oracle = io.BytesIO()  # the same objects through torch.save/torch.load directly
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "gen": gen.get_state(), "torch": torch.get_rng_state()}, oracle)
    want_numpy, want_python = np.random.get_state(), random.getstate()
    buffer = io.BytesIO()
    ref["save_checkpoint"](buffer, model, opt, sched, gen, 3, 0.25)
    # Saving draws nothing.
    assert np.random.get_state()[2] == want_numpy[2] and random.getstate() == want_python
    oracle.seek(0)
    want = torch.load(oracle, weights_only=True)
    model2, opt2, sched2, gen2 = fresh_objects(9)
    np.random.seed(9)
    random.seed(9)
    buffer.seek(0)
    epoch, best = ref["load_checkpoint"](buffer, model2, opt2, sched2, gen2)
    assert (epoch, best) == (3, 0.25)
    for key, value in want["model"].items():
        torch.testing.assert_close(model2.state_dict()[key], value, rtol=0, atol=0)
    got_opt = opt2.state_dict()
    assert got_opt["param_groups"] == want["opt"]["param_groups"]
    for index, entry in want["opt"]["state"].items():
        torch.testing.assert_close(got_opt["state"][index]["momentum_buffer"], entry["momentum_buffer"], rtol=0, atol=0)
    assert sched2.state_dict() == want["sched"]
    assert torch.equal(gen2.get_state(), want["gen"]) and torch.equal(torch.get_rng_state(), want["torch"])
    got_numpy = np.random.get_state()
    assert got_numpy[0] == want_numpy[0] and np.array_equal(got_numpy[1], want_numpy[1])
    assert got_numpy[2:] == want_numpy[2:] and random.getstate() == want_python


def test_checkpoint_to_a_path(ref, tmp_path):
    model, opt, sched, gen = fresh_objects(3)
    path = tmp_path / "run.pt"
    ref["save_checkpoint"](str(path), model, opt, sched, gen, 7, 1.5)
    assert path.exists()
    model2, opt2, sched2, gen2 = fresh_objects(4)
    assert ref["load_checkpoint"](str(path), model2, opt2, sched2, gen2) == (7, 1.5)
    for key, value in model.state_dict().items():
        assert torch.equal(model2.state_dict()[key], value)


def never_interrupted(total_epochs, seed):
    """The oracle of resume equivalence: resume_run's experiment run straight through (no checkpoint) on the
    CPU. Returns (training losses, validation losses, final state as float64 arrays)."""
    from nnkit.data import load_mnist1d

    inputs, labels, _, _ = load_mnist1d()
    train_x, train_y = inputs[:500], labels[:500]
    val_x, val_y = torch.from_numpy(inputs[-500:]), torch.from_numpy(labels[-500:])
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    layers = [nn.Linear(40, 64), nn.ReLU(), nn.Dropout(0.3), nn.Linear(64, 10)]
    network = nn.Sequential(*layers)
    adam = torch.optim.Adam(network.parameters(), lr=3e-3)
    decay = torch.optim.lr_scheduler.StepLR(adam, step_size=2, gamma=0.5)
    order_source = torch.Generator().manual_seed(seed)
    train_curve, val_curve = [], []
    for _ in range(total_epochs):
        network.train()
        order = torch.randperm(len(train_x), generator=order_source).numpy()
        weighted = []
        for batch in np.array_split(order, len(order) // 50):
            offset = random.randint(-3, 3)
            noise = np.random.standard_normal((len(batch), 40))
            signal = torch.tensor(np.roll(train_x[batch], offset, axis=1) + 0.05 * noise, dtype=torch.float32)
            batch_loss = F.cross_entropy(network(signal), torch.from_numpy(train_y[batch]))
            adam.zero_grad()
            batch_loss.backward()
            adam.step()
            weighted.append(batch_loss.item() * len(batch))
        train_curve.append(sum(weighted) / len(train_x))
        network.eval()
        with torch.no_grad():
            val_curve.append(F.cross_entropy(network(val_x), val_y).item())
        decay.step()
    return train_curve, val_curve, {k: v.double().numpy() for k, v in network.state_dict().items()}


@pytest.mark.parametrize("epochs, stop_after, seed, where", [(6, 3, 0, "memory"), (5, 4, 1, "file"),
                                                             (4, 1, 2, "memory")])
def test_resume_equivalence_against_an_uninterrupted_run(ref, epochs, stop_after, seed, where):
    train_curve, val_curve, state = never_interrupted(epochs, seed)
    resumed = ref["resume_run"](epochs, stop_after, seed, "cpu", where=where)
    assert resumed["loaded"] == (stop_after, min(val_curve[:stop_after]))
    assert resumed["train_loss"] == train_curve and resumed["val_loss"] == val_curve  # bit for bit on the CPU
    for key, value in state.items():
        np.testing.assert_array_equal(resumed["weights"][key], value)
    straight = ref["resume_run"](epochs, None, seed, "cpu")
    assert straight["train_loss"] == train_curve and straight["loaded"] is None


# -- training recipes -------------------------------------------------------------------------------------

def replay(model, data, *, epochs, lr, weight_decay, seed, batch_size, patience):
    """fit's recipe written out: (train losses, validation losses, best epoch); the model ends as fit leaves it."""
    x, y, xv, yv = (torch.from_numpy(a) for a in data)
    decayed = set(decayed_by_type(model))
    named = list(model.named_parameters())
    sgd = torch.optim.SGD([{"params": [p for n, p in named if n in decayed], "weight_decay": weight_decay},
                           {"params": [p for n, p in named if n not in decayed], "weight_decay": 0.0}],
                          lr=lr, momentum=0.9)
    torch.manual_seed(seed)
    order_source = torch.Generator().manual_seed(seed)
    train_curve, val_curve, best_state = [], [], None
    for _ in range(epochs):
        model.train()
        order, weighted = torch.randperm(len(x), generator=order_source), 0.0
        for begin in range(0, len(x), batch_size):
            batch = order[begin:begin + batch_size]
            batch_loss = F.cross_entropy(model(x[batch]), y[batch])
            sgd.zero_grad()
            batch_loss.backward()
            sgd.step()
            weighted += batch_loss.item() * len(batch)
        train_curve.append(weighted / len(x))
        model.eval()
        with torch.no_grad():
            val_curve.append(F.cross_entropy(model(xv), yv).item())
        best_epoch = int(np.argmin(val_curve)) + 1
        if best_epoch == len(val_curve):
            best_state = copy.deepcopy(model.state_dict())
        if patience is not None and len(val_curve) - best_epoch >= patience:
            break
    if patience is not None:
        model.load_state_dict(best_state)
    return train_curve, val_curve, int(np.argmin(val_curve)) + 1


@pytest.mark.parametrize("dropout, weight_decay, patience, seed", [(0.5, 0.01, None, 0), (0.0, 0.0, 2, 1),
                                                                   (0.2, 0.03, 3, 2)])
def test_fit_against_a_replay(ref, dropout, weight_decay, patience, seed):
    data = ref["small_mnist1d"]()
    got_model, want_model = ref["make_mlp"](dropout, seed, 48), ref["make_mlp"](dropout, seed, 48)
    got = ref["fit"](got_model, data, epochs=25, lr=0.05, weight_decay=weight_decay, seed=seed, device="cpu",
                     patience=patience)
    train_curve, val_curve, best_epoch = replay(want_model, data, epochs=25, lr=0.05, weight_decay=weight_decay,
                                                seed=seed, batch_size=50, patience=patience)
    assert len(got["val_loss"]) == len(val_curve) and got["best_epoch"] == best_epoch
    if patience == 2:
        assert len(val_curve) < 25  # without regularization the run does stop early
    np.testing.assert_allclose(got["train_loss"], train_curve, rtol=1e-5)
    np.testing.assert_allclose(got["val_loss"], val_curve, rtol=1e-5)
    for key, value in want_model.state_dict().items():
        torch.testing.assert_close(got_model.state_dict()[key], value, rtol=1e-5, atol=1e-6)


def test_make_mlp_layout(ref):
    model = ref["make_mlp"](0.25, 3, 16)
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Dropout"] * 2 + ["Linear"]
    assert [m.p for m in model if isinstance(m, nn.Dropout)] == [0.25, 0.25]
    torch.manual_seed(3)
    first = nn.Linear(40, 16)
    assert torch.equal(model[0].weight, first.weight)
    assert [type(m).__name__ for m in ref["make_mlp"](0.0, 3, 16)] == ["Linear", "ReLU"] * 2 + ["Linear"]


def test_dropout_and_weight_decay_shrink_the_gap(ref):
    data = ref["small_mnist1d"]()
    for seed in (5, 6):
        measured = {}
        for name, dropout, weight_decay in [("plain", 0.0, 0.0), ("dropout", 0.5, 0.0), ("decay", 0.0, 0.02)]:
            model = ref["mlp_for_tests"](dropout, seed, hidden=128)
            ref["fit"](model, data, epochs=30, lr=0.05, weight_decay=weight_decay, seed=seed, device="cpu")
            train_loss, train_acc = ref["evaluate"](model, data[0], data[1])
            val_loss, val_acc = ref["evaluate"](model, data[2], data[3])
            measured[name] = (train_loss, val_loss - train_loss, train_acc - val_acc)
        for name in ("dropout", "decay"):
            assert measured[name][1] < 0.5 * measured["plain"][1], measured
            assert measured[name][2] < measured["plain"][2] - 0.1, measured
            assert measured[name][0] > measured["plain"][0], measured


def test_ensemble_averages_probabilities(ref):
    from nnkit.data import load_mnist1d

    _, _, x, y = load_mnist1d()
    x, y = x[:100], y[:100]
    members = []
    for seed in range(4):
        torch.manual_seed(seed)
        members.append(nn.Sequential(nn.Linear(40, 20), nn.BatchNorm1d(20), nn.ReLU(), nn.Dropout(0.5),
                                     nn.Linear(20, 10)))
        with torch.no_grad():
            members[-1][1].running_var.fill_(0.5 + seed)
            members[-1][-1].weight.mul_(1 + 2 * seed)
    with torch.no_grad():
        each = torch.stack([torch.softmax(copy.deepcopy(m).eval()(torch.from_numpy(x)).double(), dim=1)
                            for m in members])
    got = ref["ensemble_probabilities"](members, x)
    assert got.dtype == np.float64 and got.shape == (100, 10)
    np.testing.assert_allclose(got, each.mean(0).numpy(), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(got.sum(1), 1.0, rtol=1e-6)
    rows = np.arange(100)
    assert -np.log(got[rows, y]).mean() <= -np.log(each.numpy()[:, rows, y]).mean()


def test_fine_tune_freezes_backbone_and_matches_a_replay(ref):
    x, y = ref["small_mnist1d"](150, 1)[:2]
    model = ref["pretrained_model"](7)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("backbone.")}
    got = ref["fine_tune"](model, x, y, epochs=3, lr=0.2, seed=7, device="cpu", batch_size=40)
    for key, value in frozen.items():
        assert torch.equal(model.state_dict()[key], value), key
    oracle = ref["pretrained_model"](7)
    with torch.no_grad():
        features = oracle.backbone.eval()(torch.from_numpy(x))  # a frozen eval-mode backbone is a fixed map
    head = oracle.head
    sgd = torch.optim.SGD(head.parameters(), lr=0.2, momentum=0.9)
    order_source, curve = torch.Generator().manual_seed(7), []
    for _ in range(3):
        order, weighted = torch.randperm(len(x), generator=order_source), 0.0
        for begin in range(0, len(x), 40):
            batch = order[begin:begin + 40]
            batch_loss = F.cross_entropy(head(features[batch]), torch.from_numpy(y)[batch])
            sgd.zero_grad()
            batch_loss.backward()
            sgd.step()
            weighted += batch_loss.item() * len(batch)
        curve.append(weighted / len(x))
    np.testing.assert_allclose(got["loss_history"], curve, rtol=1e-5)
    torch.testing.assert_close(model.head.weight, head.weight, rtol=1e-5, atol=1e-6)


# -- planted bugs: the notebook's own tests must reject them ------------------------------------------------

def _is_definition(node):
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        return not any(isinstance(n, ast.Call) for n in ast.walk(node.value))
    return False


def _cells():
    cells = {}
    for cell in read_source(A).cells:
        if cell.cell_type == "code":
            cells[nbgrader_meta(cell)["grade_id"]] = cell
    return cells


CELLS = _cells()


def notebook_namespace():
    """A fresh namespace holding the notebook's definitions (what the reference fixture gives, but a new dict
    each time, so that a planted function is the one the provided drivers call)."""
    namespace = {"__name__": "planted"}
    for cell in CELLS.values():
        if is_test_cell(cell):
            continue
        tree = ast.parse(strip_magics(cell.source))
        tree.body = [node for node in tree.body if _is_definition(node)]
        exec(compile(tree, "<definitions>", "exec"), namespace)
    return namespace


def run_test_cell(namespace, grade_id):
    exec(compile(strip_magics(CELLS[grade_id].source), f"<{grade_id}>", "exec"), namespace)


# (what is wrong, solution cell, text of the reference, planted text (or tuples of them), test cells that must
#  reject it, the exception they raise)
PLANTED = [
    # L2 / L1
    ("l2 gradient 2 lam W", "penalty_sol", "{name: lam * w for", "{name: 2 * lam * w for", ["test_l2_penalty"],
     AssertionError),
    ("l2 loss without the 1/2", "penalty_sol", "loss = 0.5 * lam * sum(", "loss = lam * sum(", ["test_l2_penalty"],
     AssertionError),
    ("l2 loss as a mean", "penalty_sol", "float(np.sum(w * w))", "float(np.mean(w * w))", ["test_l2_penalty"],
     AssertionError),
    ("l1 gradient lam W", "penalty_sol", "lam * np.sign(w)", "lam * w", ["test_l1_penalty"], AssertionError),
    ("l1 subgradient +lam at 0", "penalty_sol", "lam * np.sign(w)", "lam * np.where(w >= 0, 1.0, -1.0)",
     ["test_l1_penalty"], AssertionError),
    ("l1 loss with a 1/2", "penalty_sol", "loss = lam * sum(float(np.sum(np.abs(w)))",
     "loss = 0.5 * lam * sum(float(np.sum(np.abs(w)))", ["test_l1_penalty"], AssertionError),
    # dropout forward
    ("dropout scaled by 1/p", "dropout_sol", "scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)\n    return x * keep",
     "scale = 0.0 if p == 0.0 else 1.0 / p\n    return x * keep", ["test_dropout_forward", "test_dropout_statistics"],
     AssertionError),
    ("p taken as the keep probability", "dropout_sol", "keep = rng.random(x.shape) >= p",
     "keep = rng.random(x.shape) < p", ["test_dropout_forward", "test_dropout_statistics"], AssertionError),
    ("scaled at test time as well", "dropout_sol",
     "return x.copy(), {\"mask\"", "return x * (1.0 - p), {\"mask\"", ["test_dropout_eval_and_edges"], AssertionError),
    ("no scaling at all in training", "dropout_sol", "return x * keep * scale,", "return x * keep * 1.0,",
     ["test_dropout_forward", "test_dropout_statistics"], AssertionError),
    ("scaled twice", "dropout_sol", "return x * keep * scale,", "return x * keep * scale * scale,",
     ["test_dropout_forward", "test_dropout_statistics"], AssertionError),
    ("dropout active in eval mode", "dropout_sol", "    if not train:\n", "    if False:\n",
     ["test_dropout_eval_and_edges"], AssertionError),
    ("p = 1 divides by zero", "dropout_sol",
     "scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)\n    return x * keep * scale",
     "return x * keep / (1.0 - p)", ["test_dropout_eval_and_edges"], FloatingPointError),
    # dropout backward
    ("backward without the scaling", "dropout_sol", "return dout * cache[\"mask\"] * scale",
     "return dout * cache[\"mask\"]", ["test_dropout_backward"], AssertionError),
    ("backward scaled by 1/p", "dropout_sol",
     "scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)\n    return dout", "scale = 1.0 / p\n    return dout",
     ["test_dropout_backward"], AssertionError),
    ("backward scales in eval mode", "dropout_sol", "    if not cache[\"train\"]:\n", "    if False:\n",
     ["test_dropout_backward"], AssertionError),
    # parameter groups
    ("biases and norms decayed too", "groups_sol", "(decay if id(param) in decayed else no_decay)", "decay",
     ["test_decay_groups"], AssertionError),
    ("decay chosen by the name 'weight'", "groups_sol", "(decay if id(param) in decayed else no_decay)",
     "(decay if name.endswith('weight') else no_decay)", ["test_decay_groups"], AssertionError),
    ("nested modules missed", "groups_sol", "for m in model.modules()", "for m in model.children()",
     ["test_decay_groups"], AssertionError),
    ("group values swapped", "groups_sol", "\"weight_decay\": weight_decay}, {\"params\": no_decay, \"weight_decay\": 0.0}",
     "\"weight_decay\": 0.0}, {\"params\": no_decay, \"weight_decay\": weight_decay}", ["test_decay_groups"],
     AssertionError),
    # early stopping
    ("best starts at 0", "early_sol", "\"best\": math.inf,", "\"best\": 0.0,",
     ["test_early_stopping", "test_early_stopping_patience"], AssertionError),
    ("best starts at -inf (the lecture notes' loop)", "early_sol", "\"best\": math.inf,", "\"best\": -math.inf,",
     ["test_early_stopping", "test_early_stopping_patience"], AssertionError),
    ("patience off by one", "early_sol", ">= patience", "> patience",
     ["test_early_stopping", "test_early_stopping_patience"], AssertionError),
    ("a tie counts as an improvement", "early_sol", "if val_loss < state[\"best\"]:", "if val_loss <= state[\"best\"]:",
     ["test_early_stopping", "test_early_stopping_patience"], AssertionError),
    ("counter not reset by an improvement", "early_sol", "\"epoch\": epoch, \"bad_epochs\": 0}",
     "\"epoch\": epoch, \"bad_epochs\": state[\"bad_epochs\"]}", ["test_early_stopping"], AssertionError),
    ("state changed in place", "early_sol",
     "new_state = {**state, \"epoch\": epoch, \"bad_epochs\": state[\"bad_epochs\"] + 1}",
     "state.update(epoch=epoch, bad_epochs=state[\"bad_epochs\"] + 1)\n        new_state = state",
     ["test_early_stopping"], AssertionError),
    # checkpoints
    ("optimizer state not restored", "checkpoint_sol", "    optimizer.load_state_dict(checkpoint[\"optimizer\"])\n",
     "", ["test_checkpoint_resume"], AssertionError),
    ("model not restored", "checkpoint_sol", "    model.load_state_dict(checkpoint[\"model\"])\n", "",
     ["test_checkpoint_resume", "test_checkpoint_file"], AssertionError),
    ("scheduler not restored", "checkpoint_sol", "    scheduler.load_state_dict(checkpoint[\"scheduler\"])\n", "",
     ["test_checkpoint_resume"], AssertionError),
    ("PyTorch's generator not restored", "checkpoint_sol", "    torch.set_rng_state(checkpoint[\"torch_rng\"])\n", "",
     ["test_checkpoint_resume", "test_checkpoint_file"], AssertionError),
    ("NumPy's generator not restored", "checkpoint_sol", "    np.random.set_state(checkpoint[\"numpy_rng\"])\n", "",
     ["test_checkpoint_resume", "test_checkpoint_file"], AssertionError),
    ("Python's generator not restored", "checkpoint_sol", "    random.setstate(checkpoint[\"python_rng\"])\n", "",
     ["test_checkpoint_resume", "test_checkpoint_file"], AssertionError),
    ("shuffling generator not restored", "checkpoint_sol", "    generator.set_state(checkpoint[\"generator\"])\n", "",
     ["test_checkpoint_resume", "test_checkpoint_file"], AssertionError),
    ("epoch off by one", "checkpoint_sol", "\"epoch\": epoch,", "\"epoch\": epoch - 1,",
     ["test_checkpoint_resume", "test_checkpoint_file"], AssertionError),
    ("best value not kept", "checkpoint_sol", "return checkpoint[\"epoch\"], checkpoint[\"best\"]",
     "return checkpoint[\"epoch\"], math.inf", ["test_checkpoint_resume"], AssertionError),
    # PyTorch: make_mlp and fit
    ("Dropout layers even at p = 0", "fit_sol", "        if dropout > 0:\n", "        if True:\n", ["test_make_mlp"],
     AssertionError),
    ("make_mlp not seeded", "fit_sol", "    torch.manual_seed(seed)\n    layers, width", "    layers, width",
     ["test_make_mlp"], AssertionError),
    ("validation loss in train mode", "fit_sol", "        model.eval()\n        with torch.no_grad():\n            val_loss",
     "        with torch.no_grad():\n            val_loss", ["test_fit_recipe"], AssertionError),
    ("weight decay on every parameter", "fit_sol",
     "optimizer_groups(model, decay_parameter_groups(model, weight_decay)),\n                                lr=lr, momentum=0.9)",
     "model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)", ["test_fit_recipe"], AssertionError),
    ("dropout not seeded", "fit_sol", "    torch.manual_seed(seed)\n    generator", "    generator",
     ["test_fit_recipe"], AssertionError),
    ("last weights kept instead of the best", "fit_sol", "        model.load_state_dict(best_state)\n",
     "        pass\n", ["test_fit_early_stopping"], AssertionError),
    ("early stopping ignored", "fit_sol", "            if stop:\n                break\n", "",
     ["test_fit_early_stopping"], AssertionError),
    # ensembles
    ("softmax of the averaged logits", "ensemble_sol",
     ("probs = F.softmax(model(torch.as_tensor(x, dtype=torch.float32, device=where)), dim=1)",
      "return total / len(models)"),
     ("probs = model(torch.as_tensor(x, dtype=torch.float32, device=where))",
      "return F.softmax(torch.from_numpy(total / len(models)), dim=1).numpy()"), ["test_ensemble"], AssertionError),
    ("logits averaged, no softmax", "ensemble_sol",
     "probs = F.softmax(model(torch.as_tensor(x, dtype=torch.float32, device=where)), dim=1)",
     "probs = model(torch.as_tensor(x, dtype=torch.float32, device=where))", ["test_ensemble"], AssertionError),
    ("members left in train mode", "ensemble_sol", "        model.eval()\n", "", ["test_ensemble"], AssertionError),
    ("log-probabilities averaged", "ensemble_sol", "probs = F.softmax(", "probs = F.log_softmax(", ["test_ensemble"],
     AssertionError),
    # fine-tuning
    ("backbone left in train mode (BN statistics move)", "finetune_sol", "        model.backbone.eval()\n", "",
     ["test_fine_tune"], AssertionError),
    ("whole model in train mode each epoch", "finetune_sol", "        model.head.train()\n        model.backbone.eval()\n",
     "        model.train()\n", ["test_fine_tune"], AssertionError),
    ("backbone not frozen", "finetune_sol",
     "for param in model.backbone.parameters():\n        param.requires_grad_(False)\n    optimizer = torch.optim.SGD(model.head",
     "optimizer = torch.optim.SGD(model", ["test_fine_tune"], AssertionError),
]


def planted_source(cell, old, new):
    """The solution cell with the edit (one pair of texts, or a tuple of texts and a tuple of replacements)."""
    source = CELLS[cell].source
    for before, after in zip(*((old, new) if isinstance(old, tuple) else ((old,), (new,)))):
        assert before in source, f"a planted bug no longer matches the reference of {cell}: {before!r}"
        source = source.replace(before, after)
    return source


@pytest.mark.parametrize("what, cell, old, new, tests, error", PLANTED, ids=[p[0] for p in PLANTED])
def test_planted_bug_is_rejected(what, cell, old, new, tests, error):
    source = planted_source(cell, old, new)
    for grade_id in tests:
        namespace = notebook_namespace()
        exec(compile(source, f"<planted: {what}>", "exec"), namespace)
        with pytest.raises(error):
            run_test_cell(namespace, grade_id)


GRADED = [grade_id for grade_id, cell in CELLS.items() if is_test_cell(cell)]


def test_every_graded_function_has_planted_bugs():
    solution_cells = {grade_id for grade_id, cell in CELLS.items() if nbgrader_meta(cell).get("solution")}
    planted_in = {p[1] for p in PLANTED}
    assert solution_cells <= planted_in, solution_cells - planted_in
    rejecting = {t for p in PLANTED for t in p[4]}
    assert set(GRADED) - rejecting <= {"test_regularization_gap"}, set(GRADED) - rejecting


@pytest.mark.parametrize("grade_id", GRADED)
def test_reference_passes_each_test_cell_in_the_planting_harness(grade_id):
    """The control: unplanted, every test cell passes in the same harness."""
    run_test_cell(notebook_namespace(), grade_id)
