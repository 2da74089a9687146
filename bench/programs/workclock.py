"""What the scale programs print: the seconds of their work and the process's peak RSS.

VmHWM is per address space, so it starts afresh at exec (ru_maxrss would carry over the
forking benchmark process's own peak).
"""

import time


def report(started: float) -> None:
    """Print ``WORK <seconds since started> <peak RSS in MB>`` for the benchmark to read."""
    seconds = time.perf_counter() - started
    with open("/proc/self/status") as fh:
        hwm = next(line for line in fh if line.startswith("VmHWM")).split()[1]
    print("WORK", seconds, int(hwm) // 1024)
