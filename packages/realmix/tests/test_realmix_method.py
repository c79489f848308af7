"""RealMix's step on top of MixMatch: the exact special case, TSA and the OOD mask in the loss, the extended pool."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from mixlab.engine import TrainProgress
from mixlab.ssl import SSLMethod, with_variant
from mixlab.testing import build_on_cpu, torch_threads
from realmix.config import RealMixConfig
from realmix.method import REALMIX_ALGORITHMS, RealMix, realmix_method
from realmix.recipes import BOOK, recipe_for

TINY = dataclasses.replace(BOOK.get("digits-100-realmix").config, batch_size=8, steps=8, eval_every=4, extend_copies=3)


def built(config: RealMixConfig, seed: int = 0) -> SSLMethod:
    return build_on_cpu(realmix_method(config), seed)


def step(method: SSLMethod, t: int = 2):
    torch.manual_seed(123)
    return method.train_step(t, TrainProgress(t, 0, 1, method.config.steps, method.config.steps))


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
    assert (fix.num_labeled, fix.steps, fix.model) == (rm.num_labeled, rm.steps, rm.model)
    assert fix.optimizer == "sgd" and rm.optimizer == "adam"
    m75 = BOOK.get("cifar10-mismatch75-realmix")
    assert m75.config.ood_gamma == 0.60 and m75.config.labeled_classes == (2, 3, 4, 5, 6, 7)
    assert m75.results[0].metrics["error"] == 16.99
    assert BOOK.get("cifar10-250-realmix").results[0].metrics == {"error": 9.79, "error_std": 0.75}
    assert BOOK.get("svhn-250-realmix").config.lambda_u == 250.0 and not BOOK.get("svhn-250-realmix").config.hflip


#: Three steps of every `--variant` computed by the implementation before the SSL algorithms became classes (commit
#: 10478e7: one SSLMethod with a variant dict, RealMix checking `is_realmix` in its hooks), on the config below. The
#: realmix row was recomputed when the Extend copies became keyed draws (mixlab.rng.keyed_uniform, 2026-12-05): the
#: copies changed, the algorithm did not.
BEFORE_REFACTOR = {
    "supervised": ([2.2712135314941406, 2.840111017227173, 2.4199700355529785], 466.03719296216565),
    "mean-teacher": ([2.223613739013672, 2.624239444732666, 2.5324599742889404], 466.07109845991),
    "mixmatch": ([2.250471353530884, 2.4212646484375, 2.4501845836639404], 466.06049561196585),
    "fixmatch": ([2.195875644683838, 2.926305055618286, 2.4138660430908203], 466.0555960430183),
    "realmix": ([2.785997152328491, 2.7946438789367676, 2.9186103343963623], 466.0070993251891),
}


@pytest.mark.parametrize("variant", list(BEFORE_REFACTOR))
def test_every_variant_takes_the_same_steps_as_before_the_algorithms_became_classes(variant):
    base = RealMixConfig(
        dataset="digits", model="wrnmm10-1", num_labeled=50, batch_size=8, steps=64, eval_every=32, rampup_steps=16,
        crop_padding=2, hflip=False, extend_copies=2, randaugment_ops=1, tsa="linear", ood_gamma=0.25,
    )  # fmt: skip
    config = with_variant(base, variant, REALMIX_ALGORITHMS)
    config = dataclasses.replace(
        config,
        unlabeled_ratio=2 if variant == "fixmatch" else config.unlabeled_ratio,
        tsa="linear" if variant == "realmix" else config.tsa,
        ood_gamma=0.25 if variant == "realmix" else config.ood_gamma,
        extend_copies=2,
    )
    with torch_threads(1):  # the reference numbers were computed with one thread
        losses, ema = _three_steps(config, variant)
    expected_losses, expected_ema = BEFORE_REFACTOR[variant]
    assert losses == pytest.approx(expected_losses, rel=1e-6, abs=1e-6)
    # the EMA sums ~1e5 floats: CPUs with other vector units (AVX2 vs AVX-512) differ by ~1e-7 relative
    assert ema == pytest.approx(expected_ema, rel=1e-6)


def _three_steps(config: RealMixConfig, variant: str) -> tuple[list[float], float]:
    method = built(config)
    assert isinstance(method, RealMix) == (variant == "realmix") and method.name == "realmix"
    torch.manual_seed(1)
    losses = []
    for t in range(3):
        out = method.train_step(t, TrainProgress(t, 0, 2, 32))
        out.loss.backward()
        method.optimizer.step()
        method.optimizer.zero_grad()
        if method.scheduler is not None:
            method.scheduler.step()
        method.after_step(TrainProgress(t + 1, 0, 2, 32))
        losses.append(float(out.loss.detach()))
    ema = sum(float(v.double().sum()) for v in method.ema.module.state_dict().values() if v.is_floating_point())
    return losses, ema
