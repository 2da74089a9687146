"""``snakemake --logger mlflow``: track any Snakemake workflow in MLflow.

One parent run per invocation that runs jobs (none for a no-op or a dry run), one nested
run per job with its rule, wildcards, threads, resources, the sha256 of every output, its
log and benchmark files, and whatever the job recorded in its record file (see
:mod:`.channel`). Only the snakemake process talks to the tracking store: jobs need neither
MLflow nor a route to the server.

Settings (command line or profile): ``--logger-mlflow-tracking-uri`` (else
``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the working directory),
``--logger-mlflow-experiment`` (else ``MLFLOW_EXPERIMENT_NAME``, else ``snakemake``),
``--logger-mlflow-drain-timeout`` (seconds without progress after which the end of an
invocation stops waiting for a store that does not answer; what is left is logged by the
next invocation), ``--logger-mlflow-cluster-id-tag``. See the package's README.
"""

import logging
import sys
from dataclasses import dataclass, field
from typing import Optional

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

from .channel import MESSAGE_PREFIX
from .events import Events

__all__ = ["LogHandler", "LogHandlerSettings"]


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    tracking_uri: Optional[str] = field(  # noqa: UP045 (Snakemake's settings parser)
        default=None,
        metadata={"help": "MLflow tracking URI (default: MLFLOW_TRACKING_URI, else SQLite)"},
    )
    experiment: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata={"help": "MLflow experiment (default: MLFLOW_EXPERIMENT_NAME, else snakemake)"},
    )
    cluster_id_tag: Optional[str] = field(  # noqa: UP045
        default=None,
        metadata={"help": "tag for a cluster job id (cluster-generic executor; e.g. sge.job_id)"},
    )
    drain_timeout: int = field(
        default=120,
        metadata={"help": "seconds without progress after which the end stops waiting"},
    )


def quiet_progress(quiet) -> bool:
    """Whether Snakemake's ``--quiet`` setting (a set of Quietness values) hides progress."""
    names = {str(getattr(q, "name", q)).lower() for q in quiet or ()}
    return bool(names & {"all", "progress"})


def job_process(argv: list[str]) -> bool:
    """Whether this snakemake process runs jobs for another one (``--mode subprocess`` or
    ``remote``, as executors start it): it logs no run_info, so it makes no run."""
    for i, arg in enumerate(argv):
        mode = arg.split("=", 1)[1] if arg.startswith("--mode=") else None
        if arg == "--mode" and i + 1 < len(argv):
            mode = argv[i + 1]
        if mode in ("subprocess", "remote"):
            return True
    return False


class _Events(logging.Filter):
    """Hands every record to the event handlers, synchronously, in the thread that logs it.

    A logger plugin's ``emit`` runs on Snakemake's queue-listener thread, after the fact;
    the store check must stop the invocation before any job, and a finished job's entry must
    be on disk before the next event, so the plugin sees records as a filter of Snakemake's
    logger. It never drops a record.
    """

    def __init__(self, events: Events):
        super().__init__()
        self.events = events

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self.events.on_event(record)
        except SystemExit:
            raise
        except Exception as exc:  # tracking must never break the workflow
            print(f"{MESSAGE_PREFIX}: warning: {type(exc).__name__}: {exc}", file=sys.stderr)
        return True


class LogHandler(LogHandlerBase):
    def __post_init__(self) -> None:
        settings = self.settings or LogHandlerSettings()
        self.events = Events(
            tracking_uri=getattr(settings, "tracking_uri", None),
            experiment=getattr(settings, "experiment", None),
            drain_timeout=float(getattr(settings, "drain_timeout", 120)),
            cluster_id_tag=getattr(settings, "cluster_id_tag", None),
            dryrun=bool(getattr(self.common_settings, "dryrun", False)),
            quiet=quiet_progress(getattr(self.common_settings, "quiet", None)),
        )
        if not self.events.dryrun and not job_process(sys.argv):
            self.events.writer.spawn()  # its import of MLflow (if needed) overlaps start-up
        from snakemake.logging import logger

        self._logger = logger
        self._filter = _Events(self.events)
        logger.addFilter(self._filter)

    def emit(self, record: logging.LogRecord) -> None:
        """Nothing: records are handled by the filter, as they are logged."""

    def close(self) -> None:
        self._logger.removeFilter(self._filter)
        self.events.close()
        super().close()

    @property
    def writes_to_stream(self) -> bool:
        return False

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False
