"""snakeflow's clean step as a function call, for the scale test.

python our_clean.py SRC DST SCRIPTS_DIR
"""

import sys
import time
from pathlib import Path

from workclock import report


def main(src: str, dst: str, scripts: str) -> None:
    sys.path.insert(0, scripts)
    from step_imports import import_step

    from clean import clean_csv

    import_step("clean", scripts)  # what clean imports, on first use too: time the work alone

    started = time.perf_counter()
    clean_csv(Path(src), Path(dst), target="Survived")
    report(started)


if __name__ == "__main__":
    main(*sys.argv[1:4])
