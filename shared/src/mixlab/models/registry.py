"""One registry, one factory (after timm's ``_registry``): families register a name pattern and a builder.

A family's pattern spells its name with integer fields in braces, e.g. ``"wrn{depth}-{width}"``. The same string
is what users read in error messages and what the factory parses: ``create_model("wrn28-10", 100)`` calls the WRN
builder with ``depth=28, width=10``. Pretrained weights are never fetched from anywhere; ``checkpoint_path`` loads a
local state dict as data (``weights_only=True``).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from torch import Tensor, nn

from mixlab.errors import CheckpointError, ConfigError
from mixlab.models.base import Backbone

Builder = TypeVar("Builder", bound=Callable[..., Backbone])

_FIELD = re.compile(r"\{([a-z_]+)\}")
# Prefixes added by DistributedDataParallel and torch.compile; a state dict saved from a wrapped model loads as is.
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class ModelFamily:
    """A registered family: its pattern, the compiled parser, the builder and the builder's free options."""

    pattern: str
    regex: re.Pattern[str]
    fields: tuple[str, ...]
    builder: Callable[..., Backbone]
    options: tuple[str, ...]
    description: str


_FAMILIES: dict[str, ModelFamily] = {}


def _compile(pattern: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    fields = tuple(_FIELD.findall(pattern))
    if not fields or len(set(fields)) != len(fields):
        raise ValueError(f"model pattern {pattern!r} needs one or more distinct integer fields like '{{width}}'")
    parts = _FIELD.split(pattern)
    # split() alternates literal text and field names: even indices are literals.
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[0-9]+)" for i, p in enumerate(parts))
    return re.compile(regex), fields


def register_model(pattern: str, *, description: str = "") -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(num_classes, *, <fields>, **options) -> Backbone`` under ``pattern``.

    The builder must take ``num_classes`` and one keyword per brace field of the pattern; any further keyword
    parameters become options that ``create_model`` accepts and validates.
    """
    regex, fields = _compile(pattern)

    def decorator(builder: Builder) -> Builder:
        if pattern in _FAMILIES:
            raise ValueError(f"model pattern {pattern!r} is registered twice")
        params = inspect.signature(builder).parameters
        missing = [name for name in ("num_classes", *fields) if name not in params]
        if missing:
            raise ValueError(f"builder {builder.__name__} of {pattern!r} lacks parameters {missing}")
        options = tuple(n for n in params if n not in ("num_classes", *fields))
        doc = description or (inspect.getdoc(builder) or "").split("\n")[0]
        _FAMILIES[pattern] = ModelFamily(pattern, regex, fields, builder, options, doc)
        return builder

    return decorator


def available_models() -> list[str]:
    """The registered name patterns, e.g. ``["preactresnet18-{width}", "smallcnn-{width}", "wrn{depth}-{width}"]``."""
    return sorted(_FAMILIES)


def _valid_names() -> str:
    return (
        ", ".join(f"'{p}'" for p in available_models())
        + " (for example 'wrn28-10', 'preactresnet18-2'), or any convolutional timm model as 'timm:<name>'"
    )


def create_model(
    name: str, num_classes: int, *, checkpoint_path: str | Path | None = None, **kwargs: object
) -> Backbone:
    """Build the backbone called ``name`` with a ``num_classes``-way head, optionally loading local weights.

    Unknown or malformed names, impossible sizes and unknown options raise ``ConfigError`` listing the valid
    patterns; an unreadable or mismatching checkpoint raises ``CheckpointError``.
    """
    if isinstance(name, str) and name.strip().lower().startswith("timm:"):
        from mixlab.models.timm_backbone import create_timm_backbone

        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r} for model {name!r}.")
        if kwargs:
            raise ConfigError(f"timm models take no options here, got {sorted(kwargs)}")
        model = create_timm_backbone(name.strip(), num_classes)
        if checkpoint_path is not None:
            load_weights(model, checkpoint_path)
        return model
    key = name.strip().lower() if isinstance(name, str) else ""
    family, match = None, None
    for candidate in _FAMILIES.values():
        match = candidate.regex.fullmatch(key)
        if match is not None:
            family = candidate
            break
    if family is None or match is None:
        raise ConfigError(f"Unknown model name {name!r}. Valid model names follow the patterns {_valid_names()}.")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be a positive integer, got {num_classes!r} for model {name!r}.")
    unknown = sorted(set(kwargs) - set(family.options))
    if unknown:
        allowed = ", ".join(family.options) if family.options else "none"
        raise ConfigError(
            f"Model {name!r} does not take the option(s) {unknown}; its options are: {allowed} "
            f"(sizes come from the name itself, pattern '{family.pattern}')."
        )
    sizes = {field: int(match.group(field)) for field in family.fields}
    try:
        model = family.builder(num_classes, **sizes, **kwargs)
    except ConfigError as error:
        raise ConfigError(f"{error} Valid model names follow the patterns {_valid_names()}.") from None
    if checkpoint_path is not None:
        load_weights(model, checkpoint_path)
    return model


def extract_state_dict(obj: object) -> Mapping[str, Tensor] | None:
    """A plain state dict, or one nested under a 'model' / 'state_dict' key as training checkpoints store it."""
    if isinstance(obj, Mapping):
        if obj and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
            return obj
        for key in ("model", "state_dict"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                found = extract_state_dict(inner)
                if found is not None:
                    return found
    return None


def _strip_prefixes(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    out = dict(state)
    for prefix in _WRAPPER_PREFIXES:
        if out and all(k.startswith(prefix) for k in out):
            out = {k[len(prefix) :]: v for k, v in out.items()}
    return out


def read_state_dict(path: str | Path, what: str = "weights file") -> Mapping[str, Tensor]:
    """The state dict in a local file (plain, or under a 'model' / 'state_dict' key), read as data
    (``weights_only=True``); a missing file or one without a state dict is a one-line :class:`CheckpointError`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"No {what} at '{path}'. Give the path of a saved state dict (a .pt file).")
    from mixlab.engine.checkpoint import load_data  # one safe reader for every weights file

    state = extract_state_dict(load_data(path, what=what))
    if state is None:
        raise CheckpointError(
            f"'{path}' holds no state dict. Expected a mapping of parameter names to tensors, possibly under a "
            "'model' or 'state_dict' key."
        )
    return state


def state_mismatch(
    own: Mapping[str, Tensor], state: Mapping[str, Tensor], optional: Callable[[str], bool] = lambda key: False
) -> str:
    """What keeps ``state`` from loading into a module whose state dict is ``own``: counts and examples of the missing
    (not ``optional``), unexpected and wrongly shaped keys, joined by "; "; empty when it fits."""
    missing = sorted(k for k in set(own) - set(state) if not optional(k))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    details = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mismatched)):
        if keys:
            shown = keys[:3]
            if label == "wrong shape":
                shown = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in shown]
            details.append(f"{len(keys)} {label} (e.g. {', '.join(shown)})")
    return "; ".join(details)


def load_weights(model: nn.Module, checkpoint_path: str | Path, exclude: tuple[str, ...] = ()) -> nn.Module:
    """Load a local state dict into ``model`` strictly; the file is read as data (``weights_only=True``).

    Keys starting with an ``exclude`` prefix (e.g. ``"head."`` for transfer learning to other classes) are neither
    loaded nor required: those parameters keep their initialisation.
    """
    path = Path(checkpoint_path).expanduser()
    state = read_state_dict(path, what="checkpoint file")
    state = {k: v for k, v in _strip_prefixes(state).items() if not k.startswith(exclude)}
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(exclude)}
    problem = state_mismatch(own, state)
    if problem:
        raise CheckpointError(
            f"The weights in '{path}' do not fit this {type(model).__name__}: {problem}. "
            "Was it saved from another model, width or number of classes?"
        )
    model.load_state_dict(state, strict=not exclude)  # excluded keys are the only ones allowed to be absent
    return model


def set_bn_momentum(model: nn.Module, momentum: float | None) -> nn.Module:
    """Every BatchNorm layer's running-statistics momentum set to ``momentum`` (None: left as built)."""
    if momentum is not None:
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = momentum
    return model
