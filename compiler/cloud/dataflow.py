"""``submit=dataflow_transform``: the Transform alone, on Google Cloud Dataflow.

The compiled Transform module runs through :func:`compiler.runner.transform.run_transform` with
Beam's ``DataflowRunner`` and the pipeline options built here; its output (TFX layout:
``transform_graph/``, ``transformed_examples/Split-*``, ``product_table/``) goes to
``<staging_location>/recforge/<experiment>/<config hash>/transform/<submission id>`` unless
``submit.output_dir`` names another ``gs://`` folder. That URI is printed and recorded in the
ledger (artifact ``transform_output``), so that ``submit=vertex submit.source_exp=<URI>`` trains
on it.

Every option is checked before anything is written, recorded or sent: the project and region
(they become part of the Dataflow API's URL), the ``gs://`` locations, the job name and labels,
how the workers get recforge's dependencies (``requirements_file``, ``setup_file`` or
``sdk_container_image``), and the extra Beam flags. ``submit.dry_run=true`` prints the pipeline
options as one JSON document on stdout and does nothing else (no file, no ledger row, no
network). Option names are Beam's own (``apache_beam.options.pipeline_options``:
``GoogleCloudOptions``, ``WorkerOptions``, ``SetupOptions``).
"""

# ruff: noqa: UP045 - OmegaConf reads these annotations at runtime and only understands
# typing.Optional, not "X | None" (types.UnionType).
from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from compiler import __version__
from compiler.cloud import gcs
from compiler.cloud.errors import SubmitConfigError
from compiler.cloud.formats import (
    LABEL_COMPILER_VERSION,
    LABEL_CONFIG_HASH,
    LABEL_EXPERIMENT,
    LABEL_SUBMISSION,
    MACHINE_TYPE,
    PROJECT,
    REGION,
    SERVICE_ACCOUNT,
    check_api_endpoint,
    check_bucket_uri,
    check_labels,
    label_safe,
    new_submission_id,
    structured_from_node,
)
from compiler.cloud.package import build_recforge_sdist, sdist_name, source_root
from compiler.data import DataError, as_data_config
from compiler.data.config import check_data_config
from compiler.errors import RecforgeError
from compiler.runner.beam_options import DATAFLOW_RUNNER, check_pipeline_options
from compiler.runner.product_table import product_columns
from compiler.runner.transform import run_transform
from compiler.runner.transform_digest import record_text

#: ``target`` of conf/submit/dataflow_transform.yaml: tells this group from ``submit=vertex``.
TARGET = "dataflow_transform"
RUNNER = DATAFLOW_RUNNER


@dataclass
class DataflowTransformConfig:
    """Schema of ``submit=dataflow_transform`` (``submit/dataflow_transform_schema``)."""

    target: str = TARGET
    # -- where ------------------------------------------------------------------------------
    #: Google Cloud project id the Dataflow job runs in (``--project``).
    project: Optional[str] = None
    #: Dataflow regional endpoint, e.g. ``europe-central2`` (``--region``).
    region: Optional[str] = None
    #: ``gs://`` folder for the job's temporary files (``--temp_location``).
    temp_location: Optional[str] = None
    #: ``gs://`` folder Beam stages the job's packages in (``--staging_location``); the
    #: Transform output goes under it unless ``output_dir`` is set.
    staging_location: Optional[str] = None
    #: ``gs://`` folder for the Transform output; ``null``: under ``staging_location``.
    output_dir: Optional[str] = None
    #: A path segment of the default output folder and a job label.
    experiment: str = "default"
    #: ``--job_name``; ``null``: ``recforge-transform-<config hash>-<submission id>``.
    job_name: Optional[str] = None
    # -- what the workers run ---------------------------------------------------------------
    #: pip requirements the workers install (``--requirements_file``), e.g. tensorflow-transform.
    requirements_file: Optional[str] = None
    #: A ``setup.py`` whose package the workers install (``--setup_file``).
    setup_file: Optional[str] = None
    #: A worker image with the dependencies installed (``--sdk_container_image``).
    sdk_container_image: Optional[str] = None
    #: Build this checkout's recforge sdist and stage it (``--extra_package``): the pipeline's
    #: functions live in recforge. ``false`` when the worker image has recforge already.
    stage_recforge: bool = True
    #: The workers' service account (``--service_account_email``); ``null``: Compute Engine's.
    service_account_email: Optional[str] = None
    #: Worker machine type (``--machine_type``); ``null``: Dataflow's default.
    machine_type: Optional[str] = None
    #: ``--num_workers`` / ``--max_num_workers``; ``null``: Dataflow's autoscaling defaults.
    num_workers: Optional[int] = None
    max_num_workers: Optional[int] = None
    #: Extra job labels (lowercase letters, digits, ``-`` and ``_``).
    labels: dict[str, str] = field(default_factory=dict)
    #: Further Beam flags, each ``--name=value`` or ``--flag`` (not one of the keys above).
    options: list[str] = field(default_factory=list)
    # -- behaviour --------------------------------------------------------------------------
    #: Print the pipeline options as JSON; write, record and send nothing.
    dry_run: bool = False


#: Keys with no usable default, in the order a user would fix them.
REQUIRED_KEYS = ("project", "region", "temp_location", "staging_location")
#: Beam flags this group sets from its own keys (or that would change what runs).
_MANAGED_FLAGS = {
    "runner", "project", "region", "temp_location", "staging_location", "job_name",
    "requirements_file", "setup_file", "sdk_container_image", "service_account_email",
    "machine_type", "worker_machine_type", "num_workers", "max_num_workers", "labels", "label",
    "extra_package", "extra_packages",
}
#: Dataflow job names: lowercase letters, digits and hyphens, starting with a letter.
_JOB_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,1022}[a-z0-9])?$")
_FLAG = re.compile(r"^--([a-z][a-z0-9_]*)(?:=(.*))?$", re.DOTALL)


def is_dataflow_node(node: Any) -> bool:
    """Whether a composed ``submit`` node is this group (it carries ``target``)."""
    if isinstance(node, DataflowTransformConfig):
        return True
    try:
        return node is not None and node.get("target") == TARGET
    except AttributeError:
        return False


def check_dataflow_config(node: Any) -> DataflowTransformConfig:
    """Preflight of ``submit=dataflow_transform``: every value, before anything is written,
    recorded or sent. Pure: reads only the local files it names. Raises
    :class:`SubmitConfigError` (exit 2) naming ``submit.<key>``."""
    cfg = node if isinstance(node, DataflowTransformConfig) else \
        structured_from_node(DataflowTransformConfig, node)
    missing = [key for key in REQUIRED_KEYS if not getattr(cfg, key)]
    if missing:
        variables = ", ".join(f"RECFORGE_DATAFLOW_{key.upper()}" for key in missing)
        raise SubmitConfigError(f"submit.{missing[0]}", "expected a value (no default), got "
                                f"none; also unset: {', '.join(missing[1:]) or 'nothing else'}",
                                hint=f"set it on the command line or in {variables}")
    assert cfg.project and cfg.region and cfg.temp_location and cfg.staging_location
    if not PROJECT.match(cfg.project):
        raise SubmitConfigError("submit.project", "expected a project id of 6-30 lowercase "
                                f"letters, digits and hyphens, got {cfg.project!r}")
    if not REGION.match(cfg.region):
        raise SubmitConfigError("submit.region", f"expected a region such as 'europe-central2', "
                                f"got {cfg.region!r}")
    for key in ("temp_location", "staging_location", "output_dir"):
        if getattr(cfg, key) is not None:
            check_bucket_uri(f"submit.{key}", getattr(cfg, key))
    if cfg.job_name is not None and not _JOB_NAME.match(cfg.job_name):
        raise SubmitConfigError("submit.job_name", "expected lowercase letters, digits and "
                                f"hyphens, starting with a letter, got {cfg.job_name!r}")
    _check_worker_setup(cfg)
    if cfg.service_account_email and not SERVICE_ACCOUNT.match(cfg.service_account_email):
        raise SubmitConfigError("submit.service_account_email", "expected a service account "
                                f"e-mail address, got {cfg.service_account_email!r}")
    if cfg.machine_type is not None and not MACHINE_TYPE.match(cfg.machine_type):
        raise SubmitConfigError("submit.machine_type", "expected a machine type such as "
                                f"'n1-standard-4', got {cfg.machine_type!r}")
    for key in ("num_workers", "max_num_workers"):
        value = getattr(cfg, key)
        if value is not None and value < 1:
            raise SubmitConfigError(f"submit.{key}", f"expected a positive integer, got {value}")
    if cfg.num_workers and cfg.max_num_workers and cfg.num_workers > cfg.max_num_workers:
        raise SubmitConfigError("submit.max_num_workers", "expected at least submit.num_workers "
                                f"({cfg.num_workers}), got {cfg.max_num_workers}")
    check_labels(cfg.labels, "Dataflow")
    _check_options(cfg.options)
    return cfg


def _check_worker_setup(cfg: DataflowTransformConfig) -> None:
    """The workers must get tensorflow-transform (and recforge): a requirements file, a
    setup.py or a worker image. Local files must exist now: Beam reads them at launch."""
    if not (cfg.requirements_file or cfg.setup_file or cfg.sdk_container_image):
        raise SubmitConfigError(
            "submit.requirements_file", "expected how the workers get tensorflow-transform: "
            "submit.requirements_file, submit.setup_file or submit.sdk_container_image, got "
            "none of them")
    for key in ("requirements_file", "setup_file"):
        value = getattr(cfg, key)
        if value is not None and not Path(value).expanduser().is_file():
            raise SubmitConfigError(f"submit.{key}", f"expected an existing file, got {value!r}")
    if cfg.setup_file is not None and Path(cfg.setup_file).name != "setup.py":
        raise SubmitConfigError("submit.setup_file", "expected a file named setup.py (Beam "
                                f"builds its folder as a package), got {cfg.setup_file!r}")
    image = cfg.sdk_container_image
    if image is not None and (not image or any(c.isspace() for c in image)):
        raise SubmitConfigError("submit.sdk_container_image", f"expected a container image URI, "
                                f"got {image!r}")


def _check_options(options: list[str]) -> None:
    for index, option in enumerate(options):
        key = f"submit.options[{index}]"
        match = _FLAG.match(str(option))
        if not match:
            raise SubmitConfigError(key, f"expected a Beam flag '--name=value' or '--flag', got "
                                    f"{option!r}")
        name, value = match[1], match[2]
        if name in _MANAGED_FLAGS:
            raise SubmitConfigError(key, "expected a flag this group does not set itself (it "
                                    f"has a submit.* key or is fixed), got {option!r}")
        if value is not None and any(c in value for c in "\n\r\0"):
            raise SubmitConfigError(key, f"expected a one-line value, got {option!r}")
        if name == "dataflow_endpoint" and value is not None:
            # The job's credentials go to this host: only Google's.
            check_api_endpoint(value, key)


# ------------------------------------------------------------------------------ the launch


@dataclass(frozen=True)
class DataflowLaunch:
    """What ``submit=dataflow_transform`` would run: the options and the output location."""

    cfg: DataflowTransformConfig
    output_dir: str
    job_name: str
    #: Beam option name (its ``dest``) -> value, as ``PipelineOptions.get_all_options`` holds it.
    options: dict[str, Any]

    def flags(self, extra_packages: tuple[str, ...] = ()) -> list[str]:
        """The Beam flags (``--name=value``) ``run_transform`` gets beside ``runner=``, with
        ``extra_packages`` staged last."""
        flags: list[str] = []
        for name, value in self.options.items():
            if name == "labels":
                flags += [f"--labels={key}={label}" for key, label in value.items()]
            elif name != "runner":
                flags.append(f"--{name}={value}")
        flags += [f"--extra_package={path}" for path in extra_packages]
        return flags + list(self.cfg.options)

    def document(self, recforge_sdist: str | None) -> dict[str, Any]:
        """The dry run's JSON: the runner, the options, the output and what trains on it."""
        options = dict(self.options)
        if recforge_sdist:
            options["extra_packages"] = [recforge_sdist]
        return {
            "runner": RUNNER,
            "pipeline_options": options,
            "extra_flags": list(self.cfg.options),
            "output_dir": self.output_dir,
            "train_with": f"submit=vertex submit.source_exp={self.output_dir}",
        }


def plan_launch(cfg: DataflowTransformConfig, config_hash: str, compiler_version: str,
                submission_id: str | None = None) -> DataflowLaunch:
    """The pipeline options and output location of one launch (pure; checked config)."""
    assert cfg.staging_location
    submission_id = submission_id or new_submission_id()
    output_dir = cfg.output_dir.rstrip("/") if cfg.output_dir else gcs.join(
        cfg.staging_location, "recforge", label_safe(cfg.experiment) or "default", config_hash,
        "transform", submission_id)
    job_name = cfg.job_name or f"recforge-transform-{label_safe(config_hash[:12])}-" \
                               f"{label_safe(submission_id)}"
    labels = dict(cfg.labels)
    labels.update({
        LABEL_CONFIG_HASH: label_safe(config_hash),
        LABEL_COMPILER_VERSION: label_safe(compiler_version),
        LABEL_SUBMISSION: label_safe(submission_id),
        LABEL_EXPERIMENT: label_safe(cfg.experiment),
    })
    options: dict[str, Any] = {
        "runner": RUNNER, "project": cfg.project, "region": cfg.region,
        "temp_location": cfg.temp_location, "staging_location": cfg.staging_location,
        "job_name": job_name,
    }
    optional = {
        "requirements_file": _local_path(cfg.requirements_file),
        "setup_file": _local_path(cfg.setup_file),
        "sdk_container_image": cfg.sdk_container_image,
        "service_account_email": cfg.service_account_email,
        "machine_type": cfg.machine_type,
        "num_workers": cfg.num_workers,
        "max_num_workers": cfg.max_num_workers,
    }
    options.update({name: value for name, value in optional.items() if value is not None})
    options["labels"] = labels
    return DataflowLaunch(cfg, output_dir, job_name, options)


def _local_path(path: str | None) -> str | None:
    return str(Path(path).expanduser().resolve()) if path else None


class DataflowLaunchError(RecforgeError):
    """The launch or the Dataflow job failed after the compile was recorded (exit 1)."""

    exit_code = 1


def launch(launch_plan: DataflowLaunch, checked: Any, result: Any, overrides: list[str]) -> int:
    """Record the compile, load the data, run the Transform on Dataflow and record where its
    output is. ``checked`` is ``compiler.preflight.Checked``; ``result`` the written compile.

    Offline, tests/test_cloud_scale.py follows a launch as far as the Dataflow API's
    ``create_job`` call (staging on a GCS emulator); a job actually running on Dataflow is
    not tested.
    """
    # lazy: the ledger imports SQLAlchemy at module top
    from compiler.ledger import Ledger, LedgerError
    from compiler.ledger.provenance import record_fields

    config = result.config
    try:
        ledger = Ledger(checked.ledger_url)
    except LedgerError as error:
        raise RecforgeError(f"ledger: {error}") from None
    with ledger:
        number = ledger.record_compile(
            config.config_hash, config.model.name, config.features.name, list(overrides),
            artifacts={"emitted": str(result.emitted.output_dir)},
            **record_fields(checked.cfg, config.data))
        print(f"  experiment #{number} recorded in {ledger.display_url}")
        try:
            _run_on_dataflow(launch_plan, checked, result)
        except (RecforgeError, KeyboardInterrupt) as error:
            ledger.fail(number, "interrupted" if isinstance(error, KeyboardInterrupt)
                        else str(error))
            raise
        except Exception as error:  # Beam, the Dataflow API or the job itself
            text = str(error).strip()
            reason = f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"
            ledger.fail(number, reason)
            raise DataflowLaunchError(
                f"the Transform on Dataflow failed: {reason}",
                hint=f"job {launch_plan.job_name} in {launch_plan.cfg.project}/"
                     f"{launch_plan.cfg.region}; --debug shows the traceback") from error
        ledger.add_artifacts(number, {"transform_output": launch_plan.output_dir})
    print(f"  Transform output: {launch_plan.output_dir} (experiment #{number}, artifact "
          "transform_output)")
    print(f"  train on it: submit=vertex submit.source_exp={launch_plan.output_dir}")
    print(f"           or: run=local run.transform_from={launch_plan.output_dir}")
    return 0


def _run_on_dataflow(launch_plan: DataflowLaunch, checked: Any, result: Any) -> None:
    # lazy: the local runner (data loading, the runners' modules): run=local only
    from compiler.data.load import load_data
    from compiler.local.run import _transform_kinds, data_fingerprint, raw_schema

    features = result.config.features
    try:
        loaded = load_data(as_data_config(checked.cfg.data), raw_schema(result),
                           features.target.column if features.target else None)
    except DataError as error:
        raise RecforgeError(str(error)) from None
    print(f"  {loaded.summary()}")
    source = result.sources["transform_module.py"]
    record = record_text(features, data_hash=data_fingerprint(loaded.splits),
                         recforge_version=__version__,
                         transform_module_sha256=hashlib.sha256(source.encode()).hexdigest())
    cfg = launch_plan.cfg
    with tempfile.TemporaryDirectory(prefix="recforge-dataflow-") as scratch:
        # Beam copies the extra package to staging_location while it launches the job.
        extra = (str(build_recforge_sdist(Path(scratch), source_root())),) \
            if cfg.stage_recforge else ()
        print(f"  launching Dataflow job {launch_plan.job_name} in {cfg.project}/{cfg.region}; "
              "waiting for it to finish")
        run_transform(loaded.splits, _transform_kinds(raw_schema(result)),
                      result.emitted.output_dir / "transform_module.py", launch_plan.output_dir,
                      record=record, runner=RUNNER, pipeline_options=launch_plan.flags(extra),
                      product_columns=product_columns(result.plan, features.product_id))


def prepare(checked: Any, result: Any) -> DataflowLaunch:
    """Everything checkable before a side effect: the data config (nothing is loaded), the
    launch's options and output location, then every flag through Beam's own parser (a
    misspelt ``submit.options`` flag is one ``submit.options`` error line, with a
    did-you-mean)."""
    check_data_config(checked.cfg.get("data"), result.config.features)
    launch_plan = plan_launch(checked.submit, result.config.config_hash,
                              str(result.manifest.get("compiler_version") or __version__))
    check_pipeline_options(RUNNER, launch_plan.flags(), key="submit")
    return launch_plan


def dry_run_document(launch_plan: DataflowLaunch) -> dict[str, Any]:
    """The dry run's document: no file is built, so the recforge sdist appears by name."""
    sdist = f"<built at launch>/{sdist_name(__version__)}" if launch_plan.cfg.stage_recforge \
        else None
    return launch_plan.document(sdist)
