"""Named recipes: a paper's settings as resolved configs, each carrying the numbers the paper reports for it.

Every method package builds a `RecipeBook` of its recipes and names the default recipe per dataset, so
`<pkg> train --dataset X` runs the paper's main setting and `<pkg> recipes` lists everything with paper numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mixlab.errors import ConfigError, DatasetError


@dataclass(frozen=True)
class PaperResult:
    table: str  # e.g. "Table 3.1 (best test epoch, mean of 3 runs)"
    metrics: dict[str, float]


@dataclass(frozen=True)
class Recipe:
    name: str
    config: Any  # the method's frozen config dataclass
    description: str
    results: tuple[PaperResult, ...] = ()
    ensemble_runs: int = 1  # deep-ensemble rows: train this many seeds, evaluate them together


class RecipeBook:
    """A package's recipes by name, and which one `train --dataset X` runs."""

    def __init__(
        self, package: str, recipes: dict[str, Recipe], defaults: dict[str, str], builtin_dataset: str = "digits"
    ):
        self.builtin_dataset = builtin_dataset  # what `train` runs when no --dataset / --recipe is given
        missing = set(defaults.values()) - set(recipes)
        if missing:
            raise AssertionError(f"default recipes {sorted(missing)} are not defined")
        self.package, self.recipes, self.defaults = package, recipes, defaults

    def __iter__(self) -> Iterator[Recipe]:
        return iter(self.recipes.values())

    def __len__(self) -> int:
        return len(self.recipes)

    def get(self, name: str) -> Recipe:
        try:
            return self.recipes[name]
        except KeyError:
            close = [n for n in self.recipes if name in n][:5]
            hint = f". Did you mean {', '.join(close)}?" if close else f"; `{self.package} recipes` lists them"
            raise ConfigError(f"unknown recipe {name!r}{hint}") from None

    def default(self, dataset: str) -> Recipe:
        if dataset in self.defaults:
            return self.recipes[self.defaults[dataset]]
        from mixlab.data import available_datasets
        from mixlab.seg.data import available_seg_datasets

        known = available_datasets() + available_seg_datasets()
        if dataset not in known:
            raise DatasetError(f"unknown dataset {dataset!r}; known: {', '.join(known)}")
        example = next(iter(self.defaults.values()))
        raise ConfigError(
            f"{self.package} has no paper recipe for {dataset!r}; pick one with --recipe (e.g. --recipe {example} "
            f"--dataset {dataset}) and the dataset is replaced"
        )
