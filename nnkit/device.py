"""Choose where PyTorch code runs: the GPU when there is one, the CPU otherwise."""

import os


def pick_device(prefer: str | None = None) -> "torch.device":
    """Return the device a training loop should use.

    Order: the ``prefer`` argument, then the ``NNKIT_DEVICE`` environment variable
    (e.g. ``cpu`` to force the CPU on a GPU machine), then CUDA, then Apple's MPS,
    then the CPU. Graders and CI have no GPU, so every notebook must also run on "cpu".
    """
    import torch  # here, not at the top: `import nnkit` stays cheap where only the checks are used

    choice = prefer or os.environ.get("NNKIT_DEVICE")
    if choice:
        device = torch.device(choice)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {choice!r} was asked for, but CUDA is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
