"""Render `nbs/index.ipynb` to `README.md`.

nbdev's own `nbdev_readme` needs Quarto; this does the same job for our index notebook
with the standard library alone: markdown cells as they are, code cells as Python blocks
followed by their text outputs, and links rewritten from `nbs/` to the repository root.
A markdown line `<!-- include: PATH -->` (PATH relative to `nbs/`, invisible in Jupyter) is replaced by the
file's text, so a table a notebook writes (the study's `images/study_results.md`) appears in the README as written.
`--check` exits non-zero when README.md is out of date (CI uses it).
"""
import json, re, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

INCLUDE = re.compile(r'^<!-- include: (\S+) -->$', re.M)

def include_files(markdown, base):
    "`markdown` with each `<!-- include: PATH -->` line replaced by the text of `base/PATH`."
    def text(m):
        path = base/m.group(1)
        if not path.is_file(): sys.exit(f'{path}: no such file, included by {m.group(0)} in nbs/index.ipynb')
        return path.read_text(encoding='utf-8').rstrip('\n')
    return INCLUDE.sub(text, markdown)

def render(nb_path=root/'nbs'/'index.ipynb'):
    cells = json.loads(nb_path.read_text(encoding='utf-8'))['cells']
    parts = []
    for c in cells:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown': parts.append(include_files(src, nb_path.parent))
        elif c['cell_type'] == 'code' and not src.lstrip().startswith('#| hide'):
            parts.append(f'```python\n{src}\n```')
            for o in c.get('outputs', []):
                text = ''.join(o.get('text', '') or o.get('data', {}).get('text/plain', ''))
                if text: parts.append(f'```\n{text.rstrip()}\n```')
    # index.ipynb lives in nbs/, README.md at the root: images are `../images/` in one, `images/` in the other
    return '\n\n'.join(parts).replace('](../images/', '](images/').replace('src="../images/', 'src="images/') + '\n'

if __name__ == '__main__':
    readme, text = root/'README.md', render()
    if '--check' in sys.argv:
        if readme.read_text(encoding='utf-8') != text:
            sys.exit('README.md is out of date with nbs/index.ipynb or a file it includes: run `python tools/render_readme.py`')
    else: readme.write_text(text, encoding='utf-8')
