"""The Transform on other Beam runner modes, and its per-product table (issue #15).

- ``run.beam`` is checked before anything is written: an unknown runner, a flag Beam does not
  know or cannot parse, ``--runner`` among the flags, Dataflow without what it needs, and
  Dataflow under ``run=local`` are each one ``error:`` line, exit 2.
- The Transform with ``--direct_running_mode=multi_processing --direct_num_workers=2``
  (workers in other processes, sharded writes) gives the same transformed rows per split, the
  same vocabularies and the same product table as the default in-memory mode.
- The product table has exactly one row per distinct product id over all splits, with that
  product's transformed features, checked against pandas on the raw data.
- The fast in-memory path (Beam's bookkeeping memoized, ``compiler.runner.lean_beam``, and the
  construction-time type check off) writes the same examples in the same order, the same
  vocabularies byte for byte and the same product table as Beam left untouched (issue #16).
"""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from compiler.errors import ConfigError
from compiler.runner.beam_options import check_pipeline_options
from tests.preflight_helpers import assert_rejected
from tests.tiny_data import RAW_SCHEMA, split, tiny_transactions

MULTI_PROCESS = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
SPLITS = ("train", "eval", "test")


# ---------------------------------------------------------------------------------------------
# Fast: the preflight
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("override", "key", "message"), [
    ("run.beam.runner=DirectRuner", "run.beam.runner", "did you mean 'DirectRunner'?"),
    ("run.beam.runnr=DirectRunner", "run.beam.runnr", "did you mean 'runner'?"),
    ("run.beam.options=['direct_num_workers=2']", "run.beam.options",
     "expected Beam flags like '--name=value', got 'direct_num_workers=2'"),
    ("run.beam.options=['--runner=DataflowRunner']", "run.beam.options",
     "set run.beam.runner instead"),
    ("run.beam.runner=DataflowRunner", "run.beam.runner",
     "use submit=dataflow_transform"),
])
def test_run_local_refuses_bad_beam_settings(tmp_path: Path, capsys, override: str, key: str,
                                             message: str) -> None:
    line = assert_rejected(["run=local", f"run.runs_root={tmp_path / 'runs'}",
                            f"output_dir={tmp_path / 'out'}", override],
                           tmp_path=tmp_path, key=key, in_process=True, capsys=capsys)
    assert message in line
    assert not (tmp_path / "runs").exists()


DATAFLOW = ["--project=p", "--region=europe-west4", "--temp_location=gs://b/tmp",
            "--staging_location=gs://b/staging", "--setup_file=./setup.py"]


@pytest.mark.parametrize(("options", "message"), [
    (DATAFLOW[:1], "expected --region=... for DataflowRunner"),
    ([*DATAFLOW[:2], "--temp_location=/tmp/x", *DATAFLOW[3:]],
     "expected --temp_location=gs://... for DataflowRunner"),
    (DATAFLOW[:4], "expected one of --requirements_file, --setup_file, --sdk_container_image"),
])
def test_dataflow_needs_its_options(options: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        check_pipeline_options("DataflowRunner", options, key="submit")
    assert str(raised.value).startswith("submit.options: ")
    assert message in str(raised.value) and "\n" not in str(raised.value)


# ---------------------------------------------------------------------------------------------
# Slow: Beam parses the flags (importing Beam takes about a second)
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(("override", "message"), [
    ("run.beam.options=['--direct_num_wrkers=2']", "did you mean 'direct_num_workers'?"),
    ("run.beam.options=['--direct_running_mode=fast']", "invalid choice: 'fast'"),
    ("run.beam.options=['--direct_num_workers=two']", "'--direct_num_workers=two'"),
])
def test_run_local_refuses_flags_beam_cannot_parse(tmp_path: Path, capsys, override: str,
                                                   message: str) -> None:
    line = assert_rejected(["run=local", f"run.runs_root={tmp_path / 'runs'}",
                            f"output_dir={tmp_path / 'out'}", override],
                           tmp_path=tmp_path, key="run.beam.options", in_process=True,
                           capsys=capsys)
    assert message in line


@pytest.mark.slow
def test_dataflow_options_beam_accepts_pass() -> None:
    assert check_pipeline_options("DataflowRunner", DATAFLOW) == DATAFLOW
    assert check_pipeline_options("DirectRunner", MULTI_PROCESS) == MULTI_PROCESS


# ---------------------------------------------------------------------------------------------
# Slow: the Transform in memory and in two worker processes
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def transforms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    from compiler.core.pipeline import compile_overrides
    from compiler.runner.product_table import product_columns
    from compiler.runner.transform import run_transform

    root = tmp_path_factory.mktemp("runners")
    result = compile_overrides(["model=hybrid_v1"], output_dir=root / "modules")
    columns = product_columns(result.plan, result.config.features.product_id)
    splits = split(tiny_transactions())
    module = root / "modules" / "transform_module.py"
    artifacts = {
        mode: run_transform(splits, RAW_SCHEMA, module, str(root / mode),
                            pipeline_options=options, product_columns=columns)
        for mode, options in (("in_memory", []), ("multi_processing", MULTI_PROCESS))
    }
    artifacts["untouched"] = run_transform(splits, RAW_SCHEMA, module, str(root / "untouched"),
                                           product_columns=columns, lean_construction=False)
    return {"artifacts": artifacts, "columns": columns, "splits": splits}


def _rows(pattern: str) -> list[dict[str, tuple]]:
    """Every tf.Example of the gzip TFRecord files matching ``pattern``, parsed, sorted."""
    import glob

    from compiler.runner._tf import import_tf

    tf = import_tf()
    rows = []
    for path in sorted(glob.glob(pattern)):
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            example = tf.train.Example.FromString(record.numpy())
            rows.append({name: tuple(feature.int64_list.value) or tuple(feature.float_list.value)
                         for name, feature in example.features.feature.items()})
    return sorted(rows, key=lambda row: sorted(row.items()))


@pytest.mark.slow
def test_multi_processing_gives_the_same_transform_output(transforms) -> None:
    memory, processes = (transforms["artifacts"][m] for m in ("in_memory", "multi_processing"))
    for name in SPLITS:
        expected = _rows(memory.file_pattern(name))
        assert len(expected) == len(transforms["splits"][name])
        assert _rows(processes.file_pattern(name)) == expected, name
    # The sharded writer names its files as TFX does: transformed_examples-NNNNN-of-NNNNN.gz
    written = sorted(p.name for p in Path(processes.split_dirs["train"]).iterdir())
    assert written and all(n.startswith("transformed_examples-") and n.endswith(".gz")
                           for n in written)
    assets = Path(memory.transform_graph) / "transform_fn" / "assets"
    vocabularies = sorted(p.name for p in assets.iterdir())
    assert "product_id_vocab" in vocabularies
    other = Path(processes.transform_graph) / "transform_fn" / "assets"
    assert sorted(p.name for p in other.iterdir()) == vocabularies
    for name in vocabularies:
        assert filecmp.cmp(assets / name, other / name, shallow=False), name
    table = _rows(f"{memory.product_table}/product_table-*.gz")
    assert table and _rows(f"{processes.product_table}/product_table-*.gz") == table


def _examples(directory: str) -> dict[str, list[dict[str, tuple]]]:
    """File name -> its tf.Examples, parsed, in file order. Parsed rather than compared as
    bytes: a tf.Example's features are a map, whose serialized order varies from one run of
    the same pipeline to the next."""
    from compiler.runner._tf import import_tf

    tf = import_tf()
    files = {}
    for path in sorted(Path(directory).glob("*.gz")):
        files[path.name] = [
            {name: tuple(feature.int64_list.value) or tuple(feature.float_list.value)
             for name, feature in tf.train.Example.FromString(record.numpy())
             .features.feature.items()}
            for record in tf.data.TFRecordDataset(str(path), compression_type="GZIP")]
    return files


def _file_bytes(directory: str) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(Path(directory).iterdir())}


@pytest.mark.slow
def test_the_fast_path_writes_exactly_what_untouched_beam_writes(transforms) -> None:
    fast, untouched = (transforms["artifacts"][m] for m in ("in_memory", "untouched"))
    for name in SPLITS:
        examples = _examples(fast.split_dirs[name])
        assert sum(map(len, examples.values())) == len(transforms["splits"][name]), name
        assert examples == _examples(untouched.split_dirs[name]), name
    for directory in ("transform_fn/assets", "transformed_metadata", "metadata"):
        assert _file_bytes(f"{fast.transform_graph}/{directory}") == \
            _file_bytes(f"{untouched.transform_graph}/{directory}"), directory
    assert _examples(str(fast.product_table)) == _examples(str(untouched.product_table))


@pytest.mark.slow
def test_product_table_has_one_row_per_product_with_its_features(transforms) -> None:
    import pandas as pd

    artifacts = transforms["artifacts"]["in_memory"]
    columns = transforms["columns"]
    assert columns[0] == "product_id_id"
    table = pd.DataFrame([{k: v[0] for k, v in row.items()}
                          for row in _rows(f"{artifacts.product_table}/product_table-*.gz")])
    assert sorted(table.columns) == sorted(columns)
    assert table["product_id_id"].is_unique

    # Independently, from the raw data and the vocabularies: every distinct product of all
    # splits maps to its vocabulary id (products unseen in train share the one OOV id).
    assets = Path(artifacts.transform_graph) / "transform_fn" / "assets"

    def vocabulary(name: str) -> dict[str, int]:
        words = (assets / name).read_text().splitlines()
        return {word: index for index, word in enumerate(words)}

    products, categories, subs = (vocabulary(f"{n}_vocab")
                                  for n in ("product_id", "category", "sub_category"))
    raw = pd.concat(transforms["splits"].values())
    raw = raw.assign(product_id_id=raw["product_id"].map(products).fillna(len(products)))
    assert set(table["product_id_id"]) == set(raw["product_id_id"].astype(int))
    known = raw[raw["product_id"].isin(products)].drop_duplicates("product_id")
    expected = pd.DataFrame({
        "product_id_id": known["product_id_id"].astype(int),
        "category_id": known["category"].map(categories),
        "sub_category_id": known["sub_category"].map(subs),
    }).sort_values("product_id_id").reset_index(drop=True)
    got = table[table["product_id_id"] < len(products)][list(expected.columns)]
    pd.testing.assert_frame_equal(got.sort_values("product_id_id").reset_index(drop=True),
                                  expected, check_dtype=False)

    # The crossed column: the one value every transformed row of that product holds.
    lines = pd.DataFrame([{k: v[0] for k, v in row.items()}
                          for name in SPLITS for row in _rows(artifacts.file_pattern(name))])
    per_product = lines.groupby("product_id_id")[list(columns[1:])].nunique()
    known_ids = table["product_id_id"] < len(products)
    assert (per_product.loc[table.loc[known_ids, "product_id_id"]] == 1).all().all()
    first = lines.groupby("product_id_id")[list(columns[1:])].first()
    pd.testing.assert_frame_equal(
        table[known_ids].set_index("product_id_id")[list(columns[1:])].sort_index(),
        first.loc[table.loc[known_ids, "product_id_id"]].sort_index(), check_dtype=False)

