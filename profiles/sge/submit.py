#!/usr/bin/env python3
"""Submit one Snakemake job script to Grid Engine; print its job id (cluster-generic's
submit command). Standard library only: it runs with whatever python3 the login node has.

    submit.py --rule R --threads N --mem-mb M --runtime MIN --pe PE [--queue Q] JOBSCRIPT

Threads become ``-pe <PE> <N>`` when a parallel environment is named (and N > 1); memory
becomes ``-l h_vmem`` (Grid Engine counts h_vmem per slot, so it is divided by the slots);
runtime (minutes) becomes ``-l h_rt``.
"""

import argparse
import os
import subprocess
import sys


def qsub_args(args: argparse.Namespace) -> list[str]:
    """The qsub command line for one job."""
    slots = max(1, int(args.threads))
    cmd = ["qsub", "-terse", "-cwd", "-V", "-S", "/bin/bash", "-N", f"smk.{args.rule}"]
    cmd += ["-o", args.logdir, "-e", args.logdir]
    if args.pe and args.pe.lower() != "none" and slots > 1:
        cmd += ["-pe", args.pe, str(slots)]
    else:
        slots = 1
    limits = []
    if args.mem_mb:
        limits.append(f"h_vmem={max(1, int(args.mem_mb) // slots)}M")
    if args.runtime:
        limits.append(f"h_rt={int(float(args.runtime) * 60)}")
    if limits:
        cmd += ["-l", ",".join(limits)]
    if args.queue and args.queue.lower() != "none":
        cmd += ["-q", args.queue]
    return [*cmd, args.jobscript]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rule", default="job")
    parser.add_argument("--threads", default="1")
    parser.add_argument("--mem-mb", default="")
    parser.add_argument("--runtime", default="")
    parser.add_argument("--pe", default="")
    parser.add_argument("--queue", default="")
    parser.add_argument("--logdir", default=".snakemake/sge_logs")
    parser.add_argument("jobscript")
    args = parser.parse_args()
    os.makedirs(args.logdir, exist_ok=True)
    done = subprocess.run(qsub_args(args), capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr.strip() or done.stdout.strip(), file=sys.stderr)
        return done.returncode
    print(done.stdout.strip().split(".")[0])  # an array job prints "<id>.1-N:1"
    return 0


if __name__ == "__main__":
    sys.exit(main())
