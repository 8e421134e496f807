"""The trusted re-check's channel to the student's kernel (autograder/recheck.py), run on a
plain local kernel: what it reports must not depend on timing."""

import json

import numpy as np
import pytest
from jupyter_client.manager import KernelManager

from autograder.recheck import Bridge


@pytest.fixture
def bridge(tmp_path):
    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    yield Bridge(km, kc, tmp_path, timeout=30)
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def test_a_failing_cell_never_costs_the_next_one(bridge):
    """A cell that raises (sys.exit, a failing demo) must not make the kernel skip the cell
    after it. ipykernel answers an erroring request first and only then, if the client asked
    it to stop on errors, starts aborting the requests queued behind it: a quick next request
    was dropped in a few percent of tries. Here the kernel is made slow to start aborting, so
    a bridge that asks for stop-on-error loses the next cell every time."""
    assert bridge.execute(
        "import time\n"
        "_kernel = get_ipython().kernel\n"
        "_abort_queues = _kernel._abort_queues\n"
        "_kernel._abort_queues = lambda *a, **k: (time.sleep(0.3), _abort_queues(*a, **k))\n") is None
    for i in range(5):
        assert bridge.execute("import sys; sys.exit(0)") == "SystemExit: 0"
        assert bridge.execute(f"defined_after_error = {i}") is None, f"try {i}: the cell was skipped"
        assert bridge.execute(f"assert defined_after_error == {i}") is None, f"try {i}"


def test_errors_are_reported_with_type_and_message(bridge):
    assert bridge.execute("1 / 0") == "ZeroDivisionError: division by zero"
    assert bridge.execute("x = 1") is None


# -- what the student's code does to its arguments reaches the test's objects ------------------
@pytest.fixture
def student(bridge):
    """Define functions in the kernel; returns proxies to them."""
    from autograder.recheck import DRIVER, RemoteObject

    assert bridge.execute(DRIVER + f"\n__tnn_serve.serve = __tnn_install({str(bridge.rpc_dir)!r})\n") is None

    def define(source, *names):
        assert bridge.execute(source) is None
        return [RemoteObject(bridge, {"name": n}) for n in names]
    return define


def test_an_array_changed_in_place_is_changed_for_the_test(student):
    """A numerical gradient that restores x by arithmetic leaves it off by rounding: the
    test must see that, as it would in one process."""
    probe, = student('''
import numpy as np
def probe(f, x, h=1e-5):
    grad = np.zeros_like(x)
    for i in range(x.size):
        x.flat[i] += h; plus = f(x)
        x.flat[i] -= 2 * h; minus = f(x)
        x.flat[i] += h
        grad.flat[i] = (plus - minus) / (2 * h)
    return grad
''', "probe")
    x = np.array([0.1, 0.7, 1.3])
    before = x.copy()
    grad = probe(lambda z: float(np.sum(z ** 2)), x)
    assert np.allclose(grad, 2 * before)
    assert not np.array_equal(x, before), "the rounding the student's code left in x is lost"
    assert np.max(np.abs(x - before)) < 1e-15


def test_a_closure_sees_the_array_as_the_students_code_left_it_so_far(student):
    """The test's function reads the array it closed over, not its argument."""
    probe, = student('''
def probe(f, x, h=0.5):
    x[0] += h; plus = f(None)
    x[0] -= 2 * h; minus = f(None)
    x[0] += h
    return (plus - minus) / (2 * h)
''', "probe")
    x = np.array([3.0])
    assert probe(lambda _: float(x[0] ** 2), x) == pytest.approx(6.0)
    assert x[0] == 3.0


def test_state_dicts_lists_tensors_and_modules_change_as_in_one_process(student):
    torch = pytest.importorskip("torch")
    update, = student('''
import numpy as np, torch
def update(state, items, t, model):
    state["m"] *= 2                 # an array inside a dict, in place
    state["t"] = state["t"] + 1     # a number replaced
    state["new"] = np.ones(2)       # a key added
    del state["old"]
    items.append(3.5)
    t.add_(1.0)
    with torch.no_grad():
        model.weight.fill_(0.25)
    return None
''', "update")
    m = np.array([1.0, 2.0])
    state = {"m": m, "t": 1, "old": "x"}
    items = [1.0]
    t = torch.zeros(3)
    model = torch.nn.Linear(2, 1)
    assert update(state, items, t, model) is None
    assert state["m"] is m and np.array_equal(m, [2.0, 4.0])
    assert state["t"] == 2 and np.array_equal(state["new"], np.ones(2)) and "old" not in state
    assert items == [1.0, 3.5]
    assert torch.equal(t, torch.ones(3))
    assert torch.all(model.weight == 0.25)


def test_an_array_passed_twice_is_one_array_for_the_student(student):
    same, = student('''
def same(a, b):
    a[0] = 9.0
    return float(b[0])
''', "same")
    x = np.array([1.0, 2.0])
    assert same(x, x) == 9.0 and x[0] == 9.0
    assert same(np.array([1.0]), np.array([1.0])) == 1.0


def test_changes_stay_when_the_students_code_raises(student):
    fail, = student('''
def fail(x):
    x[0] = -1.0
    raise ValueError("bad input")
''', "fail")
    x = np.array([5.0])
    with pytest.raises(ValueError):
        fail(x)
    assert x[0] == -1.0


def test_unchanged_arguments_cost_no_copy_back(student, bridge):
    keep, = student("def keep(x, state):\n    return float(x.sum())\n", "keep")
    x = np.arange(4.0)
    state = {"v": np.zeros(2)}
    v = state["v"]
    assert keep(x, state) == 6.0
    assert state["v"] is v
    answer = json.loads(sorted(bridge.rpc_dir.glob("r*.res.json"))[-1].read_text())
    assert answer["arguments_after"] == [{"$same": 0}, {"$same": 0}]


def test_a_module_the_students_code_made_stays_in_its_kernel(student):
    """A model made by the student's code comes back as a handle; passing it to another of the
    student's functions changes nothing on the test's side, and is not an error."""
    pytest.importorskip("torch")
    make, train = student('''
import torch
def make():
    return torch.nn.Linear(2, 1)
def train(model, x):
    with torch.no_grad():
        model.weight.fill_(1.0)
    return float(model(torch.as_tensor(x)).sum() - model.bias.sum())
''', "make", "train")
    model = make()
    assert train(model, np.ones((1, 2), dtype=np.float32)) == pytest.approx(2.0)
