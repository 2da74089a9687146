#!/usr/bin/env python3
"""A Grid Engine job's state for Snakemake (cluster-generic's status command): prints
``running``, ``success`` or ``failed``. Standard library only.

The scheduler decides, not marker files: ``qstat -j`` knows pending and running jobs (a job
in error state, ``Eqw``, has failed); once a job has left qstat, ``qacct -j`` says how it
ended (``failed`` and ``exit_status`` both 0: success; killed by ``qdel`` or a limit: failed).
Until the accounting record is written, the job counts as running.
"""

import re
import subprocess
import sys


def state(job_id: str) -> str:
    listed = subprocess.run(["qstat", "-j", job_id], capture_output=True, text=True)
    if listed.returncode == 0:
        if re.search(r"^error reason", listed.stdout, re.MULTILINE):
            subprocess.run(["qdel", job_id], capture_output=True)
            return "failed"
        return "running"
    record = subprocess.run(["qacct", "-j", job_id], capture_output=True, text=True)
    if record.returncode != 0:
        return "running"  # finished, but not yet in the accounting file
    fields = dict(
        line.split(None, 1) for line in record.stdout.splitlines() if len(line.split(None, 1)) == 2
    )
    failed = fields.get("failed", "1").split()[0]
    exit_status = fields.get("exit_status", "1").split()[0]
    return "success" if failed == "0" and exit_status == "0" else "failed"


if __name__ == "__main__":
    print(state(sys.argv[1]))
