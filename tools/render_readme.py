"""Render `nbs/index.ipynb` to `README.md`.

nbdev's own `nbdev_readme` needs Quarto; this does the same job for our index notebook
with the standard library alone: markdown cells as they are, code cells as Python blocks
followed by their text outputs, and links rewritten from `nbs/` to the repository root.
`--check` exits non-zero when README.md is out of date (CI uses it).
"""
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent

def render(nb_path=root/'nbs'/'index.ipynb'):
    cells = json.loads(nb_path.read_text(encoding='utf-8'))['cells']
    parts = []
    for c in cells:
        src = ''.join(c['source'])
        if c['cell_type'] == 'markdown': parts.append(src)
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
            sys.exit('README.md is out of date with nbs/index.ipynb: run `python tools/render_readme.py`')
    else: readme.write_text(text, encoding='utf-8')
