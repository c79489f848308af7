"""Random draws that follow the project rule: an optional ``torch.Generator``, otherwise torch's global RNG.

With a generator the numbers are drawn on the generator's device and moved to the data's device, so the same
generator gives the same augmentation on CPU and GPU. Without one they are drawn on the data's device from the
global RNG that the engine saves and restores for an exact resume.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from mixlab import rng as _rng
from mixlab.transfer import to_device


def rand(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    if generator is None:
        return torch.rand(shape, device=device)
    return to_device(torch.rand(shape, generator=generator, device=generator.device), device)


def randint(
    low: int, high: int, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    if generator is None:
        return torch.randint(low, high, shape, device=device)
    return to_device(torch.randint(low, high, shape, generator=generator, device=generator.device), device)


@contextlib.contextmanager
def seeded_global_rng(generator: torch.Generator | None) -> Iterator[None]:
    """Run code that only knows torch's global CPU RNG (torchvision's RandAugment, ``torch._standard_gamma``).

    Without a generator nothing changes. With one, the global CPU RNG is seeded from the generator inside a
    ``fork_rng`` block, so the result is a function of the generator and the caller's global state is untouched.
    """
    if generator is None:
        yield
        return
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def dirichlet(concentration: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Rows of Dirichlet samples for ``concentration`` of shape (..., K): :func:`mixlab.rng.dirichlet` on
    the CPU's global RNG (seeded from ``generator``), exact for tiny concentrations too."""
    with seeded_global_rng(generator):
        sample = _rng.dirichlet(concentration.double().cpu())
    return to_device(sample, concentration.device, torch.float32)


def beta(
    a: float, b: float, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Beta(a, b) samples (as the first coordinate of a Dirichlet(a, b))."""
    concentration = torch.tensor([a, b], dtype=torch.float64).expand(*shape, 2)
    return to_device(dirichlet(concentration, generator)[..., 0], device)
