"""The plugin against snakemake-interface-logger-plugins' own test base class."""

from __future__ import annotations

import logging

from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.tests import TestLogHandlerBase
from snakemake_logger_plugin_mlflow import LogHandler, LogHandlerSettings


class TestMlflowLogHandler(TestLogHandlerBase):
    __test__ = True

    def get_log_handler_cls(self):
        return LogHandler

    def get_log_handler_settings(self):
        return LogHandlerSettings(tracking_uri="sqlite:///unused.db", experiment="x")

    def test_events_before_a_run_need_no_store(self, tmp_path, monkeypatch):
        """workflow_started and progress alone (a no-op) import nothing and make no store."""
        monkeypatch.chdir(tmp_path)
        handler = self._create_handler()
        for event, extra in [
            (LogEvent.WORKFLOW_STARTED, {"snakefile_main": "Snakefile", "cmd": "snakemake"}),
            (LogEvent.PROGRESS, {"done": 1, "total": 1}),
        ]:
            record = logging.LogRecord("snakemake", logging.INFO, "x", 1, "", (), None)
            record.event = event
            for key, value in extra.items():
                setattr(record, key, value)
            handler._filter.filter(record)
        handler.close()
        handler.close()  # Snakemake calls close twice
        assert not (tmp_path / "unused.db").exists()
