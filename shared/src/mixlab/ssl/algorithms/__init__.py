"""The four base algorithms as classes on `SSLMethod`, and the registry that picks one by name.

``ALGORITHMS[config.variant]`` is the class a config trains with; `with_variant` switches a recipe to another
algorithm, keeping its data and budget and taking that algorithm's own hyperparameters (``cls.defaults``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mixlab.errors import ConfigError
from mixlab.ssl.algorithms.fixmatch import FixMatch
from mixlab.ssl.algorithms.mean_teacher import MeanTeacher
from mixlab.ssl.algorithms.mixmatch import MixMatch
from mixlab.ssl.algorithms.supervised import Supervised
from mixlab.ssl.config import DATA_FIELDS, SSLConfig
from mixlab.ssl.method import SSLMethod

ALGORITHMS: dict[str, type[SSLMethod]] = {
    "supervised": Supervised,
    "mean-teacher": MeanTeacher,
    "mixmatch": MixMatch,
    "fixmatch": FixMatch,
}


def algorithm_for(config: SSLConfig, algorithms: dict[str, type[SSLMethod]] | None = None) -> type[SSLMethod]:
    """The class that trains ``config.variant``."""
    table = ALGORITHMS if algorithms is None else algorithms
    try:
        return table[config.variant]
    except KeyError:
        raise ConfigError(f"unknown algorithm {config.variant!r}; choose one of {', '.join(table)}") from None


def with_variant(config: SSLConfig, variant: str, algorithms: dict[str, type[SSLMethod]] | None = None) -> SSLConfig:
    """``config``'s data and budget with algorithm ``variant``'s own hyperparameters (its reference defaults).

    Fields outside :data:`DATA_FIELDS` go back to the class defaults, then take the algorithm's; so `--variant
    fixmatch` on a RealMix recipe trains FixMatch as FixMatch trains, on the same split and for as long.
    """
    table = ALGORITHMS if algorithms is None else algorithms
    if variant not in table:
        raise ConfigError(f"unknown variant {variant!r}; choose one of {', '.join(table)}")
    kept: dict[str, Any] = {name: getattr(config, name) for name in DATA_FIELDS}
    kept.update(table[variant].variant_fields(config))
    return replace(type(config)(), **{**kept, **table[variant].defaults, "variant": variant})


__all__ = ["ALGORITHMS", "FixMatch", "MeanTeacher", "MixMatch", "Supervised", "algorithm_for", "with_variant"]
