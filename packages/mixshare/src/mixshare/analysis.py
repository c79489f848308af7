"""Feature-usage analysis of a MIMO network (thesis §3.4.1, spec §5.1): which channels each subnetwork uses.

* encoder channel influence ``a_i[c] = ||W_{c_i}[c]||_1`` (Fig. 3.4a / 3.11), one row per member;
* classifier feature influence ``h_i[c] = ||W_{d_i}[:, c]||_1`` (Fig. 3.12), one row per member;
* share rates between the members' histograms (Table 3.6 reports the classifier's; normalized weighted Jaccard by
  default, the unnormalized Jaccard and the mean per-channel min/max ratio as the §9 B6 variants), in %;
* the fraction of active core-network filters (Fig. 3.4b, Table A.16) at several thresholds t_a.

`write_plot` draws the two influence histograms as grouped bar charts into a PNG with Pillow (a mixlab
dependency), so the command works everywhere without matplotlib. The core-network influence of App. A.6.3
(variance of intermediate maps when one input varies) is in `mixshare.core_features`.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from mixlab.metrics import active_filter_fraction, share_rate
from mixlab.metrics.analysis import SHARE_VARIANTS
from mixlab.models import MultiHeadMIMO
from mixlab.models.mimo import encoder_filter_norms, head_column_norms
from mixlab.visual import save_png_atomically
from torch import Tensor, nn

THRESHOLDS = (0.2, 0.3, 0.4, 0.5)
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]


def pairwise_share(norms: Tensor, variant: str = "normalized") -> float:
    """Share rate in % between the rows of an (M, C) influence matrix; the mean over pairs when M > 2."""
    pairs = list(itertools.combinations(range(norms.shape[0]), 2))
    return 100.0 * sum(share_rate(norms[i], norms[j], variant) for i, j in pairs) / len(pairs)


def head_share_rate(model: MultiHeadMIMO) -> dict[str, float]:
    """The Table 3.6 column: the classifier share rate (normalized), in %; empty for M = 1."""
    if model.num_members < 2:
        return {}
    return {"share_rate": pairwise_share(head_column_norms(model))}


def core_conv_weights(model: MultiHeadMIMO) -> list[Tensor]:
    """Every convolution weight of the shared core network (the encoders and heads are not part of it)."""
    return [m.weight.detach() for m in model.core.modules() if isinstance(m, nn.Conv2d)]


def analyze(model: MultiHeadMIMO) -> dict[str, Any]:
    encoders = encoder_filter_norms(model)
    heads = head_column_norms(model)
    report: dict[str, Any] = {
        "num_members": model.num_members,
        "encoder_channel_influence": encoders.tolist(),
        "head_feature_influence": heads.tolist(),
        "encoder_dominant_member": encoders.argmax(0).tolist(),
        "head_dominant_member": heads.argmax(0).tolist(),
    }
    if model.num_members >= 2:
        for variant in SHARE_VARIANTS:
            suffix = "" if variant == "normalized" else f"_{variant}"
            report[f"share_rate{suffix}"] = pairwise_share(heads, variant)
            report[f"encoder_share_rate{suffix}"] = pairwise_share(encoders, variant)
    convs = core_conv_weights(model)
    if convs:
        report["active_filters"] = {f"t{t:g}": 100.0 * active_filter_fraction(convs, t) for t in THRESHOLDS}
    return report


def bars(draw, box: tuple[int, int, int, int], rows: list[list[float]], title: str, common_scale: bool = False) -> None:
    """Grouped bars, one colour per member, each row scaled to its own maximum (as in the thesis's histograms), or
    all rows to the largest value with ``common_scale`` (when the members' values are on one scale)."""
    x0, y0, x1, y1 = box
    draw.text((x0, y0), title, fill=(0, 0, 0))
    top, bottom = y0 + 16, y1 - 4
    draw.line([(x0, bottom), (x1, bottom)], fill=(0, 0, 0))
    channels, members = len(rows[0]), len(rows)
    slot = (x1 - x0) / channels
    width = max(1.0, slot / (members + 1))
    common_peak = max(max(row) for row in rows) or 1.0
    for i, row in enumerate(rows):
        peak = common_peak if common_scale else (max(row) or 1.0)
        for c, value in enumerate(row):
            left = x0 + c * slot + i * width
            height = (bottom - top) * value / peak
            draw.rectangle([left, bottom - height, left + max(1.0, width - 1), bottom], fill=COLOURS[i % len(COLOURS)])


def write_plot(report: dict[str, Any], path: Path, title: str = "") -> Path:
    """A PNG with the encoder-channel and head-feature influence of every member."""
    from PIL import Image, ImageDraw

    width, height = 1000, 560
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    share = report.get("share_rate")
    head_title = "classifier feature influence ||W_d_i[:, c]||_1" + (
        f"  (share rate {share:.1f}%)" if share is not None else ""
    )
    enc_share = report.get("encoder_share_rate")
    enc_title = "encoder channel influence ||W_c_i[c]||_1" + (
        f"  (share rate {enc_share:.1f}%)" if enc_share is not None else ""
    )
    draw.text((10, 6), title, fill=(0, 0, 0))
    for i in range(report["num_members"]):
        draw.rectangle([10 + 110 * i, 24, 20 + 110 * i, 34], fill=COLOURS[i % len(COLOURS)])
        draw.text((24 + 110 * i, 24), f"member {i}", fill=(0, 0, 0))
    bars(draw, (10, 44, width - 10, 290), report["encoder_channel_influence"], enc_title)
    bars(draw, (10, 300, width - 10, height - 6), report["head_feature_influence"], head_title)
    return save_png_atomically(image, path)
