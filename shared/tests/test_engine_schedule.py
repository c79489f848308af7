"""mixlab.engine.check_epoch_window: an epoch window that no step of a run reaches is refused in one line."""

from __future__ import annotations

import pytest
from mixlab.engine import check_epoch_window
from mixlab.errors import ConfigError


@pytest.mark.parametrize(
    ("window", "steps_per_epoch", "steps"),
    [
        ((0.0, 1.0), 10, 1),  # step 0 is at epoch 0
        ((0.9, 5.0), 10, 10),  # step 9 is at epoch 0.9: the last step of the run
        ((2 / 3, 1.0), 3, 3),  # start = k / steps_per_epoch, not exact in floats
    ],
)
def test_reachable_windows_pass(window, steps_per_epoch, steps):
    check_epoch_window(window, steps_per_epoch=steps_per_epoch, steps=steps, option="w")


@pytest.mark.parametrize(
    ("window", "steps_per_epoch", "steps"),
    [
        ((1.0, 2.0), 10, 10),  # the run ends at step 9 = epoch 0.9
        ((0.5, 0.9), 1245, 600),  # the samosa README's first Fashion-MNIST window: 600 steps are 0.48 epochs
        ((0.25, 0.29), 10, 100),  # between two steps (epochs 0.2 and 0.3): no step inside
    ],
)
def test_unreachable_windows_are_refused_in_one_line(window, steps_per_epoch, steps):
    with pytest.raises(ConfigError, match=r"hybrid_window=\[.*\) epochs is never reached: the run's") as error:
        check_epoch_window(window, steps_per_epoch=steps_per_epoch, steps=steps, option="hybrid_window")
    assert "\n" not in str(error.value)
