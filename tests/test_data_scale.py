"""``data.scale``: the embedded dataset at ×1 is unchanged; ×10 has ten times the customers,
products and lines with the same structure; a bad scale is refused before anything runs."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from compiler.data import synthetic
from compiler.data.config import check_data_config
from compiler.errors import ConfigError
from tests.preflight_helpers import assert_rejected

#: sha256 of ``pd.util.hash_pandas_object(generate(), index=True)``, computed before ``scale``
#: existed: ×1 must stay the dataset every earlier result was measured on.
X1_FRAME_SHA256 = "6a42a6f68bbcda443739f313f50ab1c97b21f14d56e7bce00b7608ef9539a7ce"


def frame_digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=True).values.tobytes()
                          ).hexdigest()


@pytest.fixture(scope="module")
def x1() -> pd.DataFrame:
    return synthetic.generate(include_latent=True)


@pytest.fixture(scope="module")
def x10() -> pd.DataFrame:
    return synthetic.generate(scale=10, include_latent=True)


def test_x1_is_the_original_frame() -> None:
    frame = synthetic.generate(scale=1)
    assert frame_digest(frame) == X1_FRAME_SHA256
    assert list(frame.columns) == list(synthetic.SYNTHETIC_COLUMNS)


def test_x1_cache_file_keeps_its_name_and_larger_scales_get_their_own(tmp_path: Path) -> None:
    assert synthetic.cache_path(tmp_path) == synthetic.cache_path(tmp_path, scale=1)
    assert synthetic.cache_path(tmp_path).name == (
        f"synthetic_b2b-v{synthetic.GENERATOR_VERSION}-seed{synthetic.DEFAULT_SEED}.parquet")
    assert synthetic.cache_path(tmp_path, scale=10).name.endswith("-x10.parquet")


def test_x10_counts(x10: pd.DataFrame) -> None:
    assert len(x10) == 10 * synthetic.N_TRANSACTIONS
    assert x10["customer_id"].nunique() == 10 * synthetic.N_CUSTOMERS
    # The Zipf tail leaves some catalogue products unsold, as at ×1 (~95% sell).
    assert 0.9 * 10 * synthetic.N_PRODUCTS <= x10["product_id"].nunique() \
        <= 10 * synthetic.N_PRODUCTS
    assert x10["date"].min() >= pd.Timestamp(synthetic.START_DATE)
    assert x10["date"].max() < pd.Timestamp(synthetic.START_DATE) + pd.Timedelta(
        days=synthetic.N_DAYS)
    keys = ["date", "customer_id", "product_id", "sales"]
    assert x10[keys].equals(x10[keys].sort_values(keys, kind="mergesort"))


def test_x10_keeps_the_structure(x1: pd.DataFrame, x10: pd.DataFrame) -> None:
    def sub_category_share(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.groupby("segment")["sub_category"].value_counts(normalize=True).unstack(
            fill_value=0.0)

    # Each segment buys the same sub-categories in about the same shares.
    gap = (sub_category_share(x10) - sub_category_share(x1)).abs().to_numpy().max()
    assert gap < 0.06, gap
    # Favourites: about 40% of lines re-buy a product the customer bought before.
    repeats = {name: f.duplicated(["customer_id", "product_id"]).mean()
               for name, f in (("x1", x1), ("x10", x10))}
    assert abs(repeats["x10"] - repeats["x1"]) < 0.06, repeats
    # Weekly rhythm: Monday busiest, Sunday quietest, in the same proportions.
    weekday = {name: f["date"].dt.day_of_week.value_counts(normalize=True).sort_index()
               for name, f in (("x1", x1), ("x10", x10))}
    assert np.abs(weekday["x10"].to_numpy() - weekday["x1"].to_numpy()).max() < 0.02
    # High-value customers lean to premium products.
    value_by_tier = x10.groupby("price_tier")["cust_value"].mean()
    assert value_by_tier["budget"] < value_by_tier["standard"] < value_by_tier["premium"]


@pytest.mark.parametrize("scale", [0, -3, 2.5, "ten", True])
def test_generate_refuses_a_bad_scale(scale: object) -> None:
    with pytest.raises(ValueError, match="scale: expected a positive integer"):
        synthetic.generate(scale=scale)  # type: ignore[arg-type]


def test_data_config_checks_scale() -> None:
    assert check_data_config({"scale": 10}).scale == 10
    with pytest.raises(ConfigError, match=r"data\.scale: expected a positive integer, got 0"):
        check_data_config({"scale": 0})


@pytest.mark.parametrize(("override", "expected"), [
    (["data.scale=0"], "data.scale: expected a positive integer, got 0"),
    (["data.source={data_file}", "data.scale=10"], "data.scale: expected 1 for a data file"),
])
def test_bad_scale_is_one_error_line(override: list[str], expected: str, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    # A data file of the default columns, made here: no test depends on ../shared/datasets.
    data_file = tmp_path / "lines.csv"
    data_file.write_text("customer_id,date,cust_value,product_id,category,sub_category,sales\n"
                         "c1,2024-01-02,1.5,p1,Food,Crisps,3.2\n")
    override = [item.format(data_file=data_file) for item in override]
    line = assert_rejected([*override, "run=local", f"output_dir={tmp_path / 'out'}"],
                           tmp_path=tmp_path, key="data.scale", in_process=True, capsys=capsys)
    assert expected in line


# --------------------------------------------------------------------------- benchmarks/scale.py


@pytest.fixture(scope="module")
def scale_benchmark():
    benchmarks = str(Path(__file__).resolve().parent.parent / "benchmarks")
    sys.path.insert(0, benchmarks)
    try:
        import scale as module
    finally:
        sys.path.remove(benchmarks)
    return module


def test_growth_exponent(scale_benchmark) -> None:
    exponent = scale_benchmark.growth_exponent
    assert exponent(1_000, 2.0, 10_000, 20.0) == pytest.approx(1.0)
    assert exponent(1_000, 5.0, 100_000, 5.0) == pytest.approx(0.0)
    assert exponent(10, 1.0, 100, 100.0) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="two sizes"):
        exponent(10, 1.0, 10, 2.0)


def hand_made_runs(*, seconds_x10: float = 10.0, train_split_rss: float = 1_000.0,
                   candidate_rows: int = 10_000, recall_rss: float = 900.0) -> list[dict]:
    def step(rows: int, seconds: float, rss: float) -> dict:
        return {"rows": rows, "seconds": seconds, "peak_rss_mb": rss, "baseline_rss_mb": 600.0}

    def run(scale: int, seconds: float, rss: float) -> dict:
        lines, products = 15_000 * scale, 1_000 * scale
        steps = {name: step(lines, seconds, rss) for name in scale_steps}
        steps["candidates"].update(rows=candidate_rows if scale == 10 else products,
                                   candidates=products, source="the product table")
        steps["recall"]["peak_rss_mb"] = recall_rss if scale == 10 else 800.0
        return {"scale": scale, "lines": lines, "products": products, "steps": steps,
                "recall_on_train": {**step(8 * lines, seconds, train_split_rss)}
                if scale == 10 else None}

    scale_steps = ("transform", "train", "candidates", "recall")
    return [run(1, 1.0, 800.0), run(10, seconds_x10, 900.0)]


def test_verdicts_hold_on_linear_product_bound_runs(scale_benchmark) -> None:
    lines = scale_benchmark.verdicts(hand_made_runs())
    assert len(lines) == 4 and all("NOT met" not in line for line in lines), lines
    # Recall: 10x the seconds for 10x the lines and 10x the candidates: 0.5 against the pairs.
    assert "pairs its exponent is 0.50" in lines[0], lines[0]


@pytest.mark.parametrize(("runs", "goal"), [
    ({"seconds_x10": 20.0}, "Time at most linear"),  # exponent 1.30
    ({"train_split_rss": 2_500.0}, "Evaluation memory follows products"),
    ({"candidate_rows": 150_000}, "Candidates follow products"),
    ({"recall_rss": 5_000.0}, "under 4 GB"),
])
def test_verdicts_say_not_met(scale_benchmark, runs: dict, goal: str) -> None:
    lines = scale_benchmark.verdicts(hand_made_runs(**runs))
    failed = [line for line in lines if "NOT met" in line]
    assert len(failed) == 1 and goal in failed[0], lines


def test_results_table_rows_and_exponents(scale_benchmark) -> None:
    table = scale_benchmark.results_table(hand_made_runs(seconds_x10=10.0)).splitlines()
    assert len(table) == 2 + 2 * 4
    x10_train = next(row for row in table if row.startswith("| x10 | train |"))
    cells = [cell.strip() for cell in x10_train.strip("|").split("|")]
    # 150,000 rows in 10 s; time exponent 1.00, RSS 800 -> 900 MB over x10 lines: 0.05.
    assert cells[6] == "15,000" and cells[9] == "1.00" and cells[10] == "0.05", cells
