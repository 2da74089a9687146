"""snakeflow's download step as a function call, for the scale test.

python our_download.py URL DST SCRIPTS_DIR
"""

import sys
import time
from pathlib import Path

from workclock import report


def main(url: str, dst: str, scripts: str) -> None:
    sys.path.insert(0, scripts)
    from download import download_csv

    started = time.perf_counter()
    download_csv(url, Path(dst))
    report(started)


if __name__ == "__main__":
    main(*sys.argv[1:4])
