"""``check_data_config``: the data group's preflight. Pure config checks, each naming its key,
before anything is read, written or recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from compiler.core.validate import validate
from compiler.data.config import DataConfig, check_data_config
from compiler.errors import ConfigError
from tests.compile_helpers import compose_config


@pytest.fixture(scope="module")
def features():
    return validate(compose_config([])).features  # cherng_v3: one timestamp feature, 'date'


def error_for(node: dict, features=None) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        check_data_config(OmegaConf.create(node), features)
    return raised.value


@pytest.mark.parametrize(("node", "key", "problem"), [
    ({"split": {"ratios": {"train": 0.8, "eval": 0.0, "test": 0.1}}},
     "data.split.ratios", "expected ratios summing to 1, got 0.9"),
    ({"split": {"ratios": {"train": 0.8, "eval": -0.1, "test": 0.3}}},
     "data.split.ratios.eval", "expected >= 0 (0: no eval split), got -0.1"),
    ({"split": {"ratios": {"train": 1.0, "eval": 0.0, "test": 0.0}}},
     "data.split.ratios.test", "expected > 0, got 0.0"),
    ({"split": {"kind": "date"}}, "data.split.test_start", "expected an ISO date"),
    ({"split": {"kind": "date", "eval_start": "2011-10-01", "test_start": "2011-10-01"}},
     "data.split.eval_start", "expected a date before test_start (2011-10-01), got 2011-10-01"),
    ({"split": {"kind": "date", "test_start": "1st of May"}},
     "data.split.test_start", "expected an ISO date such as 2011-10-01, got '1st of May'"),
    ({"split": {"test_start": "2011-10-01"}},
     "data.split.test_start", "expected unset with kind random"),
    ({"timestamp_format": "%d.%m.%Q"}, "data.timestamp_format", "got '%Q' in '%d.%m.%Q'"),
    ({"timestamp_format": ["%m-%d-%y", "day"]}, "data.timestamp_format[1]",
     "at least one directive"),
    ({"timestamp_format": []}, "data.timestamp_format", "non-empty list"),
    ({"sample": 0}, "data.sample", "expected a positive row count or null, got 0"),
    ({"derived": {"sales": {"inputs": ["Quantity"]}}}, "data.derived.sales.inputs",
     "expected at least 2 columns"),
    ({"filters": {"neg": {"column": "Quantity", "op": "gt"}}}, "data.filters.neg.value",
     "expected a number"),
    ({"source": "gs://bucket-only"}, "data.source", "expected one object"),
    ({"source": "data/log.json", "format": "auto"}, "data.source", "expected an existing file"),
])
def test_config_mistakes_name_their_key(node: dict, key: str, problem: str) -> None:
    error = error_for(node)
    assert error.key == key
    assert problem in error.problem


def test_no_data_config_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"^data: expected a data config"):
        check_data_config(None)


def test_unknown_enum_values_and_keys_suggest_the_closest(features) -> None:
    error = error_for({"split": {"kind": "dates"}})
    assert (error.key, error.suggestion) == ("data.split.kind", "date")
    assert "expected one of random, date, got 'dates'" in error.problem
    error = error_for({"dirty": {"bad_timestamp": "dorp"}})
    assert (error.key, error.suggestion) == ("data.dirty.bad_timestamp", "drop")
    error = error_for({"timestamp_fromat": "%Y"})
    assert (error.key, error.suggestion) == ("data.timestamp_fromat", "timestamp_format")


def test_checks_that_need_the_feature_config(features, tmp_path: Path) -> None:
    error = error_for({"columns": {"custmer_id": "CustomerID"}}, features)
    assert (error.key, error.suggestion) == ("data.columns.custmer_id", "customer_id")
    error = error_for({"split": {"kind": "date", "test_start": "2024-01-01",
                                 "date_column": "cust_value"}}, features)
    assert error.key == "data.split.date_column"
    assert "expected a timestamp feature (date), got 'cust_value'" in error.problem
    # Without a feature config those keys cannot be judged, and pass.
    check_data_config(OmegaConf.create({"columns": {"custmer_id": "CustomerID"}}))
    # The target is a valid columns key; a date split finds the only timestamp feature.
    cfg = check_data_config(OmegaConf.create({
        "columns": {"sales": "Revenue", "customer_id": "CustomerID"},
        "split": {"kind": "date", "test_start": "2024-01-01"},
    }), features)
    assert cfg.split.eval_start is None and cfg.columns["sales"] == "Revenue"


def test_local_source_resolves_like_the_loader(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "orders.csv.gz").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    check_data_config(OmegaConf.create({"source": "exports/orders.csv.gz"}))
    error = error_for({"source": "exports/order.csv.gz"})
    assert error.key == "data.source"
    assert error.suggestion == str(tmp_path / "exports" / "orders.csv.gz")
    error = error_for({"source": "exports"})
    assert "got a directory" in error.problem
    (tmp_path / "exports" / "orders.json").write_text("[]")
    error = error_for({"source": "exports/orders.json"})
    assert error.key == "data.format" and "'orders.json'" in error.problem
    assert check_data_config(OmegaConf.create(
        {"source": "exports/orders.json", "format": "csv"})).format.value == "csv"


def test_valid_configs_pass_and_nothing_is_written(features, tmp_path: Path,
                                                   monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    for node in (
        {},  # the embedded dataset: not generated, not cached by a check
        {"source": "gs://bucket/exports/orders.parquet", "cache_dir": str(tmp_path / "c")},
        {"split": {"ratios": {"train": 0.8, "eval": 0.0, "test": 0.2}}},  # two-way
        {"timestamp_format": ["%m-%d-%y", "%m/%d/%Y", "ISO8601"]},
        {"split": {"kind": "date", "eval_start": "2011-10-01", "test_start": "2011-11-01 12:00"}},
    ):
        assert isinstance(check_data_config(OmegaConf.create(node), features), DataConfig)
    assert sorted(tmp_path.rglob("*")) == before
