"""snakemake exits once its work is done: the Snakefile's hooks end Snakemake's job-rate
timer, which would hold the process up to 1 s after its last job (timed in make bench)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from snakemake.scheduling.job_scheduler import JobScheduler

from snakeflow.workflow import end_rate_timers


def test_the_scheduler_timer_is_ended_and_no_other():
    scheduler = SimpleNamespace(_open_jobs=threading.Semaphore(0))
    before = set(threading.enumerate())
    JobScheduler._schedule_reevalutation(scheduler, 60)  # Snakemake's own timer, as it starts it
    (timer,) = set(threading.enumerate()) - before
    ours = threading.Timer(60, lambda: None)
    ours.start()
    try:
        end_rate_timers()
        timer.join(5)
        assert not timer.is_alive()
        assert not scheduler._open_jobs.acquire(blocking=False)  # cancelled, not fired
        assert ours.is_alive()
    finally:
        ours.cancel()
        timer.cancel()
