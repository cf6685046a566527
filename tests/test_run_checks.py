"""``check_run_config``: the ``run`` group's preflight, and the CLI's one-line rejections."""

from __future__ import annotations

import pytest

from compiler.errors import ConfigError
from compiler.local.config import check_run_config
from compiler.runner.transform_digest import record_text
from tests.preflight_helpers import assert_rejected
from tests.test_transform_digest import resolved, write_output


@pytest.mark.parametrize(
    ("node", "key", "text"),
    [
        ({"epochs": -1}, "run.epochs", "expected a positive integer, got -1"),
        ({"epochs": 0}, "run.epochs", "expected a positive integer, got 0"),
        ({"batch_size": 0}, "run.batch_size", "expected a positive integer, got 0"),
        ({"name": "../elsewhere"}, "run.name", "expected one directory name"),
        ({"name": "a/b"}, "run.name", "got 'a/b'"),
        ({"name": ".hidden"}, "run.name", "not starting with a dot"),
        ({"transform_from": "/nonexistent/run"}, "run.transform_from", "does not exist"),
        ({"epochs": "many"}, "run.epochs", "expected an integer, got 'many'"),
        ({"epoch": 3}, "run.epoch", "did you mean 'epochs'?"),
    ],
)
def test_bad_run_settings_name_their_key(node, key, text) -> None:
    with pytest.raises(ConfigError) as raised:
        check_run_config(node)
    assert raised.value.key == key
    assert text in str(raised.value)


def test_runs_root_and_cache_dir_must_be_directories(tmp_path) -> None:
    file = tmp_path / "file"
    file.write_text("")
    with pytest.raises(ConfigError, match=r"^run.runs_root: expected a directory, got a file"):
        check_run_config({"runs_root": str(file)})
    with pytest.raises(ConfigError, match="run.cache_dir: expected a directory, got a path "
                                          "under the file"):
        check_run_config({"cache_dir": str(file / "cache")})


def test_a_name_that_already_holds_a_run_is_refused(tmp_path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "run.json").write_text("{}")
    with pytest.raises(ConfigError, match="run.name: expected a new run name, got 'taken'"):
        check_run_config({"runs_root": str(tmp_path), "name": "taken"})


def test_good_settings_pass_and_write_nothing(tmp_path) -> None:
    settings = check_run_config({"runs_root": str(tmp_path / "runs"), "epochs": 2,
                                 "batch_size": 64, "name": "trial-1", "verbose": True})
    assert (settings.epochs, settings.batch_size, settings.verbose) == (2, 64, True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("override", "key"),
    [("run.epochs=-1", "run.epochs"), ("run.batch_size=0", "run.batch_size")],
)
def test_cli_rejects_non_positive_epochs_and_batch_size(tmp_path, capsys, override, key) -> None:
    line = assert_rejected(
        ["model=hybrid_v1", "features=cherng_v3", "run=local", override,
         f"output_dir={tmp_path / 'out'}", f"run.runs_root={tmp_path / 'runs'}"],
        tmp_path=tmp_path, key=key, in_process=True, capsys=capsys)
    assert "expected a positive integer" in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_cli_rejects_a_transform_made_with_other_bucket_counts(tmp_path, capsys) -> None:
    made_with = resolved("features.buyer.1.bucketize.buckets=5")
    write_output(tmp_path / "old-run" / "transform", record_text(made_with.features))
    line = assert_rejected(
        ["model=hybrid_v1", "features=cherng_v3", "run=local",
         f"run.transform_from={tmp_path / 'old-run'}", f"output_dir={tmp_path / 'out'}",
         f"run.runs_root={tmp_path / 'runs'}"],
        tmp_path=tmp_path, key="features.buyer[1].bucketize.buckets", in_process=True,
        capsys=capsys)
    assert "buckets=100, got 5" in line
    assert not (tmp_path / "runs").exists()
