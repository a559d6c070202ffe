#!/usr/bin/env python
"""Run notebooks top to bottom and save their outputs in place, so a reader on GitHub sees what the code does.

Cells are skipped exactly as `nbdev_test` skips them: those flagged with a test flag from `settings.ini` (`#| slow`,
`#| hub`) unless `--flags` names it, `#| eval: false` cells and `nbdev_export()` calls. A skipped cell keeps the
output it had, so a slow cell's saved story survives a quick rerun. The notebook is then cleaned (`nbdev_clean`).
The temporary files the cells make live in a folder of the run's own, removed when it ends.

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
from tinystories.cli import scratch_tmpdir


def skipped(cell, flags):
    "Whether `nbdev_test` would skip `cell` when `flags` are the flags it skips."
    if cell.cell_type != 'code' or 'nbdev_export' + '(' in cell.source: return True
    d = extract_directives(AttrDict(source=cell.source), remove=False)
    if d.get('eval:', [''])[0].lower() == 'false': return True
    return bool(flags & d.keys())


def squash_progress(text):
    "`text` with each progress bar's redrawn states (separated by carriage returns) reduced to the last one, and nested bars' redraws left out: a saved output shows where each bar ended, not every step."
    lines = []
    for line in text.split('\n'):
        if '\x1b[A' in line: continue  # a nested bar redrawn in place (cursor up): transient, gone when it ends
        states = [s for s in line.split('\r') if s.strip()]
        if states or '\r' not in line: lines.append(states[-1] if states else line)
    return '\n'.join(lines)


def squash_outputs(nb):
    "Apply `squash_progress` to every stream output of `nb` that redraws a progress bar."
    for c in nb.cells:
        for o in c.get('outputs', []):
            if o.get('output_type') == 'stream':
                text = ''.join(o['text']) if isinstance(o['text'], list) else o['text']
                if '\r' in text or '\x1b[A' in text: o['text'] = squash_progress(text)
        if 'outputs' in c: c.outputs = [o for o in c.outputs if o.get('output_type') != 'stream' or str(o.get('text', '')).strip()]  # a bar that ended cleared


def run_notebook(path, force_flags=()):
    "Execute `path` in its own folder, keep outputs of the cells that ran, write it back, stop at the first error."
    path = Path(path).resolve()
    flags = set(get_config().tst_flags.split()) - set(force_flags)
    nb = read_nb(path)
    shell = CaptureShell(path)
    # the temporary files the cells make (checkpoints, token files, exported models) go with the run, as under tinystories-test
    with working_directory(path.parent), scratch_tmpdir('tinystories-run-'):
        # outputs are cleared first so a cell that now prints nothing doesn't keep a stale output
        for c in nb.cells:
            if not skipped(c, flags) and c.cell_type == 'code': c.outputs = []
        shell.run_all(nb, exc_stop=True, preproc=lambda c: skipped(c, flags))
    squash_outputs(nb)
    write_nb(nb, path)
    subprocess.run(['nbdev_clean', '--fname', str(path)], check=True)


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('notebooks', nargs='+', type=Path)
    ap.add_argument('--flags', default='', help='test flags to run that are normally skipped (e.g. "slow")')
    ap.add_argument('--squash-only', action='store_true', help="run nothing: only reduce the saved progress bars to their last state")
    a = ap.parse_args()
    if a.squash_only:
        for nb in a.notebooks:
            book = read_nb(nb); squash_outputs(book); write_nb(book, nb)
            subprocess.run(['nbdev_clean', '--fname', str(nb)], check=True)
        sys.exit()
    for nb in a.notebooks:
        print(f'running {nb}', flush=True)
        try: run_notebook(nb, a.flags.split())
        except Exception as e: sys.exit(f'{nb}: a cell failed ({type(e).__name__}: {e}); outputs not saved')
