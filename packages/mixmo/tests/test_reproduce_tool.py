"""tools/reproduce: a recipes x seeds grid run through the real CLI, its table, its curves, and its resume."""

import json
import subprocess
import sys
from pathlib import Path

TOOL = Path(__file__).resolve().parents[3] / "tools" / "reproduce"
FAST = ["--model", "smallcnn-1", "--batch-size", "128", "--steps", "4", "--eval-every", "2", "--device", "cpu"]


def reproduce(root: Path) -> str:
    cmd = [sys.executable, str(TOOL), "--package", "mixmo", "--seeds", "0", "1", "--jobs", "2", "--root", str(root),
           "--recipes", "digits-wrn16-1-vanilla", "digits-wrn16-1-mimo-b2", "--", *FAST]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return (root / "results.md").read_text()


def test_grid_table_curves_and_resume(tmp_path):
    out = reproduce(tmp_path)
    rows = [line for line in out.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == ["digits-wrn16-1-vanilla", "digits-wrn16-1-mimo-b2"]
    header = out.splitlines()[0]
    assert "top-1 %" in header and "best top-1 % (at step)" in header
    assert all(" ± " in row and "(step " in row for row in rows)  # two seeds: mean ± std; best evaluation's step
    assert (tmp_path / "curves.png").stat().st_size > 0
    assert f"Every run: `mixmo train --recipe R --seed S {' '.join(FAST)}`." in out
    first = json.loads((tmp_path / "digits-wrn16-1-mimo-b2" / "seed1" / "summary.json").read_text())
    assert first["status"] == "completed" and first["steps"] == 4

    # An interrupted run (its summary not completed) is resumed, complete ones are reused untouched.
    kept = tmp_path / "digits-wrn16-1-vanilla" / "seed0" / "summary.json"
    before = kept.stat().st_mtime_ns
    broken = tmp_path / "digits-wrn16-1-mimo-b2" / "seed1" / "summary.json"
    broken.write_text(json.dumps({**first, "status": "running"}))
    again = reproduce(tmp_path)
    assert kept.stat().st_mtime_ns == before
    assert json.loads(broken.read_text())["status"] == "completed"
    assert [r for r in again.splitlines() if r.startswith("| `")][0].split("|")[3] == rows[0].split("|")[3]


def test_a_failed_run_leaves_the_others_and_is_named(tmp_path):
    cmd = [sys.executable, str(TOOL), "--package", "mixmo", "--seeds", "0", "--root", str(tmp_path),
           "--recipes", "digits-wrn16-1-vanilla", "no-such-recipe", "--", *FAST]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 1 and "no-such-recipe seed 0 failed" in done.stderr
    out = (tmp_path / "results.md").read_text()
    assert [row.split("`")[1] for row in out.splitlines() if row.startswith("| `")] == ["digits-wrn16-1-vanilla"]
    assert "Not completed (left out of the table; see their run directories): no-such-recipe seed 0." in out


def test_a_run_made_with_other_settings_is_refused_not_reused(tmp_path):
    """Complete runs are reused by name, so other options for the same run would mix two settings in one table."""
    reproduce(tmp_path)

    def grid(recipe: str, *extra: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, str(TOOL), "--package", "mixmo", "--seeds", "0", "--root", str(tmp_path),
               "--recipes", recipe, "--", *FAST, *extra]  # fmt: skip
        return subprocess.run(cmd, capture_output=True, text=True)

    done = grid("digits-wrn16-1-vanilla", "--set", "l2=0")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "digits-wrn16-1-vanilla/seed0 was made with other settings: extra" in done.stderr
    assert "l2=0" not in (tmp_path / "results.md").read_text()
    # Another recipe may share the root with its own options; both runs keep their record.
    assert grid("digits-wrn16-1-cutmix", "--set", "l2=0").returncode == 0
    record = json.loads((tmp_path / "grid.json").read_text())
    assert record["digits-wrn16-1-vanilla/seed0"]["extra"] == FAST
    assert record["digits-wrn16-1-cutmix/seed0"]["extra"] == [*FAST, "--set", "l2=0"]
