"""tools/digit-scenes-probe: the bare-loop diagnostic of the guidedmix README runs, is deterministic, refuses bad input."""

import re
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "tools" / "digit-scenes-probe"
LINE = re.compile(r"step +(\d+)  loss (\d+\.\d+)  mIoU (\d+\.\d+)  background IoU (\d+\.\d+)  \d+ s")


def probe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True)


def scores(out: str) -> list[tuple[str, ...]]:
    """The (step, loss, mIoU, background IoU) of every evaluation line, without the timing."""
    return [m.groups() for m in map(LINE.match, out.splitlines()) if m]


def test_probe_trains_evaluates_and_is_deterministic():
    fast = ["--steps", "2", "--eval-every", "1", "--labels", "8", "--val-count", "16", "--batch-size", "4"]
    first, again = probe("--model", "unet", *fast), probe("--model", "unet", *fast)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0] == "unet: 291,979 parameters"
    rows = scores(first.stdout)
    assert [r[0] for r in rows] == ["1", "2"]
    assert all(0.0 <= float(r[2]) <= 100.0 and 0.0 <= float(r[3]) <= 100.0 for r in rows)
    assert rows == scores(again.stdout)  # same seed, same stream, same numbers

    recipe = probe("--model", "recipe-stem3x3", *fast)
    assert recipe.returncode == 0, recipe.stderr
    assert recipe.stdout.splitlines()[0] == "recipe-stem3x3: 397,743 parameters"
    assert len(scores(recipe.stdout)) == 2


def test_probe_refuses_bad_input_in_one_line():
    result = probe("--labels", "0")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith("--labels must be in 1..2000, --val-count in 1..500, --steps and --eval-every positive")
    )
