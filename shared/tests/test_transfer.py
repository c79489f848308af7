"""Host-to-device copies, cached constants, the fused-optimizer choice and the plan's device tensors."""

import pytest
import torch
from mixlab.engine import make_optimizer
from mixlab.mixing import sample_mixing
from mixlab.transfer import constant, to_device

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_to_device_keeps_values_and_casts():
    x = torch.arange(6).view(2, 3)
    y = to_device(x, "cpu", torch.float32)
    assert y.dtype == torch.float32 and torch.equal(y, x.float())
    assert to_device(x, torch.device("cpu")) is x  # nothing to do: the same tensor


def test_constant_is_built_once_per_key():
    a = constant((0.5, 0.25, 0.125), torch.float32, "cpu")
    assert torch.equal(a, torch.tensor([0.5, 0.25, 0.125]))
    assert constant([0.5, 0.25, 0.125], torch.float32, torch.device("cpu")) is a
    assert constant((0.5, 0.25, 0.125), torch.float64, "cpu") is not a
    assert constant(3, torch.uint8, "cpu").shape == () and int(constant(3, torch.uint8, "cpu")) == 3


def test_make_optimizer_accepts_generators_and_groups_and_keeps_cpu_unfused():
    model = torch.nn.Linear(3, 2)
    opt = make_optimizer(torch.optim.SGD, model.parameters(), lr=0.1, momentum=0.9)
    assert len(opt.param_groups[0]["params"]) == 2 and not opt.param_groups[0]["fused"]
    groups = [{"params": iter([model.weight]), "weight_decay": 1e-4}, {"params": model.bias, "weight_decay": 0.0}]
    opt = make_optimizer(torch.optim.AdamW, groups, lr=1e-3)
    assert [len(g["params"]) for g in opt.param_groups] == [1, 1]
    assert opt.param_groups[0]["weight_decay"] == 1e-4 and opt.param_groups[1]["weight_decay"] == 0.0


def test_linear_plan_masks_are_spread_over_the_grid_with_the_same_values():
    torch.manual_seed(0)
    plan = sample_mixing(4, 2, 8, 8, alpha=2.0, binary_prob=0.0)
    assert plan.masks.shape == (4, 2, 1, 1, 1)
    masks, kappa = plan.device_tensors(torch.device("cpu"), torch.float16, (8, 8))
    assert masks.shape == (4, 2, 1, 8, 8) and masks.is_contiguous() and masks.dtype == torch.float16
    assert torch.equal(masks, plan.masks.to(torch.float16).expand(4, 2, 1, 8, 8))
    assert torch.equal(kappa, plan.kappa)
    binary = sample_mixing(4, 2, 8, 8, alpha=2.0, binary_prob=1.0)
    masks, _ = binary.device_tensors(torch.device("cpu"), torch.float32, (8, 8))
    assert torch.equal(masks, binary.masks)
    unspread, _ = plan.device_tensors(torch.device("cpu"), torch.float32)
    assert unspread.shape == (4, 2, 1, 1, 1)


@CUDA
def test_cuda_copies_are_asynchronous_and_optimizers_fused():
    x = torch.arange(8.0).expand(2, 8)  # an expanded view must copy too
    y = to_device(x, "cuda")
    assert y.device.type == "cuda" and torch.equal(y.cpu(), x)
    torch.cuda.set_sync_debug_mode("error")
    try:
        to_device(torch.arange(4), "cuda")  # pinned + non_blocking: no synchronisation
    finally:
        torch.cuda.set_sync_debug_mode("default")
    opt = make_optimizer(torch.optim.SGD, torch.nn.Linear(3, 2).cuda().parameters(), lr=0.1)
    assert opt.param_groups[0]["fused"] is True
