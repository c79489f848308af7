"""One GuidedMix step end to end (spec §8 item 21), its gradient flow (§2.8) and its switches, on digit-scenes."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest
import torch
from guidedmix.method import GuidedMix
from guidedmix.recipes import BOOK, DIGITS
from mixlab.engine import TrainProgress
from mixlab.testing import build_on_cpu, torch_threads

TINY = dataclasses.replace(DIGITS, labels="20", batch_size=2, unlabeled_batch_size=2, crop_size=32, steps=10,
                           warmup_iters=1, max_eval_images=10)  # fmt: skip


def built(**changes) -> GuidedMix:
    return build_on_cpu(GuidedMix(dataclasses.replace(TINY, **changes)))


def step_terms(method: GuidedMix, step: int):
    progress = TrainProgress(step, 0, 1, method.steps_per_epoch, method.total_steps)
    batch = next(method.train_batches(step // method.steps_per_epoch, step % method.steps_per_epoch))
    return method.train_step(batch, progress)


def test_warmup_step_has_only_the_supervised_terms():
    with torch_threads(1):
        out = step_terms(built(), 0)
    assert set(out.logs) == {"ce", "cla"} and out.loss.dim() == 0 and torch.isfinite(out.loss)


def test_full_step_is_finite_deterministic_and_has_every_term():
    with torch_threads(1):
        first = step_terms(built(), 3)
        second = step_terms(built(), 3)
    assert {"ce", "cla", "usup", "dec", "lambda", "w_usup"} <= set(first.logs)
    assert all(torch.isfinite(v).all() for v in first.logs.values())
    assert 0 < float(first.logs["lambda"]) < 0.5
    assert torch.equal(first.loss, second.loss)


def batch_of(method: GuidedMix, step: int):
    return next(method.train_batches(step // method.steps_per_epoch, step % method.steps_per_epoch))


def test_usup_reaches_the_direct_prediction_and_dec_only_the_mixed_pass(monkeypatch):
    """L_usup (direct): gradient into pass A's unlabeled rows only, none into pass B; L_dec: into pass B only."""
    seen = {}

    def keep(key, fn):
        def wrapped(x, **kwargs):
            out = fn(x, **kwargs)
            seen[key] = out["logits"] if isinstance(out, dict) else out
            return out

        return wrapped

    with torch_threads(1):
        method = built()
        monkeypatch.setattr(method, "forward", keep("a", method.forward))
        monkeypatch.setattr(method, "second_pass", keep("b", method.second_pass))
        terms, _, _, w_usup = method.losses(batch_of(method, 3))
        usup_a, usup_b = torch.autograd.grad(
            terms["usup"], [seen["a"], seen["b"]], retain_graph=True, allow_unused=True
        )
        dec_a, dec_b = torch.autograd.grad(terms["dec"], [seen["a"], seen["b"]], allow_unused=True)
    b_l = 2
    assert w_usup > 0
    assert float(usup_a[b_l:].abs().sum()) > 0 and float(usup_a[:b_l].abs().sum()) == 0.0
    assert usup_b is None or float(usup_b.abs().sum()) == 0.0
    assert dec_a is None or float(dec_a.abs().sum()) == 0.0
    assert float(dec_b[2:].abs().sum()) > 0  # pass B's rows after the B_u unlabeled mixes: the labeled mixes


def test_supervised_variant_uses_no_unlabeled_stream():
    with torch_threads(1):
        method = built(variant="supervised")
        out = step_terms(method, 5)
    assert method.unlabeled_stream is None and set(out.logs) == {"ce", "cla"}


@pytest.mark.parametrize(
    "changes",
    [
        {"pairing": "random"},
        {"pair_feature": "pooled", "pair_assignment": "one_to_one"},
        {"decoupling": "hard", "dec_decoupling": "soft", "decouple_normalize": True},
        {"decouple_space": "logits", "usup_grad": "mixed", "mse_reduction": "paper"},
        {"usup_grad": "both", "usup_mask_padding": True, "lambda_per_sample": True},
        {"use_mitrans": False, "use_cls_loss": False, "use_dec_loss": False},
        {"mix_level": "features", "decouple_space": "logits"},
        pytest.param(
            {
                "arch": "deeplabv3plus",
                "encoder": "resnet18",
                "output_stride": 16,
                "psp_channels": None,
                "decoder_channels": [32],
            },
            marks=pytest.mark.skipif(
                importlib.util.find_spec("segmentation_models_pytorch") is None,
                reason="DeepLabV3+ needs segmentation-models-pytorch",
            ),
        ),
    ],
)
def test_every_switch_trains_a_step(changes):
    with torch_threads(1):
        method = built(**changes)
        out = step_terms(method, 3)
        out.loss.backward()
    assert torch.isfinite(out.loss) and "usup" in out.logs
    assert ("dec" in out.logs) == (changes.get("use_dec_loss", True) and changes.get("mix_level") != "features")
    grads = [p.grad for p in method.model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)  # every parameter in the graph (what DDP needs)


def test_evaluation_reports_miou_and_per_class_iou():
    with torch_threads(1):
        method = built()
        metrics = method.evaluate(TrainProgress(0, 0, 1, 1))
    assert 0.0 <= metrics["miou"] <= 100.0 and len(metrics["per_class_iou"]) == 11


def test_recipes_carry_the_paper_tables():
    tables = {r.table for recipe in BOOK for r in recipe.results}
    for n in ("Table 1", "Table 2", "Table 3", "Table 4", "Table 5", "Table 6", "Table 7", "Table 8", "Table 9",
              "Table 10"):  # fmt: skip
        assert any(t == n or t.startswith(n + " ") for t in tables), n
    main = BOOK.get("voc-r50-1464")
    assert main.config.encoder == "resnet50" and main.config.crop_size == 321 and main.config.steps == 40_000
    assert BOOK.get("cityscapes-r101-1-8").config.pairing == "random"
    assert not BOOK.get("cityscapes-r101-1-8").config.use_cls_loss
    assert BOOK.get("voc-r101-1-2-crop512-msflip").results[0].metrics["miou"] == 78.2
