"""Author a notebook from a jupytext percent file and execute it in place (a dev convenience).

    python tools/nbsync.py SRC.py nbs/NN_name.ipynb [--no-exec]

The notebook in nbs/ is the source of truth once written; this only saves typing JSON by hand.
"""
import subprocess, sys
from pathlib import Path
import jupytext, nbformat

src, dst = Path(sys.argv[1]), Path(sys.argv[2])
nb = jupytext.read(src, fmt="py:percent")
nb.metadata = {"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}}
for c in nb.cells:
    c.metadata = {k: v for k, v in c.metadata.items() if k == "tags"}
nbformat.write(nb, dst)
if "--no-exec" not in sys.argv:
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                    "--ExecutePreprocessor.timeout=1800", str(dst.resolve())], check=True, cwd=dst.parent)
