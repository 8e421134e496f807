"""The speed targets that need a GPU, checked by the benchmark scripts themselves (which print
ratios measured in one run); skipped without CUDA. On a GPU machine: `.venv/bin/python -m pytest -m cuda`."""

import subprocess
import sys

import pytest
import torch

from conftest import ROOT


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_course_loop_is_five_times_the_naive_loop_on_a_gpu():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "training_loop.py"), "--device", "cuda",
                             "--require-ratio", "5"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
