"""Regenerate and execute the tutorial notebooks: NAME.py (jupytext percent) -> NAME.ipynb.

    python notebooks/build.py                  # every notebook listed in NOTEBOOKS
    python notebooks/build.py bn_tutorial      # one of them

Each notebook runs top to bottom in a fresh kernel, in this directory, and is written with
its outputs and figures. Any cell error stops the build with a non-zero exit, naming the
notebook and the cell (nbclient's CellExecutionError).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
NOTEBOOKS = ("bn_tutorial", "bn_solutions")
CELL_TIMEOUT = 600  # seconds per cell: a hung cell fails instead of blocking CI


def build(name: str, out_dir: Path = HERE) -> float:
    """Execute notebooks/NAME.py and write out_dir/NAME.ipynb; returns seconds taken."""
    source = HERE / f"{name}.py"
    if not source.exists():
        raise FileNotFoundError(f"notebook: no {source}; expected one of {', '.join(NOTEBOOKS)}")
    nb = jupytext.read(source)
    nb.metadata.pop("jupytext", None)  # the .py is the source; keep the .ipynb self-contained
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
    )
    start = time.perf_counter()
    try:
        client.execute()
    finally:  # on a cell error too: the written notebook shows the error in place
        nbformat.write(nb, Path(out_dir) / f"{name}.ipynb")
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    for name in argv or NOTEBOOKS:
        seconds = build(name)
        print(f"{name}.ipynb: executed in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
