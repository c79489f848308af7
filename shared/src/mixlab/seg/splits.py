"""Semi-supervised splits of a segmentation train set: which ids are labeled, which unlabeled (spec guidedmix §4.4).

Rule: the labeled set is a seeded random subset of the train set of ``ceil(f·N)`` ids for a fraction ``f`` (or a given
count); the unlabeled set is every other train id. The two are disjoint and cover the train set
(:meth:`SegSplit.check`). The draw is ``torch.randperm`` with a ``torch.Generator`` seeded by ``seed`` over the
*sorted* ids, so it does not depend on the order a loader lists them in; both lists are stored sorted, one id per line
(``labeled.txt``, ``unlabeled.txt``: :func:`write_split`), and published lists are read back with
:func:`split_from_lists`.

Named settings (:data:`SPLIT_SETTINGS`) are ``<dataset>-<count>`` or ``<dataset>-<p>-<q>`` for the fraction p/q, so
every name is a plain CLI value (``voc-aug-1-8``); ``voc-aug-1/8`` is accepted too. They are:

- ``voc-aug-500``, ``voc-aug-1000``: random subsets of train_aug (CCT setting, Table 4);
- ``voc-aug-1464``: the labeled set is exactly VOC 2012's official train list, the unlabeled set the other 9,118
  train_aug ids (CCT setting, Tables 1-4);
- ``voc-aug-1-16``, ``-1-8``, ``-1-4``, ``-1-2``: fractions of train_aug (GCT protocol, Tables 5 and 10; 1/16 is
  mentioned but not reported);
- ``voc-aug-1-100``, ``-1-50``, ``-1-20``: the same machinery, not in the paper (``reported_by_paper=False``);
- ``cityscapes-100``, ``cityscapes-1-8``, ``-1-4``, ``-1-2`` (Table 7); ``pascal-context-1-8``, ``-1-4`` (Tables 8-9).

This module imports nothing of :mod:`mixlab.seg.data` at run time (the dataset loaders use :func:`read_id_list`).
"""

from __future__ import annotations

import math
import numbers
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import torch

from mixlab.errors import ConfigError, DatasetError

if TYPE_CHECKING:
    from mixlab.seg.data.dataset import SegDataset

LABELED_FILE = "labeled.txt"
UNLABELED_FILE = "unlabeled.txt"
#: The largest denominator a float fraction is read with (0.125 -> 1/8, 1/11 as a float -> 1/11).
MAX_DENOMINATOR = 1_000_000
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".mat")
#: Suffixes of a file stem that are not part of the sample id (Cityscapes' ``<id>_leftImg8bit.png``).
_STEM_SUFFIXES = ("_leftImg8bit", "_gtFine_labelIds", "_gtFine_labelTrainIds")


# --- counts ---------------------------------------------------------------------------------------------------------


def as_fraction(fraction: float | str | Fraction) -> Fraction:
    """``fraction`` as an exact rational: a :class:`Fraction`, a string (``"1/8"``, ``"0.125"``) or a float (read as
    the nearest fraction with a denominator up to 10^6, so ``1/16`` typed as ``0.0625`` is exactly 1/16)."""
    try:
        if isinstance(fraction, Fraction):
            value = fraction
        elif isinstance(fraction, str):
            value = Fraction(fraction.strip())
        elif isinstance(fraction, numbers.Real) and not isinstance(fraction, bool):
            if not math.isfinite(float(fraction)):
                raise ValueError(fraction)
            value = Fraction(float(fraction)).limit_denominator(MAX_DENOMINATOR)
        else:
            raise TypeError(fraction)
    except (ValueError, TypeError, ZeroDivisionError):
        raise ConfigError(
            f"the labeled fraction must be a number in (0, 1) such as 0.125 or '1/8', got {fraction!r}."
        ) from None
    if not 0 < value < 1:
        raise ConfigError(f"the labeled fraction must be in (0, 1) (a part of the train set), got {fraction!r}.")
    return value


def labeled_count(total: int, n_labeled: int | None = None, fraction: float | str | Fraction | None = None) -> int:
    """The number of labeled ids out of ``total``: ``n_labeled``, or ``ceil(fraction·total)`` computed exactly (1/8 of
    10,582 is 1,323; 1/16 is 662). Exactly one of the two must be given, and the count must leave at least one
    labeled and one unlabeled id."""
    if (n_labeled is None) == (fraction is None):
        raise ConfigError(
            "give exactly one of n_labeled (a count) and fraction (such as '1/8') for the labeled set, "
            f"got n_labeled={n_labeled!r} and fraction={fraction!r}."
        )
    if fraction is not None:
        count = math.ceil(as_fraction(fraction) * total)
    elif isinstance(n_labeled, numbers.Integral) and not isinstance(n_labeled, bool):
        count = int(n_labeled)
    else:
        raise ConfigError(f"n_labeled must be a whole number of images, got {n_labeled!r}.")
    if not 1 <= count < total:
        raise ConfigError(
            f"{count} labeled ids out of a train set of {total}: the labeled count must be at least 1 and below "
            f"{total}, leaving some ids unlabeled."
        )
    return count


# --- a split --------------------------------------------------------------------------------------------------------


def _duplicates(ids: Sequence[str]) -> list[str]:
    return sorted(key for key, seen in Counter(ids).items() if seen > 1)


def _shown(ids: Iterable[str], count: int = 3) -> str:
    values = sorted(ids)
    return ", ".join(values[:count]) + (" ..." if len(values) > count else "")


@dataclass(frozen=True)
class SegSplit:
    """The labeled and unlabeled ids of one train set (sorted when drawn here; a published list keeps its order)."""

    labeled: list[str]
    unlabeled: list[str]

    def check(self, all_ids: Sequence[str]) -> SegSplit:
        """Labeled and unlabeled are disjoint, free of repeats, non-empty (labeled) and together exactly ``all_ids``
        (the train set); else a :class:`DatasetError` with the counts and a few example ids. Returns ``self``."""
        labeled, unlabeled, universe = set(self.labeled), set(self.unlabeled), set(all_ids)
        sizes = f"{len(self.labeled)} labeled, {len(self.unlabeled)} unlabeled, a train set of {len(universe)}"
        problems: list[str] = []
        if not self.labeled:
            problems.append("the labeled list is empty")
        for name, ids in (("labeled", self.labeled), ("unlabeled", self.unlabeled)):
            repeated = _duplicates(ids)
            if repeated:
                problems.append(f"{len(repeated)} id(s) appear twice in the {name} list ({_shown(repeated)})")
        both = labeled & unlabeled
        if both:
            problems.append(f"{len(both)} id(s) are both labeled and unlabeled ({_shown(both)})")
        foreign = (labeled | unlabeled) - universe
        if foreign:
            problems.append(f"{len(foreign)} id(s) are not in the train set ({_shown(foreign)})")
        uncovered = universe - labeled - unlabeled
        if uncovered:
            problems.append(f"{len(uncovered)} train id(s) are in neither list ({_shown(uncovered)})")
        if problems:
            raise DatasetError(
                f"invalid semi-supervised split ({sizes}): {'; '.join(problems)}. The labeled and unlabeled lists must "
                "be disjoint and together cover the train set exactly; a list naming foreign ids is probably for "
                "another dataset or split."
            )
        return self


def _sorted_unique(ids: Sequence[str]) -> list[str]:
    repeated = _duplicates(list(ids))
    if repeated:
        raise DatasetError(f"the train set names {len(repeated)} id(s) twice ({_shown(repeated)}); ids must be unique.")
    return sorted(ids)


def random_split(ids: Sequence[str], count: int, seed: int) -> SegSplit:
    """``count`` labeled ids drawn from ``ids`` with a ``torch.Generator`` seeded by ``seed``, the rest unlabeled; both
    sorted. The same ids (in any order), count and seed give the same split."""
    universe = _sorted_unique(ids)
    if not 1 <= count < len(universe):
        raise ConfigError(f"cannot draw {count} labeled ids from a train set of {len(universe)}.")
    generator = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(universe), generator=generator).tolist()
    chosen = set(order[:count])
    labeled = [key for i, key in enumerate(universe) if i in chosen]
    unlabeled = [key for i, key in enumerate(universe) if i not in chosen]
    return SegSplit(labeled, unlabeled)


# --- files ----------------------------------------------------------------------------------------------------------


def _write_lines(path: Path, ids: Sequence[str]) -> None:
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temporary.write_text("".join(f"{key}\n" for key in ids), encoding="utf-8")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_split(folder: str | Path, split: SegSplit) -> tuple[Path, Path]:
    """Write ``folder/labeled.txt`` and ``folder/unlabeled.txt`` (one id per line); return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / LABELED_FILE, folder / UNLABELED_FILE
    _write_lines(paths[0], split.labeled)
    _write_lines(paths[1], split.unlabeled)
    return paths


def _entry_id(token: str) -> str:
    if "/" in token or "\\" in token or token.lower().endswith(_IMAGE_SUFFIXES):
        token = PurePosixPath(token.replace("\\", "/")).name
        if token.lower().endswith(_IMAGE_SUFFIXES):
            token = token.rsplit(".", 1)[0]
        for suffix in _STEM_SUFFIXES:
            token = token.removesuffix(suffix)
    return token


def read_id_list(path: str | Path) -> list[str]:
    """The ids of a split list, in order: one id per line (blank lines and surrounding spaces ignored), or the common
    two-column lines ``/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png`` (the stem of the first column; a
    Cityscapes ``..._leftImg8bit.png`` path gives ``<city>_<seq>_<frame>``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(
            f"the split list {path} does not exist. A split list is a text file with one sample id per line (such as "
            "2007_000032), or DeepLab's two-column lines '/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png'; check "
            "the path, or write one with mixlab.seg.splits.write_split."
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(
            f"the split list {path} could not be read ({type(error).__name__}: {error}); it must be a UTF-8 text file "
            "with one sample id per line."
        ) from None
    return [_entry_id(line.split()[0]) for line in text.splitlines() if line.strip()]


def split_from_lists(
    all_ids: Sequence[str], labeled_path: str | Path, unlabeled_path: str | Path | None = None
) -> SegSplit:
    """A published split: the labeled ids of ``labeled_path``, the unlabeled ones of ``unlabeled_path`` (default: every
    other id of ``all_ids``), checked against the train set ``all_ids``."""
    labeled = read_id_list(labeled_path)
    if unlabeled_path is None:
        named = set(labeled)
        unlabeled = sorted(key for key in all_ids if key not in named)
    else:
        unlabeled = read_id_list(unlabeled_path)
    return SegSplit(labeled, unlabeled).check(all_ids)


# --- named settings -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitSetting:
    """A split of the papers: ``n_labeled`` ids or a ``fraction`` of the train set of ``dataset`` (whose real size is
    ``train_size``). ``official_train_list``: the labeled set is VOC 2012's official train list instead of a random
    draw. ``reported_by_paper=False`` marks settings added for completeness (no number to compare with)."""

    dataset: str
    n_labeled: int | None
    fraction: Fraction | None
    description: str
    reported_by_paper: bool
    train_size: int
    official_train_list: bool = False

    def counts(self, total: int | None = None) -> tuple[int, int]:
        """(labeled, unlabeled) on a train set of ``total`` ids (default: the real one)."""
        total = self.train_size if total is None else total
        labeled = labeled_count(total, self.n_labeled, self.fraction)
        return labeled, total - labeled


VOC_AUG_SIZE, CITYSCAPES_SIZE, CONTEXT_SIZE = 10_582, 2_975, 4_998


def _settings() -> dict[str, SplitSetting]:
    settings: dict[str, SplitSetting] = {}

    def fraction(dataset: str, size: int, value: str, description: str, reported: bool = True) -> None:
        f = Fraction(value)
        settings[f"{dataset}-{f.numerator}-{f.denominator}"] = SplitSetting(
            dataset, None, f, description, reported, size
        )

    def count(dataset: str, size: int, n: int, description: str, official: bool = False) -> None:
        settings[f"{dataset}-{n}"] = SplitSetting(dataset, n, None, description, True, size, official)

    cct = "CCT setting (Table 4): a random subset of train_aug"
    count("voc-aug", VOC_AUG_SIZE, 500, cct)
    count("voc-aug", VOC_AUG_SIZE, 1000, cct)
    count(
        "voc-aug",
        VOC_AUG_SIZE,
        1464,
        "CCT setting (Tables 1-4): the official VOC 2012 train list labeled, the other 9,118 train_aug ids unlabeled",
        official=True,
    )
    for value in ("1/16", "1/8", "1/4", "1/2"):
        fraction("voc-aug", VOC_AUG_SIZE, value, f"GCT protocol (Tables 5, 10): {value} of train_aug, ceil(f·N)")
    for value in ("1/100", "1/50", "1/20"):
        fraction("voc-aug", VOC_AUG_SIZE, value, f"{value} of train_aug: not in the paper", reported=False)
    count("cityscapes", CITYSCAPES_SIZE, 100, "Table 7: 100 random train images labeled")
    for value in ("1/8", "1/4", "1/2"):
        fraction("cityscapes", CITYSCAPES_SIZE, value, f"Table 7: {value} of the train set, ceil(f·N)")
    for value in ("1/8", "1/4"):
        fraction("pascal-context", CONTEXT_SIZE, value, f"Tables 8-9: {value} of the train set, ceil(f·N)")
    return settings


#: The splits of the paper (and three more for VOC), by name; see the module docstring.
SPLIT_SETTINGS: dict[str, SplitSetting] = _settings()


def split_setting(name: str) -> SplitSetting:
    """The setting called ``name`` (``voc-aug-1-8``; ``voc-aug-1/8`` and any letter case accepted)."""
    key = str(name).strip().lower().replace("/", "-")
    if key not in SPLIT_SETTINGS:
        raise ConfigError(f"unknown split setting {name!r}. Known: {', '.join(SPLIT_SETTINGS)}.")
    return SPLIT_SETTINGS[key]


def _ids_of(value: Sequence[str] | str | Path) -> list[str]:
    return read_id_list(value) if isinstance(value, str | Path) else [str(key) for key in value]


def resolve_split(
    dataset: SegDataset,
    *,
    setting: str | None = None,
    n_labeled: int | None = None,
    fraction: float | str | Fraction | None = None,
    seed: int = 0,
    labeled_list: str | Path | None = None,
    unlabeled_list: str | Path | None = None,
    official_train_ids: Sequence[str] | str | Path | None = None,
) -> SegSplit:
    """The labeled/unlabeled split of the train set ``dataset``, from exactly one of: a named ``setting``
    (:data:`SPLIT_SETTINGS`), ``n_labeled`` or ``fraction`` (a seeded random draw), or published lists
    (``labeled_list``, optional ``unlabeled_list``: the complement by default). ``official_train_ids`` (ids, or the
    path of VOC's ``ImageSets/Segmentation/train.txt``) is read by ``voc-aug-1464`` only; by default it is the
    ``train.txt`` beside the lists of the ``voc-aug`` dataset's own files. The split is checked: disjoint and
    covering."""
    sources = [
        name
        for name, given in (
            ("setting", setting is not None),
            ("n_labeled/fraction", n_labeled is not None or fraction is not None),
            ("labeled_list", labeled_list is not None),
        )
        if given
    ]
    if len(sources) != 1:
        raise ConfigError(
            "give exactly one way to choose the labeled images: a split setting (such as voc-aug-1-8), n_labeled or "
            f"fraction, or a labeled list; got {', '.join(sources) if sources else 'none'}."
        )
    if unlabeled_list is not None and labeled_list is None:
        raise ConfigError(
            "an unlabeled list needs a labeled list too (the unlabeled one is optional, not the labeled)."
        )
    if dataset.split != "train":
        raise ConfigError(
            f"a semi-supervised split divides the train set; {dataset.name}'s {dataset.split!r} split was given."
        )
    if labeled_list is not None:
        return split_from_lists(dataset.ids, labeled_list, unlabeled_list)
    if setting is not None:
        chosen = split_setting(setting)
        if chosen.dataset != dataset.name:
            raise ConfigError(f"the split setting {setting!r} is for {chosen.dataset}, not {dataset.name}.")
        if chosen.official_train_list:
            lists = getattr(dataset.loader, "official_lists", None)  # set by the voc-aug loader
            if official_train_ids is None and lists is not None:
                official_train_ids = Path(lists) / "train.txt"
            if official_train_ids is None:
                raise ConfigError(
                    f"the split setting {setting!r} labels exactly VOC 2012's official train list: pass "
                    "official_train_ids (mixlab.seg.data.voc.official_train_ids(data_root), or the path of "
                    "VOCdevkit/VOC2012/ImageSets/Segmentation/train.txt)."
                )
            labeled = sorted(_ids_of(official_train_ids))
            named = set(labeled)
            return SegSplit(labeled, sorted(key for key in dataset.ids if key not in named)).check(dataset.ids)
        n_labeled, fraction = chosen.n_labeled, chosen.fraction
    count = labeled_count(len(dataset.ids), n_labeled, fraction)
    return random_split(dataset.ids, count, seed).check(dataset.ids)
