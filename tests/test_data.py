"""The data layer: embedded dataset, config schema and YAML, loader, errors, gs:// loading."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore

from compiler.data import (
    SYNTHETIC_COLUMNS,
    SYNTHETIC_TARGET,
    DataConfig,
    DataError,
    DerivedColumn,
    DirtyAction,
    DirtyRowsConfig,
    FilterOp,
    LoadedData,
    RowFilter,
    SplitConfig,
    SplitKind,
    SplitRatios,
    as_data_config,
    load_data,
    synthetic,
)

REPO = Path(__file__).resolve().parents[1]

RETAIL_REQUIRED = {
    "customer_id": "string",
    "country": "string",
    "product_id": "string",
    "date": "timestamp",
}


@pytest.fixture(scope="module")
def synthetic_frame() -> pd.DataFrame:
    return synthetic.generate(include_latent=True)


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    frame.to_csv(path, index=False)
    return path


def _tiny_log(n: int = 40) -> pd.DataFrame:
    """A small interaction log in 'file' naming, with float-y customer ids."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "CustomerID": rng.integers(10000, 10010, n).astype(float),
            "StockCode": [f"S{i % 7}" for i in range(n)],
            "InvoiceDate": pd.date_range("2021-01-01", periods=n, freq="D").strftime(
                "%Y-%m-%d %H:%M:%S"
            ),
            "Quantity": rng.integers(1, 5, n),
            "UnitPrice": np.round(rng.uniform(0.5, 3.0, n), 2),
        }
    )


def _tiny_cfg(source: Path | str, **kw: object) -> DataConfig:
    cfg = DataConfig(
        source=str(source),
        columns={"customer_id": "CustomerID", "product_id": "StockCode", "date": "InvoiceDate"},
        derived={"sales": DerivedColumn(inputs=["Quantity", "UnitPrice"])},
    )
    for key, value in kw.items():
        setattr(cfg, key, value)
    return cfg


TINY_REQUIRED = {"customer_id": "string", "product_id": "string", "date": "timestamp"}


# --------------------------------------------------------------------------- embedded dataset


@pytest.mark.slow
def test_generator_is_byte_identical_across_hash_seeds_and_tf_free(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; import compiler.data; "
        "from compiler.data import synthetic; "
        "synthetic.write_parquet(synthetic.generate(), Path(sys.argv[1])); "
        # The data layer must stay TensorFlow-free (compiling never imports TF).
        "assert not [m for m in sys.modules if m.split('.')[0] == 'tensorflow']"
    )
    digests = []
    for hash_seed in ("0", "4242"):
        out = tmp_path / f"gen-{hash_seed}.parquet"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(REPO)}
        subprocess.run([sys.executable, "-c", script, str(out)], check=True, env=env, cwd=REPO)
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    pd.testing.assert_frame_equal(synthetic.generate(), synthetic.generate())


def test_generator_scale_and_columns(synthetic_frame: pd.DataFrame) -> None:
    df = synthetic_frame
    assert list(df.columns[:7]) == list(SYNTHETIC_COLUMNS)
    assert len(df) == 15_000
    assert df["customer_id"].nunique() == 400
    assert 950 <= df["product_id"].nunique() <= synthetic.N_PRODUCTS
    assert df["category"].nunique() == 3
    assert df["sub_category"].nunique() == 17
    assert {"Beverages", "Food", "Household"} == set(df["category"])
    assert df["customer_id"].str.fullmatch(r"C\d{4}").all()
    assert df["product_id"].str.fullmatch(r"P\d{4}").all()
    assert pd.api.types.is_datetime64_any_dtype(df["date"])
    span = df["date"].max() - df["date"].min()
    assert pd.Timedelta(days=700) < span <= pd.Timedelta(days=731)
    assert (df["sales"] > 0).all() and df["sales"].notna().all()
    # A product has one category / sub-category; a customer one value.
    assert (df.groupby("product_id")["sub_category"].nunique() == 1).all()
    assert (df.groupby("customer_id")["cust_value"].nunique() == 1).all()


@pytest.mark.slow
def test_generator_has_learnable_structure(synthetic_frame: pd.DataFrame) -> None:
    df = synthetic_frame
    # Segment preference: each segment's favourite sub-category is far above its overall share.
    overall = df["sub_category"].value_counts(normalize=True)
    for _, group in df.groupby("segment"):
        share = group["sub_category"].value_counts(normalize=True)
        assert share.iloc[0] > 2.0 * overall[share.index[0]]

    # Weekly seasonality in order counts.
    by_day = df["date"].dt.day_of_week.value_counts()
    assert by_day[0] > 3 * by_day[6]

    # Repeat purchases: many lines re-buy a product the customer bought before (uniform choice
    # over the catalogue would give ~2%).
    repeats = df.duplicated(["customer_id", "product_id"]).mean()
    assert repeats > 0.3

    # Retrieval: a personal scorer (own history + preferred sub-categories) beats global
    # popularity on Recall@100 over the last 20% of dates by a wide margin.
    cut = df["date"].quantile(0.8)
    train, test = df[df["date"] < cut], df[df["date"] >= cut]
    popularity = train["product_id"].value_counts()
    pop_recall = test["product_id"].isin(popularity.index[:100]).mean()
    product_sub = train.drop_duplicates("product_id").set_index("product_id")["sub_category"]
    pop = popularity.reindex(product_sub.index).astype(float)
    within_sub = (pop / pop.groupby(product_sub).transform("sum")).to_numpy()
    hits = 0
    history = dict(tuple(train.groupby("customer_id")))
    for customer, rows in test.groupby("customer_id"):
        past = history.get(customer)
        if past is None:
            continue
        sub_share = product_sub.map(past["sub_category"].value_counts(normalize=True))
        own = past["product_id"].value_counts().reindex(product_sub.index).fillna(0)
        score = within_sub * sub_share.fillna(0).to_numpy() + own.to_numpy()
        top = product_sub.index[np.argsort(-score, kind="stable")[:100]]
        hits += int(rows["product_id"].isin(top).sum())
    personal_recall = hits / len(test)
    assert personal_recall > pop_recall + 0.2, (personal_recall, pop_recall)

    # Ranking: log sales depend on customer value and product, so a simple model beats the mean.
    y_train, y_test = np.log1p(train["sales"]), np.log1p(test["sales"])
    x_train = np.c_[np.ones(len(train)), np.log(train["cust_value"])]
    beta = np.linalg.lstsq(x_train, y_train, rcond=None)[0]
    product_effect = (y_train - x_train @ beta).groupby(train["product_id"]).mean()
    x_test = np.c_[np.ones(len(test)), np.log(test["cust_value"])]
    pred = x_test @ beta + test["product_id"].map(product_effect).fillna(0).to_numpy()
    rmse_model = float(np.sqrt(np.mean((y_test - pred) ** 2)))
    rmse_mean = float(np.sqrt(np.mean((y_test - y_train.mean()) ** 2)))
    assert rmse_model < 0.6 * rmse_mean, (rmse_model, rmse_mean)


def test_cache_is_written_once_atomically_and_repaired(tmp_path: Path) -> None:
    path = synthetic.ensure_cached(tmp_path)
    assert path == synthetic.cache_path(tmp_path)
    assert f"v{synthetic.GENERATOR_VERSION}" in path.name
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp files left behind
    stamp = path.stat().st_mtime_ns
    assert synthetic.ensure_cached(tmp_path) == path and path.stat().st_mtime_ns == stamp
    good = path.read_bytes()
    path.write_bytes(b"not parquet")
    synthetic.ensure_cached(tmp_path)
    assert path.read_bytes() == good


def test_load_default_source(tmp_path: Path) -> None:
    cfg = DataConfig(cache_dir=str(tmp_path))
    data = load_data(cfg, SYNTHETIC_COLUMNS, SYNTHETIC_TARGET)
    assert isinstance(data, LoadedData)
    assert {k: len(v) for k, v in data.splits.items()} == {
        "train": 12000,
        "eval": 1500,
        "test": 1500,
    }
    assert data.total_rows == 15000 and data.dropped == {}
    assert "synthetic" in data.source_description
    train = data.splits["train"]
    assert list(train.columns) == list(SYNTHETIC_COLUMNS)
    assert train["date"].dtype == np.int64 and train["sales"].dtype == np.float32
    assert train["cust_value"].dtype == np.float32
    assert isinstance(train["customer_id"].iloc[0], str)
    assert train["date"].min() >= 1672531200  # 2023-01-01T00:00:00Z
    again = load_data(cfg, SYNTHETIC_COLUMNS, SYNTHETIC_TARGET)
    for name in ("train", "eval", "test"):
        pd.testing.assert_frame_equal(data.splits[name], again.splits[name])


# --------------------------------------------------------------------------- files & mapping


def test_csv_with_mapping_float_ids_and_derived_target(tmp_path: Path) -> None:
    log = _tiny_log()
    path = _write_csv(tmp_path / "log.csv", log)
    data = load_data(_tiny_cfg(path), TINY_REQUIRED, target="sales")
    frame = pd.concat(data.splits.values())
    assert data.total_rows == 40 and data.kept_rows == 40
    assert list(frame.columns) == ["customer_id", "product_id", "date", "sales"]
    assert set(frame["customer_id"]) <= {str(i) for i in range(10000, 10010)}  # not "10003.0"
    assert frame["date"].dtype == np.int64
    assert frame["date"].min() == 1609459200  # 2021-01-01T00:00:00Z
    expected = dict(
        zip(
            (pd.to_datetime(log["InvoiceDate"]) - pd.Timestamp(0)) // pd.Timedelta(seconds=1),
            (log["Quantity"] * log["UnitPrice"]).astype(np.float32),
            strict=True,
        )
    )
    assert all(expected[d] == s for d, s in zip(frame["date"], frame["sales"], strict=True))
    assert frame["sales"].dtype == np.float32


def test_parquet_with_mapping_and_native_types(tmp_path: Path) -> None:
    log = _tiny_log()
    log["CustomerID"] = log["CustomerID"].astype("int64")
    log["InvoiceDate"] = pd.to_datetime(log["InvoiceDate"])
    log["Weight"] = np.arange(40, dtype=np.int32)
    path = tmp_path / "log.parquet"
    log.to_parquet(path)
    required = {**TINY_REQUIRED, "weight": "int"}
    cfg = _tiny_cfg(path)
    cfg.columns["weight"] = "Weight"
    data = load_data(cfg, required, target="sales")
    frame = pd.concat(data.splits.values()).sort_values("date")
    assert frame["customer_id"].str.fullmatch(r"100\d\d").all()
    assert frame["date"].iloc[0] == 1609459200
    assert frame["weight"].dtype == np.int64 and frame["weight"].tolist() == list(range(40))


def test_text_filters_and_ids_keep_leading_zeros(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv.gz"
    rows = ["InvoiceNo,Item,Qty,When"]
    rows += [f"{1000 + i},00{i % 3},{i + 1},2022-03-0{1 + i % 9}" for i in range(30)]
    rows += ["C2000,001,5,2022-03-01", "C2001,002,5,2022-03-02"]
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(rows) + "\n")
    cfg = DataConfig(
        source=str(path),
        columns={"item": "Item", "when": "When", "qty": "Qty"},
        filters={
            "cancellation": RowFilter(column="InvoiceNo", op=FilterOp.not_startswith, text="C")
        },
    )
    data = load_data(cfg, {"item": "string", "when": "timestamp", "qty": "float"}, target="qty")
    assert data.dropped == {"cancellation": 2}
    assert set(pd.concat(data.splits.values())["item"]) == {"000", "001", "002"}


def test_dirty_rows_are_dropped_and_counted_once(tmp_path: Path) -> None:
    log = _tiny_log(50)
    log.loc[0:2, "CustomerID"] = np.nan  # 3 missing ids
    log.loc[3:4, "InvoiceDate"] = ["not a date", "2021-13-45 00:00:00"]  # 2 bad dates
    log.loc[5, "Quantity"] = 0  # sales 0 -> non-positive target
    log.loc[6, "UnitPrice"] = -1.0  # negative price: caught by the filter first
    log.loc[7, "UnitPrice"] = np.nan  # sales NaN -> bad number
    log.loc[8, "CustomerID"] = np.nan  # a 4th missing id
    log.loc[9, "UnitPrice"] = -2.0
    log.loc[9, "CustomerID"] = np.nan  # breaks the filter and the id rule: counted once
    path = _write_csv(tmp_path / "dirty.csv", log)
    cfg = _tiny_cfg(
        path,
        filters={"non_positive_price": RowFilter(column="UnitPrice", op=FilterOp.gt, value=0.0)},
    )
    data = load_data(cfg, TINY_REQUIRED, target="sales")
    assert data.dropped == {
        "non_positive_price": 3,  # rows 6, 7 (NaN fails a comparison) and 9
        "missing_id:customer_id": 4,
        "bad_timestamp:date": 2,
        "non_positive_target:sales": 1,
    }
    assert data.total_rows == 50
    assert data.kept_rows + sum(data.dropped.values()) == 50
    assert "non_positive_price=3" in data.summary()


def test_dirty_rows_fail_policy_names_rule_and_file(tmp_path: Path) -> None:
    log = _tiny_log()
    log.loc[4, "CustomerID"] = np.nan
    path = _write_csv(tmp_path / "dirty.csv", log)
    cfg = _tiny_cfg(path, dirty=DirtyRowsConfig(missing_id=DirtyAction.fail))
    with pytest.raises(DataError) as err:
        load_data(cfg, TINY_REQUIRED, target="sales")
    msg = str(err.value)
    assert str(path) in msg and "'CustomerID'" in msg and "customer_id" in msg
    assert "data.dirty.missing_id" in msg and "data row 5" in msg and "1 row(s)" in msg

    log = _tiny_log()
    log.loc[2, "Quantity"] = -3
    path = _write_csv(tmp_path / "neg.csv", log)
    cfg = _tiny_cfg(path, dirty=DirtyRowsConfig(non_positive_target=DirtyAction.fail))
    with pytest.raises(DataError, match=r"data\.dirty\.non_positive_target"):
        load_data(cfg, TINY_REQUIRED, target="sales")


def test_random_split_ratios_and_seed(tmp_path: Path) -> None:
    frame = pd.DataFrame({"u": [f"u{i}" for i in range(1000)], "x": np.arange(1000.0)})
    path = _write_csv(tmp_path / "rows.csv", frame)
    required = {"u": "string", "x": "float"}
    cfg = DataConfig(source=str(path))
    data = load_data(cfg, required)
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 800, "eval": 100, "test": 100}
    union = pd.concat(data.splits.values())["x"]
    assert sorted(union) == list(range(1000))  # a partition: nothing lost or duplicated
    for part in data.splits.values():  # file order inside each split
        assert part["x"].is_monotonic_increasing
    same = load_data(cfg, required)
    other = load_data(DataConfig(source=str(path), split=SplitConfig(seed=7)), required)
    assert data.splits["test"]["u"].tolist() == same.splits["test"]["u"].tolist()
    assert data.splits["test"]["u"].tolist() != other.splits["test"]["u"].tolist()

    custom = DataConfig(
        source=str(path), split=SplitConfig(ratios=SplitRatios(train=0.6, eval=0.25, test=0.15))
    )
    sizes = {k: len(v) for k, v in load_data(custom, required).splits.items()}
    assert sizes == {"train": 600, "eval": 250, "test": 150}


def test_sample_limits_rows_deterministically(tmp_path: Path) -> None:
    frame = pd.DataFrame({"u": [f"u{i}" for i in range(500)], "x": np.arange(500.0)})
    path = _write_csv(tmp_path / "rows.csv", frame)
    cfg = DataConfig(source=str(path), sample=100)
    first = load_data(cfg, {"u": "string", "x": "float"})
    assert first.kept_rows == 100 and first.sampled_out == 400 and first.total_rows == 500
    second = load_data(cfg, {"u": "string", "x": "float"})
    assert first.splits["train"]["u"].tolist() == second.splits["train"]["u"].tolist()


def test_date_split(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "log.csv", _tiny_log(40))  # 2021-01-01 .. 2021-02-09, daily
    split = SplitConfig(kind=SplitKind.date, eval_start="2021-01-31", test_start="2021-02-05")
    data = load_data(_tiny_cfg(path, split=split), TINY_REQUIRED, target="sales")
    sizes = {k: len(v) for k, v in data.splits.items()}
    assert sizes == {"train": 30, "eval": 5, "test": 5}
    eval_cut = 1612051200  # 2021-01-31T00:00:00Z
    assert data.splits["train"]["date"].max() < eval_cut <= data.splits["eval"]["date"].min()


# --------------------------------------------------------------------------- errors


def test_error_missing_file_suggests_sibling(tmp_path: Path) -> None:
    _write_csv(tmp_path / "transactions.csv", _tiny_log())
    with pytest.raises(DataError) as err:
        load_data(_tiny_cfg(tmp_path / "transaction.csv"), TINY_REQUIRED)
    msg = str(err.value)
    assert "not found" in msg and "data.source" in msg and "transaction.csv" in msg
    assert "did you mean" in msg and "transactions.csv" in msg


def test_relative_source_is_resolved_against_base_dir_and_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    _write_csv(tmp_path / "sub" / "log.csv", _tiny_log())
    data = load_data(_tiny_cfg("sub/log.csv"), TINY_REQUIRED, base_dir=tmp_path)
    assert str(tmp_path / "sub" / "log.csv") in data.source_description
    monkeypatch.chdir(tmp_path)
    assert load_data(_tiny_cfg("sub/log.csv"), TINY_REQUIRED).kept_rows == 40


def test_error_mapped_column_absent_lists_columns_and_suggests(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "log.csv", _tiny_log())
    cfg = _tiny_cfg(path)
    cfg.columns["customer_id"] = "CustomerId"
    with pytest.raises(DataError) as err:
        load_data(cfg, TINY_REQUIRED)
    msg = str(err.value)
    assert "data.columns.customer_id" in msg and "'CustomerId'" in msg and str(path) in msg
    assert "Available columns: CustomerID, StockCode, InvoiceDate, Quantity, UnitPrice" in msg
    assert "Did you mean 'CustomerID'?" in msg


def test_error_unmapped_feature_column_and_mistyped_key(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "log.csv", _tiny_log())
    cfg = DataConfig(source=str(path), columns={"custmer_id": "CustomerID"})
    with pytest.raises(DataError) as err:  # a mistyped key is a config error, before reading
        load_data(cfg, {"customer_id": "string"})
    msg = str(err.value)
    assert msg.startswith("data.columns.custmer_id: expected a feature or target")
    assert "did you mean 'customer_id'?" in msg
    with pytest.raises(DataError) as err:
        load_data(DataConfig(source=str(path)), {"customer_id": "string"})
    msg = str(err.value)
    assert "feature column 'customer_id'" in msg and "data.columns.customer_id" in msg
    assert "Did you mean 'CustomerID'?" in msg  # case-insensitive match against the header


def test_error_derived_and_filter_columns_checked(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "log.csv", _tiny_log())
    cfg = _tiny_cfg(path, derived={"sales": DerivedColumn(inputs=["Quantity", "UnitPrise"])})
    with pytest.raises(DataError, match=r"data\.derived\.sales\.inputs\[1\].*'UnitPrice'"):
        load_data(cfg, TINY_REQUIRED, target="sales")
    cfg = _tiny_cfg(path, filters={"neg": RowFilter(column="Quantty", op=FilterOp.gt, value=0.0)})
    with pytest.raises(DataError, match=r"data\.filters\.neg\.column.*Did you mean 'Quantity'"):
        load_data(cfg, TINY_REQUIRED, target="sales")
    cfg = _tiny_cfg(path, filters={"neg": RowFilter(column="Quantity", op=FilterOp.gt)})
    with pytest.raises(DataError, match=r"data\.filters\.neg\.value: expected a number"):
        load_data(cfg, TINY_REQUIRED, target="sales")


def test_error_empty_split_names_split_and_settings(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "log.csv", _tiny_log(40))
    split = SplitConfig(kind=SplitKind.date, eval_start="2021-01-20", test_start="2022-01-01")
    with pytest.raises(DataError) as err:
        load_data(_tiny_cfg(path, split=split), TINY_REQUIRED)
    msg = str(err.value)
    assert "split 'test' is empty" in msg and "test_start=2022-01-01" in msg
    assert "2021-01-01 00:00:00 to 2021-02-09 00:00:00" in msg

    path = _write_csv(tmp_path / "three.csv", _tiny_log(3))
    with pytest.raises(DataError) as err:
        load_data(_tiny_cfg(path), TINY_REQUIRED)
    msg = str(err.value)
    assert "split 'eval' is empty" in msg and "seed=42" in msg and "eval=0.1" in msg


def test_error_bad_split_config(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "log.csv", _tiny_log())
    bad = SplitConfig(ratios=SplitRatios(train=0.8, eval=0.1, test=0.2))
    with pytest.raises(DataError, match=r"data\.split\.ratios: expected ratios summing to 1"):
        load_data(_tiny_cfg(path, split=bad), TINY_REQUIRED)
    with pytest.raises(DataError, match=r"data\.split\.test_start: expected an ISO date"):
        load_data(_tiny_cfg(path, split=SplitConfig(kind=SplitKind.date)), TINY_REQUIRED)


def test_error_unsupported_or_unreadable_format(tmp_path: Path) -> None:
    path = tmp_path / "log.json"
    path.write_text("[]")
    with pytest.raises(DataError, match=r"data\.format: .*cannot tell the format of 'log\.json'"):
        load_data(_tiny_cfg(path), TINY_REQUIRED)

    broken = tmp_path / "log.parquet"
    broken.write_bytes(b"definitely not parquet")
    with pytest.raises(DataError) as err:
        load_data(_tiny_cfg(broken), TINY_REQUIRED)
    assert "cannot read" in str(err.value) and "Parquet" in str(err.value)
    assert str(broken) in str(err.value)

    disguised = tmp_path / "log.csv"
    _tiny_log().to_parquet(disguised)
    with pytest.raises(DataError, match=r"is a Parquet file but is being read as CSV"):
        load_data(_tiny_cfg(disguised), TINY_REQUIRED)

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match=r"cannot read .*empty\.csv as CSV"):
        load_data(_tiny_cfg(empty), TINY_REQUIRED)


def test_error_bad_kind_and_config_values(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"kind 'strng'.*Did you mean 'string'"):
        load_data(DataConfig(), {"customer_id": "strng"})
    with pytest.raises(DataError, match=r"invalid data config"):
        as_data_config({"split": {"kind": "chronological"}})


# --------------------------------------------------------------------------- YAML + Hydra


def _compose(name: str, *overrides: str) -> DataConfig:
    ConfigStore.instance().store(group="data", name="data_schema", node=DataConfig)
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base=None):
        cfg = compose(overrides=[f"+data={name}", *overrides])
    return as_data_config(cfg.data)


def test_yaml_configs_validate_against_schema() -> None:
    default = _compose("default")
    assert default.source == "default" and default.split.ratios.train == 0.8
    retail = _compose("online_retail")
    assert retail.columns["customer_id"] == "CustomerID"
    assert retail.derived["sales"].inputs == ["Quantity", "UnitPrice"]
    assert list(retail.filters) == ["cancellation", "non_positive_quantity", "non_positive_price"]
    assert retail.source.endswith("online_retail/online_retail.csv.gz")


def test_online_retail_config_on_a_file_shaped_like_the_real_log(tmp_path: Path) -> None:
    header = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
    good = [
        f"5363{i:02d},8512{i % 4}A,ITEM {i},{i % 5 + 1}.0,2010-12-{1 + i % 9:02d} 08:26:00,"
        f"2.55,{17850 + i % 6}.0,United Kingdom"
        for i in range(30)
    ]
    bad = [
        "C536379,D,Discount,-1.0,2010-12-01 09:41:00,27.5,14527.0,United Kingdom",
        "536380,22086,PAPER CHAIN,-12.0,2010-12-01 09:41:00,2.55,14527.0,United Kingdom",
        "536381,22087,FREE GIFT,1.0,2010-12-01 09:41:00,0.0,14527.0,United Kingdom",
        "536382,22088,NO CUSTOMER,3.0,2010-12-01 09:41:00,1.25,,United Kingdom",
    ]
    path = tmp_path / "retail.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join([header, *good, *bad]) + "\n")
    cfg = _compose("online_retail", f"data.source='{path}'")
    data = load_data(cfg, RETAIL_REQUIRED, target="sales")
    assert data.dropped == {
        "cancellation": 1,
        "non_positive_quantity": 1,
        "non_positive_price": 1,
        "missing_id:customer_id": 1,
    }
    frame = pd.concat(data.splits.values())
    assert set(frame["customer_id"]) == {str(17850 + k) for k in range(6)}
    assert re.fullmatch(r"8512\dA", frame["product_id"].iloc[0])
    assert frame["date"].min() == 1291191960  # 2010-12-01 08:26:00 UTC


# --------------------------------------------------------------------------- gs://


def test_load_from_gcs_emulator(gcs_emulator: Any, tmp_path: Path) -> None:
    log = _tiny_log()
    local = _write_csv(tmp_path / "log.csv", log)
    uri = gcs_emulator.upload(local, "raw/log.csv")
    from_gcs = load_data(_tiny_cfg(uri), TINY_REQUIRED, target="sales")
    from_disk = load_data(_tiny_cfg(local), TINY_REQUIRED, target="sales")
    assert from_gcs.source_description.startswith(uri)
    for name in ("train", "eval", "test"):
        pd.testing.assert_frame_equal(from_gcs.splits[name], from_disk.splits[name])

    parquet = tmp_path / "log.parquet"
    log.to_parquet(parquet)
    uri = gcs_emulator.upload(parquet, "raw/log.parquet")
    assert load_data(_tiny_cfg(uri), TINY_REQUIRED, target="sales").kept_rows == 40


def test_gcs_missing_object_and_bucket(gcs_emulator: Any, tmp_path: Path) -> None:
    gcs_emulator.upload_bytes(b"a,b\n1,2\n", "raw/interactions.csv")
    with pytest.raises(DataError) as err:
        load_data(_tiny_cfg(gcs_emulator.uri("raw/interaction.csv")), TINY_REQUIRED)
    msg = str(err.value)
    assert "not found" in msg and "data.source" in msg
    assert f"Did you mean gs://{gcs_emulator.bucket}/raw/interactions.csv?" in msg
    with pytest.raises(DataError, match=r"bucket 'no-such-bucket' does not exist"):
        load_data(_tiny_cfg("gs://no-such-bucket/raw/x.csv"), TINY_REQUIRED)


# --------------------------------------------------------------------------- formats, two-way


def test_timestamp_formats_are_tried_in_order(tmp_path: Path) -> None:
    """A real export mixes date formats; every listed format gets its chance."""
    log = _tiny_log(6)
    log["InvoiceDate"] = ["11-08-16", "4/15/2017", "12-31-99", "1/2/2020", "11-08-16", "7/4/2018"]
    path = _write_csv(tmp_path / "mixed.csv", log)
    single = load_data(_tiny_cfg(path, timestamp_format="%m-%d-%y",
                                 split=SplitConfig(ratios=SplitRatios(0.5, 0.0, 0.5))),
                       TINY_REQUIRED)
    assert single.dropped == {"bad_timestamp:date": 3}
    assert single.bad_values["bad_timestamp:date"] == ["'4/15/2017'", "'1/2/2020'", "'7/4/2018'"]
    assert "bad_timestamp:date=3 (e.g. '4/15/2017', '1/2/2020', '7/4/2018')" in single.summary()

    both = load_data(_tiny_cfg(path, timestamp_format=["%m-%d-%y", "%m/%d/%Y"],
                               split=SplitConfig(ratios=SplitRatios(0.5, 0.0, 0.5))),
                     TINY_REQUIRED)
    assert both.dropped == {} and both.kept_rows == 6
    stamps = sorted(pd.concat(both.splits.values())["date"].tolist())
    expected = ["1999-12-31", "2016-11-08", "2016-11-08", "2017-04-15", "2018-07-04", "2020-01-02"]
    assert stamps == [int(pd.Timestamp(d, tz="UTC").timestamp()) for d in expected]


def test_bad_value_samples_name_at_most_three_per_reason(tmp_path: Path) -> None:
    log = _tiny_log(20)
    log.loc[0:4, "CustomerID"] = np.nan
    log.loc[5, "InvoiceDate"] = "yesterday"
    path = _write_csv(tmp_path / "dirty.csv", log)
    data = load_data(_tiny_cfg(path), TINY_REQUIRED, target="sales")
    assert data.dropped == {"missing_id:customer_id": 5, "bad_timestamp:date": 1}
    assert data.bad_values == {"missing_id:customer_id": ["<missing>"] * 3,
                               "bad_timestamp:date": ["'yesterday'"]}
    with pytest.raises(DataError, match=r"data row 6, e\.g\. 'yesterday'"):
        load_data(_tiny_cfg(path, dirty=DirtyRowsConfig(bad_timestamp=DirtyAction.fail)),
                  TINY_REQUIRED, target="sales")


def test_two_way_random_split_has_no_eval(tmp_path: Path) -> None:
    frame = pd.DataFrame({"u": [f"u{i}" for i in range(1000)], "x": np.arange(1000.0)})
    path = _write_csv(tmp_path / "rows.csv", frame)
    cfg = DataConfig(source=str(path),
                     split=SplitConfig(ratios=SplitRatios(train=0.8, eval=0.0, test=0.2)))
    data = load_data(cfg, {"u": "string", "x": "float"})
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 800, "test": 200}
    assert "no eval split" in data.summary()


def test_two_way_date_split_has_no_eval(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "log.csv", _tiny_log(40))  # 2021-01-01 .. 2021-02-09, daily
    split = SplitConfig(kind=SplitKind.date, test_start="2021-02-05")
    data = load_data(_tiny_cfg(path, split=split), TINY_REQUIRED, target="sales")
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 35, "test": 5}
