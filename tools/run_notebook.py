#!/usr/bin/env python
"""Run notebooks top to bottom and save their outputs in place, so a reader on GitHub sees what the code does.

Cells are skipped exactly as `nbdev_test` skips them: those flagged with a test flag from `settings.ini` (`#| slow`,
`#| hub`) unless `--flags` names it, `#| eval: false` cells and `nbdev_export()` calls. A skipped cell keeps the
output it had, so a slow cell's saved story survives a quick rerun. The notebook is then cleaned (`nbdev_clean`).

    python tools/run_notebook.py nbs/04_attention.ipynb            # quick cells only
    python tools/run_notebook.py --flags slow nbs/09_train.ipynb   # slow cells too
"""
import argparse, os, sys, subprocess
from pathlib import Path

from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.basics import AttrDict
from fastcore.xtras import working_directory
from nbdev.config import get_config
from nbdev.process import extract_directives


def skipped(cell, flags):
    "Whether `nbdev_test` would skip `cell` when `flags` are the flags it skips."
    if cell.cell_type != 'code' or 'nbdev_export' + '(' in cell.source: return True
    d = extract_directives(AttrDict(source=cell.source), remove=False)
    if d.get('eval:', [''])[0].lower() == 'false': return True
    return bool(flags & d.keys())


def run_notebook(path, force_flags=()):
    "Execute `path` in its own folder, keep outputs of the cells that ran, write it back, stop at the first error."
    path = Path(path).resolve()
    flags = set(get_config().tst_flags.split()) - set(force_flags)
    nb = read_nb(path)
    shell = CaptureShell(path)
    with working_directory(path.parent):
        # outputs are cleared first so a cell that now prints nothing doesn't keep a stale output
        for c in nb.cells:
            if not skipped(c, flags) and c.cell_type == 'code': c.outputs = []
        shell.run_all(nb, exc_stop=True, preproc=lambda c: skipped(c, flags))
    write_nb(nb, path)
    subprocess.run(['nbdev_clean', '--fname', str(path)], check=True)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('notebooks', nargs='+', type=Path)
    ap.add_argument('--flags', default='', help='test flags to run that are normally skipped (e.g. "slow")')
    a = ap.parse_args()
    for nb in a.notebooks:
        print(f'running {nb}', flush=True)
        try: run_notebook(nb, a.flags.split())
        except Exception as e: sys.exit(f'{nb}: a cell failed ({type(e).__name__}: {e}); outputs not saved')
