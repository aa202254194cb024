"""Device selection: CUDA when present (or asked for), else CPU.

torch is imported inside the functions: the CLI reads :data:`DEVICE_CHOICES`
for its help text, which must not wait for torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.errors import BenchError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """Map ``auto|cpu|cuda`` to a torch device; ``auto`` picks CUDA when available."""
    import torch

    if name not in DEVICE_CHOICES:
        raise BenchError(f"unknown device {name!r}; choose one of: {', '.join(DEVICE_CHOICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda was asked for but torch.cuda.is_available() is False")
    return torch.device(name)


def describe(device: torch.device) -> str:
    """What the results row records as ``device``: 'cpu' or 'cuda:<GPU name>'."""
    import torch

    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return "cpu"
