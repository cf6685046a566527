"""Beam runner and pipeline options of the Transform: checked before launch, then built.

``check_pipeline_options(runner, options)`` is the preflight: it raises ``ConfigError`` (one
line, naming the key) for an unknown runner, a flag Beam's ``PipelineOptions`` cannot parse
or does not know, and a ``DataflowRunner`` launch without what Dataflow needs. It writes
nothing; Beam is imported only when there are flags to parse, so a config without
``run.beam.options`` stays cheap to check.

``pipeline_options(runner, options)`` builds the ``PipelineOptions`` the Transform runs with:
the flags pass straight to Beam (``PipelineOptions(flags)``); recforge's defaults for the
DirectRunner (``in_memory``, one worker, see ``compiler.runner.transform``) apply only to
options the flags leave unset, because Beam's keyword overrides would otherwise win over the
user's flags.

Sources: Apache Beam's ``apache_beam.options.pipeline_options`` (``PipelineOptions``,
``DirectOptions``, ``GoogleCloudOptions``, ``SetupOptions``) and the Dataflow documentation
"Set Dataflow pipeline options" / "Managing Python pipeline dependencies".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from compiler.errors import ConfigError, did_you_mean

DIRECT_RUNNER = "DirectRunner"
DATAFLOW_RUNNER = "DataflowRunner"
#: The runners recforge's Transform runs on. DirectRunner runs on this machine (in memory by
#: default, or ``--direct_running_mode=multi_processing``); DataflowRunner on Google Cloud.
RUNNERS = (DIRECT_RUNNER, DATAFLOW_RUNNER)

#: Options a Dataflow launch cannot do without: the project and region to run in, and gs://
#: locations for temporary and staged files (workers cannot read this machine's disk).
DATAFLOW_REQUIRED = ("project", "region", "temp_location", "staging_location")
#: One of these tells Dataflow how to install the workers' Python packages. The workers run
#: recforge's own functions (``compiler.runner.product_table``), tf.Transform and tfx-bsl, so
#: they must be able to import them: a setup file or requirements file that installs them, or
#: a container image that has them.
DATAFLOW_DEPENDENCIES = ("requirements_file", "setup_file", "sdk_container_image")

#: recforge's defaults for an unset DirectRunner option: in memory, one worker. For the data
#: sizes of a local run, the multi-process and multi-thread modes only add start-up and
#: serialisation cost on a small machine.
_DIRECT_DEFAULTS = {"direct_running_mode": "in_memory", "direct_num_workers": 1}


def _beam_parser() -> Any:
    """A parser that knows every option of every ``PipelineOptions`` class, as Beam builds it
    in ``PipelineOptions.get_all_options``."""
    # lazy: Beam: the Transform runner only (and a preflight that has flags to parse)
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    class RaisingParser(_BeamArgumentParser):
        """Beam's option parser (it adds ``add_value_provider_argument``), raising instead
        of exiting on a bad value."""

        def error(self, message: str) -> Any:  # argparse's hook: never returns
            raise ValueError(message)

    parser = RaisingParser(allow_abbrev=False, add_help=False)
    classes = {str(cls): cls for cls in PipelineOptions.__subclasses__()}
    for cls in classes.values():
        cls._add_argparse_args(parser)  # noqa: SLF001 - how Beam itself collects its options
    return parser


def _flag_name(flag: str) -> str:
    return flag.split("=", 1)[0].removeprefix("--")


def _explicit_values(flags: Sequence[str]) -> dict[str, str]:
    """``--name=value`` / ``--name value`` pairs as written (no Beam needed)."""
    values: dict[str, str] = {}
    for position, flag in enumerate(flags):
        if not flag.startswith("--"):
            continue
        if "=" in flag:
            values[_flag_name(flag)] = flag.split("=", 1)[1]
        elif position + 1 < len(flags) and not flags[position + 1].startswith("--"):
            values[_flag_name(flag)] = flags[position + 1]
        else:
            values[_flag_name(flag)] = ""
    return values


def check_pipeline_options(runner: str, options: Sequence[str], *,
                           key: str = "run.beam") -> list[str]:
    """Check ``runner`` and the Beam flags ``options`` before anything runs; return the flags.

    Args:
        runner: a name in :data:`RUNNERS`.
        options: Beam flags, ``--name=value`` (or ``--name value``, or ``--flag``).
        key: the config prefix errors name (``<key>.runner``, ``<key>.options``).

    Raises:
        ConfigError: an unknown runner (with a did-you-mean); a flag that is not a ``--``
            flag, that sets ``--runner`` (the runner has its own key), that no Beam
            ``PipelineOptions`` class defines, or whose value Beam cannot parse; and, for
            ``DataflowRunner``, a missing :data:`DATAFLOW_REQUIRED` option, a temp or staging
            location that is not ``gs://``, or none of :data:`DATAFLOW_DEPENDENCIES`.
    """
    if runner not in RUNNERS:
        raise ConfigError(f"{key}.runner", f"expected one of {', '.join(RUNNERS)}, got "
                          f"{runner!r}", suggestion=did_you_mean(runner, RUNNERS))
    flags = [str(flag) for flag in options]
    for flag in flags:
        if not flag.startswith("--") and not _follows_value_flag(flag, flags):
            raise ConfigError(f"{key}.options", f"expected Beam flags like '--name=value', "
                              f"got {flag!r}")
        if _flag_name(flag) == "runner":
            raise ConfigError(f"{key}.options", f"expected no --runner flag (set {key}.runner "
                              f"instead), got {flag!r}")
    if runner == DATAFLOW_RUNNER:
        _check_dataflow(_explicit_values(flags), key)
    if flags:
        _check_with_beam(flags, key)
    return flags


def _follows_value_flag(value: str, flags: list[str]) -> bool:
    """``value`` is the value of a preceding ``--name`` flag written without ``=``."""
    position = flags.index(value)
    return position > 0 and flags[position - 1].startswith("--") and "=" not in flags[
        position - 1]


def _check_dataflow(values: dict[str, str], key: str) -> None:
    missing = [name for name in DATAFLOW_REQUIRED if not values.get(name)]
    if missing:
        raise ConfigError(f"{key}.options", f"expected --{missing[0]}=... for DataflowRunner "
                          f"(it needs {', '.join('--' + n for n in DATAFLOW_REQUIRED)}), got "
                          "none")
    for name in ("temp_location", "staging_location"):
        if not values[name].startswith("gs://"):
            raise ConfigError(f"{key}.options", f"expected --{name}=gs://... for "
                              f"DataflowRunner (its workers cannot read this machine's "
                              f"disk), got {values[name]!r}")
    if not any(values.get(name) for name in DATAFLOW_DEPENDENCIES):
        raise ConfigError(f"{key}.options", "expected one of "
                          f"{', '.join('--' + n for n in DATAFLOW_DEPENDENCIES)} for "
                          "DataflowRunner (its workers must install recforge, tf.Transform "
                          "and tfx-bsl), got none")


def _check_with_beam(flags: list[str], key: str) -> None:
    parser = _beam_parser()
    try:
        _known, unknown = parser.parse_known_args(flags)
    except ValueError as error:
        # argparse names the option first: "argument --name: invalid int value: 'x'".
        message = str(error)
        named = message.split(":", 1)[0].removeprefix("argument ").strip()
        culprit = next((flag for flag in flags if flag.split("=", 1)[0] == named),
                       " ".join(flags))
        problem = message.split(":", 1)[1].strip() if ":" in message else message
        raise ConfigError(f"{key}.options", f"expected a value Beam can parse, got "
                          f"{culprit!r} ({problem})") from None
    unknown_flags = [flag for flag in unknown if flag.startswith("--")]
    if unknown_flags:
        name = _flag_name(unknown_flags[0])
        known = [option.removeprefix("--") for action in parser._actions  # noqa: SLF001
                 for option in action.option_strings]
        raise ConfigError(f"{key}.options", f"expected a Beam pipeline option, got "
                          f"{unknown_flags[0]!r}, which no PipelineOptions class defines",
                          suggestion=did_you_mean(name, known))
    if unknown:
        raise ConfigError(f"{key}.options", f"expected Beam flags like '--name=value', got "
                          f"{unknown[0]!r}")


def pipeline_options(runner: str, options: Sequence[str]) -> Any:
    """The ``PipelineOptions`` of a Transform: ``options`` as given, ``runner``, and
    recforge's DirectRunner defaults for what the flags leave unset."""
    # lazy: Beam: the Transform runner only
    from apache_beam.options.pipeline_options import PipelineOptions

    flags = check_pipeline_options(runner, options)
    set_by_flags = PipelineOptions(flags).get_all_options(drop_default=True)
    defaults = {name: value for name, value in _DIRECT_DEFAULTS.items()
                if name not in set_by_flags}
    # flags=list: without it Beam parses the process's sys.argv (Hydra overrides such as
    # model=hybrid_v1) and warns "Unparseable argument" for each.
    return PipelineOptions(flags=flags, runner=runner, **defaults)


def runs_in_this_process(options: Any) -> bool:
    """True for the DirectRunner in memory: the only mode whose workers share this process's
    memory and files (multi_processing workers are other processes; Dataflow other
    machines)."""
    # lazy: Beam: the Transform runner only
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    runner = options.view_as(StandardOptions).runner
    return runner == DIRECT_RUNNER and \
        options.view_as(DirectOptions).direct_running_mode == "in_memory"


def temp_location(options: Any) -> str | None:
    """The pipeline's ``--temp_location`` (a ``gs://`` path for Dataflow), or None."""
    # lazy: Beam: the Transform runner only
    from apache_beam.options.pipeline_options import GoogleCloudOptions

    return options.view_as(GoogleCloudOptions).temp_location


__all__ = [
    "DATAFLOW_DEPENDENCIES",
    "DATAFLOW_REQUIRED",
    "DATAFLOW_RUNNER",
    "DIRECT_RUNNER",
    "RUNNERS",
    "check_pipeline_options",
    "pipeline_options",
    "runs_in_this_process",
    "temp_location",
]
