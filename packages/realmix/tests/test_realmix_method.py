"""RealMix's step on top of MixMatch: the exact special case, TSA and the OOD mask in the loss, the extended pool."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from mixlab.engine import DistInfo, Precision, Runtime, TrainProgress
from realmix.config import RealMixConfig
from realmix.method import RealMixMethod
from realmix.recipes import BOOK, recipe_for

TINY = dataclasses.replace(
    BOOK.get("digits-100-realmix").config, batch_size=8, total_steps=8, eval_every=4, extend_copies=3
)


def built(config: RealMixConfig, seed: int = 0) -> RealMixMethod:
    torch.manual_seed(seed)
    method = RealMixMethod(config)
    method.build(Runtime(torch.device("cpu"), DistInfo(), Precision("off", torch.device("cpu")), channels_last=False))
    method.forward_module = method.model
    method.model.train()
    return method


def step(method: RealMixMethod, t: int = 2):
    torch.manual_seed(123)
    return method.train_step(t, TrainProgress(t, 0, method.config.epochs, method.config.steps_per_eval))


def test_realmix_without_its_additions_is_exactly_mixmatch():
    """Spec §10.42: extend none, no TSA, gamma 0 -> the loss equals MixMatch's with the same random state."""
    plain = dataclasses.replace(TINY, extend_aug="none", tsa="none", ood_gamma=0.0)
    realmix, mixmatch = built(plain), built(dataclasses.replace(plain, variant="mixmatch"))
    a, b = step(realmix), step(mixmatch)
    assert torch.equal(a.loss, b.loss)
    assert torch.isfinite(a.loss)


def test_extend_tsa_and_ood_mask_change_the_step():
    on = dataclasses.replace(TINY, tsa="linear", ood_gamma=0.25)
    method = built(on)
    out = step(method, t=4)
    assert 0.0 <= float(out.logs["tsa_keep"]) <= 1.0
    assert float(out.logs["tsa_eta"]) == pytest.approx(0.1 + 0.9 * 4 / 8)  # linear schedule at r = 0.5, C = 10
    assert float(out.logs["ood_kept"]) == pytest.approx(1 - 4 / 16)  # floor(0.25 * 2B) rows masked, B = 8
    assert len(method.pool) == 3 * 1337  # 3 copies of every unlabeled digit (1,437 - 100 labeled)
    plain = step(built(dataclasses.replace(on, extend_aug="none")), t=4)
    assert not torch.equal(out.loss, plain.loss)


def test_unlabeled_images_come_from_the_extended_pool():
    method = built(TINY)
    batch = method.unlabeled_uint8(5)
    index = method.unlabeled_stream.batch(5)
    assert torch.equal(batch, method.pool.get(index))
    assert int(index.max()) < len(method.pool)


def test_variant_recipes_share_the_setting_and_differ_in_algorithm():
    assert recipe_for("digits", "fixmatch") == "digits-100-fixmatch"
    fix, rm = BOOK.get("digits-100-fixmatch").config, BOOK.get("digits-100-realmix").config
    assert (fix.num_labeled, fix.total_steps, fix.model) == (rm.num_labeled, rm.total_steps, rm.model)
    assert fix.optimizer == "sgd" and rm.optimizer == "adam"
    m75 = BOOK.get("cifar10-mismatch75-realmix")
    assert m75.config.ood_gamma == 0.60 and m75.config.labeled_classes == (2, 3, 4, 5, 6, 7)
    assert m75.results[0].metrics["error"] == 16.99
    assert BOOK.get("cifar10-250-realmix").results[0].metrics == {"error": 9.79, "error_std": 0.75}
    assert BOOK.get("svhn-250-realmix").config.lambda_u == 250.0 and not BOOK.get("svhn-250-realmix").config.hflip
