"""Which image goes to which input of a multi-input network (MixMo spec §3.8, official `randperm_static`).

Input 0 gets a random permutation of the (repeated) batch; every input m >= 1 gets an independent permutation of
input 0's list, so rows pair different images (or, with probability about b/bs, a copy of the same one). With
`input_repetition = q` (MixShare: 0.1) the first `int(bs * q)` positions of every permutation are the identity, so
those rows carry the same image on every input, which narrows the train/test gap of aligned encoders.
"""

from __future__ import annotations

import torch


def _static_prefix_permutation(n: int, fixed: int, generator: torch.Generator | None) -> torch.Tensor:
    """Identity on the first `fixed` positions, a random order of the remaining ones after them."""
    rest = torch.randperm(n - fixed, generator=generator) + fixed
    return torch.cat([torch.arange(fixed), rest])


def pair_inputs(
    batch_indices: torch.Tensor,
    num_members: int,
    input_repetition: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(bs,) dataset indices -> (bs, M) indices: column m is what input m sees in each row."""
    if not 0.0 <= input_repetition <= 1.0:
        raise ValueError(f"input_repetition must be in [0, 1], got {input_repetition}")
    bs = batch_indices.shape[0]
    fixed = int(bs * input_repetition)
    first = batch_indices[_static_prefix_permutation(bs, fixed, generator)]
    columns = [first]
    for _ in range(1, num_members):
        columns.append(first[_static_prefix_permutation(bs, fixed, generator)])
    return torch.stack(columns, dim=1)
