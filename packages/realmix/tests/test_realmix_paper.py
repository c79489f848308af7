"""The paper's reported numbers (independently transcribed here from the paper text) and their Markdown rendering."""

import pytest
from mixlab.errors import ConfigError
from realmix.paper import FULLY_SUPERVISED, GAMMA_BY_MISMATCH, TABLES, markdown_table

N = None
EXPECTED = {
    "table1": {
        "Mean Teacher": [(17.85, N), (17.25, N), (18.95, N), (20.14, N), (20.57, N)],
        "MixMatch": [(16.75, N), (18.14, N), (21.01, N), (21.07, N), (22.08, N)],
        "RealMix": [(16.41, N), (16.60, N), (16.51, N), (16.99, N), (17.62, N)],
    },
    "table2": {
        "Π-Model": [(53.02, N), (18.13, N)],
        "VAT": [(36.03, N), (11.32, N)],
        "Mean Teacher": [(47.32, N), (10.72, N)],
        "MixMatch": [(11.78, N), (6.45, N)],
        "RealMix": [(9.79, 0.75), (6.39, 0.27)],
    },
    "table3": {
        "Π-Model": [(17.65, 0.27), (5.57, 0.14)],
        "VAT": [(8.41, 1.01), (4.20, 0.15)],
        "Mean Teacher": [(6.45, 2.43), (3.39, 0.11)],
        "MixMatch": [(3.63, 0.24), (3.07, 0.14)],
        "RealMix": [(3.53, 0.38), (3.13, 0.11)],
    },
    "table4": {
        "TL & Fine-Tuning": [(20.60, N), (8.45, N)],
        "MixMatch": [(11.78, N), (6.45, N)],
        "RealMix": [(9.78, N), (6.39, N)],
        "RealMix + TL": [(8.48, N), (6.05, N)],
    },
    "table5": {
        "RealMix (CutOut, 50 copies)": [(9.79, N)],
        "RealMix w/ Simple Aug (flip + translate, 50 copies)": [(10.42, N)],
        "RealMix w/ 25 Augs (CutOut, 25 copies)": [(10.80, N)],
    },
    "table6": {
        "RealMix (γ = 0.60)": [(16.99, N)],
        "RealMix (γ = 0.3)": [(20.73, N)],
        "RealMix w/o OODMask (γ = 0)": [(22.70, N)],
    },
}
COLUMNS = {
    "table1": ("0%", "25%", "50%", "75%", "100%"),
    "table2": ("250", "4000"),
    "table3": ("250", "4000"),
    "table4": ("250", "4000"),
    "table5": ("CIFAR-10 @ 250",),
    "table6": ("75% mismatch",),
}


def test_realmix_paper_every_number():
    assert sorted(TABLES) == sorted(EXPECTED)
    for name, rows in EXPECTED.items():
        table = TABLES[name]
        assert table.columns == COLUMNS[name]
        assert list(table.rows) == list(rows), name
        for method, values in rows.items():
            got = [table.rows[method][c] for c in table.columns]
            assert got == values, (name, method)


def test_realmix_paper_headline_values_and_constants():
    assert TABLES["table2"].rows["RealMix"]["250"] == (9.79, 0.75)
    assert TABLES["table2"].mean("RealMix", "4000") == 6.39
    assert TABLES["table4"].mean("RealMix + TL", "250") == 8.48
    assert FULLY_SUPERVISED == {"cifar10": 4.48, "svhn": 2.72, "cifar10-mismatch": 20.32}
    assert GAMMA_BY_MISMATCH == {0: 0.0, 25: 0.20, 50: 0.40, 75: 0.60, 100: 0.85}
    assert [f"{k}%" for k in GAMMA_BY_MISMATCH] == list(TABLES["table1"].columns)
    with pytest.raises(ConfigError):
        TABLES["table2"].mean("FixMatch", "250")


def test_realmix_paper_internal_consistency_and_derived_claims():
    t1, t2, t4 = TABLES["table1"], TABLES["table2"], TABLES["table4"]
    assert t1.mean("RealMix", "75%") == TABLES["table6"].mean("RealMix (γ = 0.60)", "75% mismatch")
    assert t2.mean("RealMix", "250") == TABLES["table5"].mean("RealMix (CutOut, 50 copies)", "CIFAR-10 @ 250")
    assert t4.mean("MixMatch", "250") == t2.mean("MixMatch", "250")
    assert t4.mean("RealMix", "250") == 9.78 and t2.mean("RealMix", "250") == 9.79  # the paper's own 0.01 mismatch
    assert round((11.78 - 9.79) / 11.78 * 100) == 17  # "17% reduction in error" vs MixMatch @ 250
    assert (100 - t2.mean("RealMix", "250")) / (100 - FULLY_SUPERVISED["cifar10"]) > 0.94  # "over 94%"
    # "RealMix is able to surpass baseline performance ... at all levels of mismatch"; at 100 % it is the only one
    baseline = FULLY_SUPERVISED["cifar10-mismatch"]
    assert all(t1.mean("RealMix", column) < baseline for column in t1.columns)
    assert t1.mean("MixMatch", "100%") > baseline and t1.mean("Mean Teacher", "100%") > baseline


def test_realmix_paper_markdown_table():
    text = markdown_table("table2")
    lines = text.splitlines()
    assert lines[0].startswith("**Table 2")
    assert "| Method | 250 | 4000 |" in lines
    assert "| RealMix | **9.79 ± 0.75** | **6.39 ± 0.27** |" in lines
    assert "| MixMatch | 11.78 | 6.45 |" in lines
    table_lines = [line for line in lines if line.startswith("|")]
    assert len(table_lines) == 2 + len(TABLES["table2"].rows)
    assert markdown_table("2") == text
    three = markdown_table("table3")
    assert "| MixMatch | 3.63 ± 0.24 | **3.07 ± 0.14** |" in three  # bold = lowest mean of the column
    assert "| RealMix | **3.53 ± 0.38** | 3.13 ± 0.11 |" in three
    for name in TABLES:
        rendered = markdown_table(name)
        for method in TABLES[name].rows:
            assert f"| {method} |" in rendered
    with pytest.raises(ConfigError):
        markdown_table("table7")
