"""tools/digit-scenes-probe's "recipe" network is the digits-* recipes' network (the README compares the two)."""

from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

from guidedmix.recipes import RECIPES

TOOL = Path(__file__).resolve().parents[3] / "tools" / "digit-scenes-probe"


def test_the_probe_builds_the_digits_recipes_network():
    loader = SourceFileLoader("digit_scenes_probe", str(TOOL))
    probe = module_from_spec(spec_from_loader(loader.name, loader))
    loader.exec_module(probe)
    digits = [r.config for name, r in RECIPES.items() if name.startswith("digits-")]
    assert digits
    for config in digits:
        assert (config.arch, config.encoder) == ("psp_unet", "resnet-tiny")
        assert config.psp_channels == probe.RECIPE_PSP_CHANNELS
        assert tuple(config.decoder_channels) == probe.RECIPE_DECODER_CHANNELS
        assert config.use_mitrans and config.output_stride is None
