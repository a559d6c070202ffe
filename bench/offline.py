"""How fast the README's test command fails when the course's data is missing and the Hub cannot be reached.

    python bench/offline.py [--repeats 3]

`tinystories-test` (`tinystories.cli.nbdev_test`) first fetches the course's data; with an empty `data/` and the Hub out of
reach (`HF_ENDPOINT` at a port where nothing listens), it must stop with one line that names what is missing, within
seconds rather than after the Hub client's retries. This runs it on a small nbdev project of its own (a copy of
settings.ini and one notebook) and prints the seconds it took, each run, with the machine and load; nothing is asserted
(`12_cli` tests the line itself). Goal: under 30 s.
"""
import argparse, json, os, platform, subprocess, sys, tempfile, time
from pathlib import Path


def main():
    root = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--repeats', type=int, default=3)
    args = p.parse_args()
    env = {k: v for k, v in os.environ.items() if k != 'HF_ENDPOINT'} | {'HF_ENDPOINT': 'http://127.0.0.1:9', 'PYTHONPATH': str(root)}
    print(f'{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, {time.strftime("%Y-%m-%d")}')
    for i in range(args.repeats):
        with tempfile.TemporaryDirectory() as d:
            project = Path(d) / 'bare'
            (project / 'nbs').mkdir(parents=True)
            (project / 'settings.ini').write_text((root / 'settings.ini').read_text())
            cell = dict(cell_type='code', id='0', metadata={}, execution_count=None, outputs=[], source='assert True')
            (project / 'nbs' / 'a.ipynb').write_text(json.dumps(dict(cells=[cell], metadata={}, nbformat=4, nbformat_minor=5)))
            t = time.perf_counter()
            r = subprocess.run([sys.executable, '-c', 'from tinystories.cli import nbdev_test; nbdev_test()', '--n_workers', '0'],
                               cwd=project, env=env, capture_output=True, text=True)
            s = time.perf_counter() - t
        print(f'run {i + 1}: exit {r.returncode} after {s:.1f} s: {r.stderr.strip()[:160]}')


if __name__ == '__main__':
    main()
