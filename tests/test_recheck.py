"""The trusted re-check's channel to the student's kernel (autograder/recheck.py), run on a
plain local kernel: what it reports must not depend on timing."""

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
