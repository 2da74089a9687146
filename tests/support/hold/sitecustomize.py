"""Test-only fault injection, loaded into the job processes of a test through PYTHONPATH.

With ``SNAKEFLOW_TEST_HOLD=<rule>:<dir>``, a job of ``<rule>`` stops inside its write: its
output is written to the temporary file but not yet renamed into place. It writes
``<dir>/<rule>.<pid>`` (the temporary and the final path) and sleeps until it is killed.
Nothing of this is in the workflow: a test puts this directory on the jobs' PYTHONPATH.
"""

import os
import sys

_rule, _, _where = os.environ.get("SNAKEFLOW_TEST_HOLD", "").partition(":")

if _rule and sys.argv and sys.argv[0].endswith(f".{_rule}.py"):
    _replace = os.replace

    def _held_replace(src, dst, *args, **kwargs):
        import time

        marker = os.path.join(_where, f"{_rule}.{os.getpid()}")
        with open(marker + ".tmp", "w") as fh:
            fh.write(f"{src}\n{dst}\n")
        _replace(marker + ".tmp", marker)
        time.sleep(600)
        return _replace(src, dst, *args, **kwargs)

    os.replace = _held_replace
