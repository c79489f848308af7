"""Hybrid-quality metrics of SAMOSA and SciMix (spec §2.8, §3.8; [S] §4.3-4.4, [X] §III-B, [T] A.3.2-A.3.3).

Both methods build hybrids ``x_h`` from a *semantic* parent ``x_1`` (a.k.a. ``x_c``: the class) and a
*non-semantic* parent ``x_2`` (a.k.a. ``x_r``: appearance, background, context), and measure how well the two
factors were separated. The functions here are tensor-in / number-out: callers run the models (classifier,
``E_r``, oracle) themselves and pass the outputs. Everything is computed in float64 on the CPU, like the rest of
:mod:`mixlab.metrics`. Rates are **fractions in [0, 1]** (the papers print them in percent: multiply by 100).

* :func:`semantic_separation` -- ``s_c``: accuracy on the hybrids w.r.t. the semantic parent's label. SAMOSA
  uses its own classifier ``C∘E_c``, SciMix an "oracle" trained on the whole labeled set; the function does not
  care which.
* :func:`nonsemantic_separation` -- SAMOSA's ``s_r``, distance ratio ``d_c/d_r`` and mean distances in a
  code space (``z_r``: SAMOSA's 64 gates, or any (N, ...) code such as SciMix's 8x8x8 map).
* :func:`background_separation` -- SAMOSA's MNIST-M background variant of ``s_r``.
* :func:`pixel_preservation_rate` -- SciMix's ``s_r``: closer to the non-semantic parent in pixel space.
* :func:`samosa_separation` / :func:`scimix_transfer` -- the two table rows in one call each (spec §3.11-14).
* :func:`inherits_nonsemantic_class` -- how often a hybrid is classified as its non-semantic parent's class.
* :func:`linear_probe_accuracy` -- a linear head trained on frozen features (SAMOSA's probe on ``z_r`` / ``z_c``).
* :func:`hybrid_pairs` -- the (semantic, non-semantic) index pairs of an evaluation hybrid set ``D_H``.

Two definitions differ on ties, on purpose, because the sources do: SAMOSA counts a hybrid as a success when
``d_l >= d_r`` ([S] §4.4, non-strict), SciMix when ``||x_h - x_c|| > ||x_h - x_r||`` ([X] §III-B, strict). So a
pair whose two parents are identical counts as a success for SAMOSA and as a failure for SciMix.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------------------------- input checks


def _predictions(pred: torch.Tensor, name: str = "pred") -> torch.Tensor:
    """Class predictions (N,) from labels (N,) or logits / probabilities (N, K), on the CPU."""
    pred = pred.detach().to("cpu")
    if pred.ndim == 2:
        if pred.shape[1] == 0:
            raise ValueError(f"{name}: logits need at least one class, got shape {tuple(pred.shape)}.")
        return pred.argmax(dim=1)
    if pred.ndim != 1:
        raise ValueError(f"{name}: expected predicted labels (N,) or logits (N, K), got shape {tuple(pred.shape)}.")
    return pred.long()


def _labels(labels: torch.Tensor, n: int, name: str) -> torch.Tensor:
    """Integer class labels (N,) on the CPU, checked against the number of predictions."""
    labels = labels.detach().to("cpu")
    if labels.ndim != 1:
        raise ValueError(f"{name}: expected integer class labels of shape (N,), got {tuple(labels.shape)}.")
    if labels.shape[0] != n:
        raise ValueError(f"{name}: expected {n} labels (one per hybrid), got {labels.shape[0]}.")
    return labels.long()


def _predictions_and_labels(pred: torch.Tensor, labels: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    p = _predictions(pred)
    if p.shape[0] == 0:
        raise ValueError("Expected at least one hybrid, got an empty prediction tensor.")
    return p, _labels(labels, p.shape[0], name)


def _same_shape_batch(**tensors: torch.Tensor) -> list[torch.Tensor]:
    """float64 CPU copies of tensors that must all have the same shape (N, ...) with N >= 1."""
    names = list(tensors)
    out = [t.detach().to("cpu", torch.float64) for t in tensors.values()]
    shapes = {tuple(t.shape) for t in out}
    if len(shapes) != 1:
        desc = ", ".join(f"{n} {tuple(t.shape)}" for n, t in zip(names, out))
        raise ValueError(f"Expected {', '.join(names)} of the same shape (N, ...), got {desc}.")
    if out[0].ndim == 0 or out[0].shape[0] == 0:
        raise ValueError(f"Expected a batch of shape (N, ...) with N >= 1, got {tuple(out[0].shape)}.")
    return out


def _squared_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample squared L2 distance ||a_i - b_i||^2 over all non-batch dimensions (codes are flattened)."""
    return (a - b).reshape(a.shape[0], -1).pow(2).sum(dim=1)


def _separation_from_distances(d_l: torch.Tensor, d_r: torch.Tensor) -> dict[str, float]:
    """SAMOSA's success rate ``d_l >= d_r`` and the ratio of the mean distances (Table 3)."""
    mean_l, mean_r = d_l.mean().item(), d_r.mean().item()
    if mean_r > 0.0:
        ratio = mean_l / mean_r
    else:  # every hybrid coincides with its non-semantic parent
        ratio = float("inf") if mean_l > 0.0 else float("nan")
    return {
        "s_r": (d_l >= d_r).double().mean().item(),
        "ratio": ratio,
        "mean_d_l": mean_l,
        "mean_d_r": mean_r,
    }


# --------------------------------------------------------------------------------------------- semantic side


def semantic_separation(pred: torch.Tensor, parent_labels: torch.Tensor) -> float:
    """``s_c``: fraction of hybrids classified as their semantic parent's class (spec §2.8 / §3.8).

    ``pred`` is the classifier's output on the hybrids, labels (N,) or logits / probabilities (N, K) (reduced by
    argmax); ``parent_labels`` the semantic parent's integer labels (N,). SAMOSA evaluates its own ``C∘E_c``
    ([S] §4.4), SciMix an oracle classifier trained on the whole labeled set ([X] §III-B); both on unfiltered
    hybrids (spec §2.8 [REC], §3.8). Returns a fraction in [0, 1].
    """
    p, y = _predictions_and_labels(pred, parent_labels, "parent_labels")
    return (p == y).double().mean().item()


def inherits_nonsemantic_class(
    pred: torch.Tensor, labels_2: torch.Tensor, labels_1: torch.Tensor | None = None
) -> float:
    """Fraction of hybrids classified as their *non-semantic* parent's class ([S] §4.3: "about 10%", chance).

    ``pred``: predictions on the hybrids, labels (N,) or logits (N, K); ``labels_2``: the non-semantic parent's
    labels (N,). By default this is the literal rate the paper quotes, which includes the pairs whose two parents
    share a class; with random pairs and a perfect ``s_c`` it is the chance level ~1/K (10% on CIFAR-10 / SVHN).
    Pass ``labels_1`` (the semantic parent's labels) to count only the pairs with different parent classes, where
    inheriting the non-semantic class is a genuine failure (chance is then ~0 for a classifier that follows
    ``x_1``); raises ``ValueError`` if no such pair is left.
    """
    p, y2 = _predictions_and_labels(pred, labels_2, "labels_2")
    if labels_1 is not None:
        keep = _labels(labels_1, p.shape[0], "labels_1") != y2
        if not bool(keep.any()):
            raise ValueError("Every pair has parents of the same class: no pair is left to count.")
        p, y2 = p[keep], y2[keep]
    return (p == y2).double().mean().item()


# --------------------------------------------------------------------------------------------- non-semantic side


def nonsemantic_separation(z_h: torch.Tensor, z_1: torch.Tensor, z_2: torch.Tensor) -> dict[str, float]:
    """SAMOSA's non-semantic separation in a code space ([S] §4.4, Table 3a; spec §2.8).

    ``z_h = E_r(x_h)``, ``z_1 = E_r(x_1)`` (semantic parent), ``z_2 = E_r(x_2)`` (non-semantic parent), all of the
    same shape (N, ...): vectors (SAMOSA's 64 gates) or maps (SciMix's (N, 8, 8, 8) ``z_r``), flattened per sample.
    With ``d_l = ||z_h - z_1||^2`` and ``d_r = ||z_h - z_2||^2`` (squared L2), returns

    * ``s_r``: fraction of hybrids with ``d_l >= d_r`` (closer to, or as close to, the non-semantic parent);
    * ``ratio``: ``mean(d_l) / mean(d_r)``, Table 3's ``d_c/d_r`` (``d_c`` is ``d_l``); ``inf`` when every
      ``d_r`` is 0 but not every ``d_l``, ``nan`` when all distances are 0;
    * ``mean_d_l``, ``mean_d_r``: the two mean distances.
    """
    h, a, b = _same_shape_batch(z_h=z_h, z_1=z_1, z_2=z_2)
    return _separation_from_distances(_squared_distance(h, a), _squared_distance(h, b))


def background_separation(
    x_h: torch.Tensor, mask_1: torch.Tensor, background_1: torch.Tensor, background_2: torch.Tensor
) -> dict[str, float]:
    """SAMOSA's MNIST-M background-inheritance variant of ``s_r`` ([S] §4.4, Table 3b; spec §2.8).

    ``x_h`` (N, C, H, W) are the hybrids, ``background_1`` / ``background_2`` (N, C, H, W) the BSDS crops the two
    parents were composed with, and ``mask_1`` the semantic parent's background mask (1 on background pixels, 0 on
    the digit; soft values are used as weights), of shape (N, H, W), (N, 1, H, W) or (N, C, H, W). Everything is
    restricted to the semantic parent's background, the only region where the hybrid should show ``x_2``'s
    background while keeping ``x_1``'s digit:

    ``b_h = m_1 ⊙ x_h``, ``d_l = ||b_h - m_1 ⊙ b_1||^2``, ``d_r = ||b_h - m_1 ⊙ b_2||^2``; success if ``d_l >= d_r``.

    Returns the same keys as :func:`nonsemantic_separation` (``s_r``, ``ratio`` = Table 3b's ``d_c/d_r``,
    ``mean_d_l``, ``mean_d_r``). Images, crops and mask must be in the same value range / normalisation.
    """
    h, b1, b2 = _same_shape_batch(x_h=x_h, background_1=background_1, background_2=background_2)
    m = mask_1.detach().to("cpu", torch.float64)
    if h.ndim == 4 and m.ndim == 3:
        m = m.unsqueeze(1)
    if m.ndim != h.ndim or m.shape[0] != h.shape[0] or m.shape[2:] != h.shape[2:] or m.shape[1] not in (1, h.shape[1]):
        raise ValueError(
            f"mask_1 must have shape (N, H, W), (N, 1, H, W) or (N, C, H, W) matching x_h {tuple(h.shape)}, "
            f"got {tuple(mask_1.shape)}."
        )
    b_h = m * h
    return _separation_from_distances(_squared_distance(b_h, m * b1), _squared_distance(b_h, m * b2))


def _standardize(x: torch.Tensor, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor):
    """Channel-wise ``(x - mean) / std`` on dim 1 of x (N, C, ...)."""
    mu = torch.as_tensor(mean, dtype=torch.float64).reshape(-1)
    sd = torch.as_tensor(std, dtype=torch.float64).reshape(-1)
    if x.ndim < 2 or mu.numel() != x.shape[1] or sd.numel() != x.shape[1]:
        raise ValueError(
            f"mean and std need one value per channel (dim 1) of images {tuple(x.shape)}, "
            f"got {mu.numel()} and {sd.numel()}."
        )
    if bool((sd <= 0).any()):
        raise ValueError(f"std must be positive, got {sd.tolist()}.")
    view = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mu.reshape(view)) / sd.reshape(view)


def pixel_preservation_rate(
    x_h: torch.Tensor,
    x_c: torch.Tensor,
    x_r: torch.Tensor,
    *,
    mean: Sequence[float] | torch.Tensor | None = None,
    std: Sequence[float] | torch.Tensor | None = None,
) -> float:
    """SciMix's non-semantic preservation rate ``s_r`` ([X] §III-B, [T] §2.5.3.1; spec §3.8).

    The fraction of hybrids strictly closer to their non-semantic parent in pixel space:
    ``||x_h - x_c|| > ||x_h - x_r||`` with ``x_c`` the semantic and ``x_r`` the non-semantic parent, L2 over all
    pixels and channels (squared or not gives the same comparison); a tie counts as a failure (the paper's strict
    ``>``). So ``x_h := x_r`` gives 1 (when the parents differ) and ``x_h := x_c`` gives 0; a MixUp hybrid with the
    dominant (``λ > 0.5``) parent as semantic parent gives 0 by construction (Table 2.5).

    The space is the *standardised* pixel space the networks see (spec §3.8; channel-wise standardisation with the
    train-set statistics, [T] l. 2295). Pass images already standardised, or raw images together with the
    per-channel ``mean`` and ``std`` to standardise them here (per-channel scaling changes the comparison, so the
    two are not interchangeable). The sources define ``s_r`` in pixel space only; no feature extractor is used.
    """
    h, c, r = _same_shape_batch(x_h=x_h, x_c=x_c, x_r=x_r)
    if (mean is None) != (std is None):
        raise ValueError("Pass both mean and std to standardise the images, or neither.")
    if mean is not None and std is not None:
        h, c, r = (_standardize(t, mean, std) for t in (h, c, r))
    return (_squared_distance(h, c) > _squared_distance(h, r)).double().mean().item()


# --------------------------------------------------------------------------------------------- one call per table


def samosa_separation(
    pred: torch.Tensor, labels_1: torch.Tensor, z_h: torch.Tensor, z_1: torch.Tensor, z_2: torch.Tensor
) -> dict[str, float]:
    """SAMOSA's component-separation row (Table 3a): ``s_c`` of its own classifier plus the ``z_r`` distances.

    ``pred``: ``C∘E_c`` on the hybrids (labels or logits); ``labels_1``: the semantic parents' labels; ``z_*``:
    ``E_r`` of hybrids, semantic and non-semantic parents. Keys ``s_c``, ``s_r``, ``ratio``, ``mean_d_l``,
    ``mean_d_r`` (see :func:`semantic_separation` and :func:`nonsemantic_separation`).
    """
    out = {"s_c": semantic_separation(pred, labels_1)}
    n = _predictions(pred).shape[0]
    if z_h.ndim == 0 or z_h.shape[0] != n:
        raise ValueError(f"Expected as many hybrid codes as predictions ({n}), got z_h of shape {tuple(z_h.shape)}.")
    out.update(nonsemantic_separation(z_h, z_1, z_2))
    return out


def scimix_transfer(
    oracle_pred: torch.Tensor,
    labels_c: torch.Tensor,
    x_h: torch.Tensor,
    x_c: torch.Tensor,
    x_r: torch.Tensor,
    *,
    mean: Sequence[float] | torch.Tensor | None = None,
    std: Sequence[float] | torch.Tensor | None = None,
) -> dict[str, float]:
    """SciMix's transfer rates (Table IV / Table 2.5): ``s_c`` of an oracle and the pixel-space ``s_r``.

    ``oracle_pred``: the oracle classifier on the (unfiltered) hybrids; ``labels_c``: the semantic parents'
    labels; ``x_h``, ``x_c``, ``x_r``: hybrids and their semantic / non-semantic parents (``mean``/``std`` as in
    :func:`pixel_preservation_rate`). Keys ``s_c`` and ``s_r``, fractions in [0, 1].
    """
    s_c = semantic_separation(oracle_pred, labels_c)
    n = _predictions(oracle_pred).shape[0]
    if x_h.ndim == 0 or x_h.shape[0] != n:
        raise ValueError(f"Expected as many hybrids as oracle predictions, got {x_h.shape[0]} and {n}.")
    return {"s_c": s_c, "s_r": pixel_preservation_rate(x_h, x_c, x_r, mean=mean, std=std)}


# --------------------------------------------------------------------------------------------- pairing, probe


def hybrid_pairs(
    num_semantic: int, pool_size: int, partners: int = 10, *, seed: int = 0, same_pool: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs ``(i_1, i_2)`` of an evaluation hybrid set: every semantic parent with ``partners`` random partners.

    SAMOSA's ``D_H`` mixes every labeled image with 10 random unlabeled images, ``|D_H| = 10 |D_l|`` ([S] §4.4):
    ``hybrid_pairs(len(D_l), len(D_u))``. For SciMix the spec recommends ([REC] §3.8) every test image as semantic
    parent with 1 (or 10) random partners from the same test set: ``hybrid_pairs(n, n, 1, same_pool=True)``, where
    a parent is never its own partner. Returns two int64 tensors of length ``num_semantic * partners``; ``i_1`` is
    ``0, 0, ..., 1, 1, ...`` (each parent ``partners`` times in a row). The partners of one parent are drawn
    independently and uniformly (with replacement; the sources do not say), from a private generator seeded with
    ``seed``, so the global RNG is untouched.
    """
    if num_semantic < 1 or partners < 1:
        raise ValueError(f"Need num_semantic >= 1 and partners >= 1, got {num_semantic} and {partners}.")
    if pool_size < (2 if same_pool else 1):
        raise ValueError(f"The partner pool is too small: {pool_size} images (same_pool={same_pool}).")
    if same_pool and pool_size < num_semantic:
        raise ValueError(f"same_pool needs pool_size >= num_semantic, got {pool_size} < {num_semantic}.")
    g = torch.Generator().manual_seed(seed)
    i_1 = torch.arange(num_semantic).repeat_interleave(partners)
    if same_pool:  # draw among the pool_size - 1 others, then skip over the parent itself
        i_2 = torch.randint(pool_size - 1, (i_1.numel(),), generator=g)
        i_2 = i_2 + (i_2 >= i_1).long()
    else:
        i_2 = torch.randint(pool_size, (i_1.numel(),), generator=g)
    return i_1, i_2


def _features(x: torch.Tensor, name: str) -> torch.Tensor:
    """(N, D) float64 copy of frozen features (N, ...), safe to use under autograd (no inference tensor)."""
    x = x.detach().to("cpu", torch.float64).clone()
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{name}: expected features of shape (N, ...) with N >= 1, got {tuple(x.shape)}.")
    return x.reshape(x.shape[0], -1)


def linear_probe_accuracy(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    num_classes: int | None = None,
    epochs: int = 100,
    lr: float = 0.01,
    weight_decay: float = 0.0,
    batch_size: int | None = None,
    standardize: bool = True,
    seed: int = 0,
) -> float:
    """Test accuracy (fraction in [0, 1]) of a single linear layer trained on frozen features.

    SAMOSA's probe ([S] §4.3, [T] A.3.3): a linear head on the frozen ``z_r`` of a trained MT-SAMOSA model
    (CIFAR-10, 1000 labels), trained with all 50 000 training labels, reaches about 30 %, against about 88 % for a
    linear layer on ``z_c`` trained with the 1000 labels; both evaluated on the test set. The papers give no other
    protocol detail (optimizer, epochs, pooling, normalisation), so these defaults are ours:

    * features are flattened per sample ((N, ...) -> (N, D)), so maps such as SciMix's 8x8x8 ``z_r`` work as is;
    * ``standardize=True``: per-dimension standardisation with the *train* mean and std (dimensions with zero std
      are only centred). It is an affine map, so the probe stays linear; it only conditions the problem, which
      matters for SAMOSA's softmax gates (64 values summing to 1);
    * Adam (``lr=0.01``, betas (0.9, 0.999), eps 1e-8; ``weight_decay`` is an L2 penalty added to the gradient),
      the update of ``torch.optim.Adam`` written out (which keeps the first call from importing ``torch._dynamo``,
      seconds on a small CPU); cross-entropy, ``epochs`` passes; ``batch_size=None`` means full batch, otherwise
      mini-batches in a seeded random order (the last one may be smaller);
    * initialisation as ``nn.Linear`` (uniform in +-1/sqrt(D)), drawn from a private generator seeded with
      ``seed``; float64 on the CPU. The result is deterministic given the inputs and ``seed``, and the global RNG
      is untouched.

    ``num_classes`` defaults to 1 + the largest label in train and test.
    """
    x_tr, x_te = _features(train_features, "train_features"), _features(test_features, "test_features")
    y_tr = _labels(train_labels, x_tr.shape[0], "train_labels").clone()  # not an inference tensor: autograd saves it
    y_te = _labels(test_labels, x_te.shape[0], "test_labels")
    if x_tr.shape[1] != x_te.shape[1]:
        raise ValueError(f"Train and test features differ in size: {x_tr.shape[1]} vs {x_te.shape[1]} per sample.")
    if epochs < 1 or lr <= 0 or weight_decay < 0 or (batch_size is not None and batch_size < 1):
        raise ValueError(
            f"Need epochs >= 1, lr > 0, weight_decay >= 0 and batch_size >= 1 (or None); "
            f"got {epochs}, {lr}, {weight_decay}, {batch_size}."
        )
    lowest = min(int(y_tr.min()), int(y_te.min()))
    highest = max(int(y_tr.max()), int(y_te.max()))
    k = highest + 1 if num_classes is None else int(num_classes)
    if lowest < 0 or highest >= k:
        raise ValueError(f"Labels must lie in [0, {k}), got [{lowest}, {highest}].")
    if standardize:
        mu = x_tr.mean(dim=0)
        sd = x_tr.std(dim=0, unbiased=False) if x_tr.shape[0] > 1 else torch.zeros_like(mu)
        sd = torch.where(sd > 0, sd, torch.ones_like(sd))
        x_tr, x_te = (x_tr - mu) / sd, (x_te - mu) / sd

    g = torch.Generator().manual_seed(seed)
    d = x_tr.shape[1]
    bound = 1.0 / d**0.5
    weight = ((torch.rand(k, d, generator=g, dtype=torch.float64) * 2 - 1) * bound).requires_grad_()
    bias = ((torch.rand(k, generator=g, dtype=torch.float64) * 2 - 1) * bound).requires_grad_()
    params = [weight, bias]
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    n = x_tr.shape[0]
    step = n if batch_size is None else min(batch_size, n)
    t = 0
    with torch.enable_grad():
        for _ in range(epochs):
            order = None if batch_size is None else torch.randperm(n, generator=g)
            for start in range(0, n, step):
                idx = slice(None) if order is None else order[start : start + step]
                grads = torch.autograd.grad(F.cross_entropy(F.linear(x_tr[idx], weight, bias), y_tr[idx]), params)
                t += 1
                with torch.no_grad():  # torch.optim.Adam's update (amsgrad off), written out: see the docstring
                    for p, grad, (m, v) in zip(params, grads, moments):
                        if weight_decay:
                            grad = grad + weight_decay * p
                        m.mul_(beta1).add_(grad, alpha=1 - beta1)
                        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                        denom = (v.sqrt() / (1 - beta2**t) ** 0.5).add_(eps)
                        p.addcdiv_(m, denom, value=-lr / (1 - beta1**t))
    with torch.no_grad():
        pred = F.linear(x_te, weight, bias).argmax(dim=1)
    return (pred == y_te).double().mean().item()
