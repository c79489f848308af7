"""GuidedMix-Net's training step (spec §2.2) on mixlab's semi-supervised segmentation loop.

Pass A runs the labeled and unlabeled crops together (shared BatchNorm statistics): L_ce and L_cla on the labeled
half, the direct unlabeled prediction M_u, and the Γ_enc features that choose the pairs. During the warm-up that is
all. Afterwards one lambda per iteration builds x_mix = lambda x_l[pi] + (1 - lambda) x_u (each unlabeled image with
its nearest labeled image) and the labeled-labeled mix of L_dec; pass B runs both mixes. Decoupling the mixed
prediction (M_mix - lambda M_l[pi]) gives the pseudo mask that M_u is trained towards (L_usup, weight omega(t)), and
the labeled mix decoupled must give back its partner's prediction (L_dec). Gradients (§2.8): L_usup reaches M_u only
(``usup_grad="direct"``), L_dec reaches the mixed pass only; the pair features are detached.

``mix_level="features"`` is the released AAAI code's reading (spec §10): the encoder features (Γ_enc and the skips)
of the pair are mixed instead of the images, decoded, decoupled on logits, and the decoupled unlabeled logits are
trained towards the detached direct ones with a sigmoid focal loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from mixlab.engine import StepOutput, TrainProgress
from mixlab.seg.method import SegSSLMethod, cross_entropy
from mixlab.transfer import to_device

from guidedmix.config import GuidedMixConfig
from guidedmix.pairs import lupi_mix, pair_features, pair_labeled, pair_unlabeled, random_pairs, sample_lambda
from guidedmix.pseudo import classifier_loss, decouple, focal_consistency, mse, usup_weight


class GuidedMix(SegSSLMethod):
    name = "guidedmix"

    def __init__(self, config: GuidedMixConfig, *, data_root: Path | None = None, download: bool = False):
        super().__init__(config, data_root=data_root, download=download)
        self.config: GuidedMixConfig = config

    def step_generator(self, step: int) -> torch.Generator:
        """CPU generator of this step's lambda and random pairs: a function of (seed, step, rank), so resume and DDP
        draw the same values without state."""
        seed = (self.config.seed * 1_000_003 + step) * 64 + self.runtime.dist.rank
        return torch.Generator().manual_seed(seed % (2**63))

    def unlabeled_weight(self, step: int) -> float:
        cfg = self.config
        return usup_weight(
            step, w_max=cfg.w_usup_max, start=cfg.warmup_iters, rampup=round(cfg.rampup_frac * cfg.steps)
        )

    def masks_of(self, logits: torch.Tensor) -> torch.Tensor:
        """The "masks" M that decoupling works on: softmax probabilities (default) or the logits themselves."""
        return logits.float().softmax(1) if self.config.decouple_space == "prob" else logits.float()

    def supervised_terms(self, out: dict[str, torch.Tensor], masks: torch.Tensor) -> dict[str, torch.Tensor]:
        terms = {"ce": cross_entropy(out["logits"], masks)}
        if self.config.use_cls_loss:
            terms["cla"] = classifier_loss(out["cls"], masks)
        else:  # the classifier still takes part in the graph, so DDP finds a gradient for every parameter
            terms["cla_off"] = 0.0 * out["cls"].float().sum()
        return terms

    def pairs(
        self, enc_l: torch.Tensor, enc_u: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``pi`` (the labeled partner of each unlabeled image) and ``sigma`` (of each labeled seed), on the device."""
        cfg = self.config
        if cfg.pairing == "similar":
            f_l, f_u = pair_features(enc_l, cfg.pair_feature), pair_features(enc_u, cfg.pair_feature)
            return pair_unlabeled(f_l, f_u, cfg.pair_assignment), pair_labeled(f_l)
        pi, sigma = random_pairs(enc_l.shape[0], enc_u.shape[0], generator)
        return to_device(pi, enc_l.device), to_device(sigma, enc_l.device)

    def draw_lambdas(self, b_l: int, b_u: int, generator: torch.Generator, device: torch.device):
        """One lambda for the iteration (shared by both mixes), or one per mixed image; and the value logged."""
        cfg = self.config
        if cfg.lambda_per_sample:
            lam = sample_lambda(cfg.lambda_alpha, cfg.lambda_max, generator, size=b_u + b_l).float()
            return to_device(lam[:b_u], device), to_device(lam[b_u:], device), lam.mean()
        value = float(sample_lambda(cfg.lambda_alpha, cfg.lambda_max, generator))
        return value, value, torch.tensor(value)

    def train_step(self, batch: Any, progress: TrainProgress) -> StepOutput:
        return self.total(*self.losses(batch))

    def losses(self, batch: Any) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], int, float]:
        """The step's loss terms (with their graphs), extra logs, images consumed and omega(t)."""
        cfg = self.config
        step, (x_l, y_l, _), unlabeled = batch
        if cfg.variant == "supervised":
            return self.supervised_terms(self.forward(x_l), y_l), {}, x_l.shape[0], 0.0
        x_u, _, valid_u = unlabeled
        b_l, b_u = x_l.shape[0], x_u.shape[0]
        x = torch.cat([x_l, x_u])
        if step < cfg.warmup_iters:  # supervised warm-up: pass A only
            out = self.forward(x)
            terms = self.supervised_terms({k: v[:b_l] for k, v in out.items()}, y_l)
            terms["usup_off"] = 0.0 * out["logits"][b_l:].float().sum()  # every parameter in the graph for DDP
            return terms, {}, b_l + b_u, 0.0

        generator = self.step_generator(step)
        lam_u, lam_l, lam_log = self.draw_lambdas(b_l, b_u, generator, x.device)
        logs: dict[str, torch.Tensor] = {"lambda": lam_log}
        if cfg.mix_level == "features":
            chosen: dict[str, torch.Tensor] = {}

            def mix(features: list[torch.Tensor]) -> list[torch.Tensor]:
                enc = features[-1].detach()
                chosen["pi"] = pi = self.pairs(enc[:b_l], enc[b_l:], generator)[0]
                return [lupi_mix(f[:b_l][pi], f[b_l:], lam_u) for f in features]

            out = self.forward(x, feature_mix=mix)  # pass A with the mixed features decoded in the same pass
            terms = self.supervised_terms({k: v[:b_l] for k, v in out.items() if k != "mix_logits"}, y_l)
            z_l, z_u = out["logits"][:b_l].float(), out["logits"][b_l:].float()
            t_u = decouple(out["mix_logits"].float(), z_l.detach()[chosen["pi"]], lam_u, cfg.decoupling)
            terms["usup"] = cfg.focal_weight * focal_consistency(t_u, z_u.detach(), cfg.focal_gamma)
            return terms, logs, b_l + b_u, self.unlabeled_weight(step)

        out = self.forward(x)  # pass A
        terms = self.supervised_terms({k: v[:b_l] for k, v in out.items()}, y_l)
        pi, sigma = self.pairs(out["enc"][:b_l].detach(), out["enc"][b_l:].detach(), generator)
        use_dec = cfg.use_dec_loss and b_l >= 2
        mixes = [lupi_mix(x_l[pi], x_u, lam_u)]
        if use_dec:
            mixes.append(lupi_mix(x_l, x_l[sigma], lam_l))
        z_b = self.second_pass(torch.cat(mixes))  # pass B
        m_l, m_u = self.masks_of(out["logits"][:b_l]), self.masks_of(out["logits"][b_l:])
        t_u = decouple(self.masks_of(z_b[:b_u]), m_l.detach()[pi], lam_u, cfg.decoupling, cfg.decouple_normalize)
        valid = valid_u if cfg.usup_mask_padding else None
        if cfg.usup_grad == "direct":
            terms["usup"] = mse(m_u, t_u.detach(), cfg.mse_reduction, valid)
        elif cfg.usup_grad == "mixed":
            terms["usup"] = mse(t_u, m_u.detach(), cfg.mse_reduction, valid)
        else:
            terms["usup"] = mse(m_u, t_u, cfg.mse_reduction, valid)
        if use_dec:
            mode = cfg.decoupling if cfg.dec_decoupling == "same" else cfg.dec_decoupling
            d_l = decouple(self.masks_of(z_b[b_u:]), m_l.detach(), lam_l, mode, cfg.decouple_normalize)
            terms["dec"] = mse(d_l, m_l.detach()[sigma], cfg.mse_reduction)
        images = 2 * (b_l + b_u) if use_dec else b_l + 2 * b_u
        return terms, logs, images, self.unlabeled_weight(step)

    def second_pass(self, x: torch.Tensor) -> torch.Tensor:
        """Pass B's logits. Under DDP it goes through the bare module: DDP expects one forward per backward, and the
        gradient hooks still fire once per parameter after autograd has summed both passes' contributions."""
        module = self.model if self.runtime.dist.enabled else self.forward_module
        return module(self.runtime.to_input(x))["logits"]

    def total(
        self, terms: dict[str, torch.Tensor], logs: dict[str, torch.Tensor], images: int, w_usup: float = 0.0
    ) -> StepOutput:
        loss = torch.zeros((), device=next(iter(terms.values())).device)
        for key, value in terms.items():
            weight = w_usup if key == "usup" else 1.0
            loss = loss + weight * value
            if not key.endswith("_off"):
                logs[key] = value.detach()
        if "usup" in terms:
            logs["w_usup"] = torch.tensor(w_usup)
        return StepOutput(loss, images, logs)


def guidedmix_method(config: GuidedMixConfig, *, data_root: Path | None = None, download: bool = False) -> GuidedMix:
    return GuidedMix(config, data_root=data_root, download=download)
