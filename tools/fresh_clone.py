"""The README's two commands on a fresh clone, run literally as a new user runs them, with a local stand-in for the Hub.

    python tools/fresh_clone.py [--shared ../shared/data] [--skip-online | --skip-test-command | --offline-here] [--keep]

1. A clean copy of the repository (the files git tracks, as they are in the working tree: no data/, no build outputs)
   and a new virtual environment with the CPU build of torch (`pip install torch==2.13.0`, as `.ci/run` does).
2. Online: the course's local Hub (`tinystories.download.LocalHub`) serves the shared TinyStories heads as the Hub's
   TinyStories files and GPT-Neo's `vocab.json` + `merges.txt` under the Hub's URLs; `HF_ENDPOINT` points at it. Both Quick start commands
   of README.md run in the copy's root, literally; each must succeed, the test command reporting `N passed, 0 failed`.
3. Offline: another clean copy, `HF_ENDPOINT` at a port where nothing listens; each command must fail within seconds
   with a single line that names what is missing and the two ways out, and no traceback.

Prints each command with its exit status, wall time and last lines of output; exits 1 if a check fails.
Takes about as long as the main job plus the test suite (20 to 30 minutes on two busy cores).
"""
import argparse, os, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this repository's package, whichever environment runs the tool
from tinystories.data import HUB_FILES, HUB_REPO
from tinystories.download import LocalHub, repo_path
from tinystories.tokenizer import BASE


def readme_commands(readme):
    "The two shell commands of README.md's Quick start: install and run the main job, install and run the tests."
    quick = readme.split('## Quick start', 1)[1].split('\n## ', 1)[0]
    return re.findall(r'```sh\n(.+?)\n```', quick)


def hub_repos(shared):
    "The local Hub's repositories: the shared heads stand in for the Hub's full TinyStories files, the shared GPT-Neo files for its repository."
    t = Path(shared)/'tinystories'
    heads = {('train', 'v1'): 'train-v1-head.txt', ('valid', 'v1'): 'valid-v1-head.txt', ('train', 'v2'): 'train-v2-head.txt'}
    return {repo_path(HUB_REPO): {HUB_FILES[k]: t/name for k, name in heads.items()}, repo_path(BASE, 'model'): Path(shared)/'gpt-neo'}


def clean_copy(dest):
    "Copy the files git tracks (their working-tree content) to `dest`: what a fresh clone of this state holds."
    names = subprocess.run(['git', 'ls-files', '-z'], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split('\0')
    for name in filter(None, names):
        if (ROOT/name).is_file():
            (dest/name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT/name, dest/name)
    return dest


def run(cmd, cwd, env, timeout=3600):
    "Run the shell command `cmd` in `cwd`; return (exit status, seconds, stdout, stderr)."
    print(f'\n$ {cmd}    (in {cwd}, HF_ENDPOINT={env.get("HF_ENDPOINT")})', flush=True)
    t = time.perf_counter()
    r = subprocess.run(['bash', '-c', cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    s = time.perf_counter() - t
    def tail(text, n): return '\n'.join(l[-300:] for l in text.replace('\r', '\n').splitlines() if l.strip())[-3000:].splitlines()[-n:]
    print(f'exit {r.returncode} after {s:.0f} s; stdout ends:', *tail(r.stdout, 8), 'stderr ends:', *tail(r.stderr, 4), sep='\n  ', flush=True)
    return r.returncode, s, r.stdout, r.stderr


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--shared', type=Path, default=ROOT.parent/'shared'/'data', help='the shared test data (default: ../shared/data)')
    p.add_argument('--skip-online', action='store_true', help='only the offline check (seconds, after the venv is made)')
    p.add_argument('--offline-here', action='store_true', help='only the offline check, with the commands this environment has (what .ci/run does: seconds)')
    p.add_argument('--skip-test-command', action='store_true', help='online, run only the first command (the main job), not the test suite')
    p.add_argument('--keep', action='store_true', help='keep the temporary folder')
    args = p.parse_args()
    install_cmd, test_cmd = readme_commands((ROOT/'README.md').read_text())
    tmp = Path(tempfile.mkdtemp(prefix='fresh-clone-'))
    failures = []
    def check(ok, what):
        print(('ok    ' if ok else 'FAIL  ') + what, flush=True)
        if not ok: failures.append(what)
    try:
        env = {k: v for k, v in os.environ.items() if k != 'HF_ENDPOINT'}
        if not args.offline_here:
            venv = tmp/'venv'
            subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True)
            env = {k: v for k, v in env.items() if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
            env.update(PATH=f'{venv/"bin"}:{env["PATH"]}', VIRTUAL_ENV=str(venv), PIP_DISABLE_PIP_VERSION_CHECK='1')
            rc, *_ = run('pip install -q torch==2.13.0', tmp, env)
            check(rc == 0, 'torch installed in the new virtual environment')

        if not (args.skip_online or args.offline_here):
            clone = clean_copy(tmp/'clone')
            check(not any((clone/'data').glob('*/*')), 'the clean copy has nothing under data/ but its README')
            hub = LocalHub(hub_repos(args.shared))
            online = dict(env, HF_ENDPOINT=hub.url)
            rc, s, out, err = run(install_cmd, clone, online)
            check(rc == 0, f'`{install_cmd}` succeeds on the fresh clone ({s:.0f} s)')
            check('final validation loss' in out, 'the main job reports its final validation loss')
            asked = [path for _, path, _ in hub.requests]
            check(all(any(p.startswith(f'/{repo}/') for p in asked) for repo in hub.repos),
                  'the stories and the tokenizer came from the (local) Hub')
            if not args.skip_test_command:
                rc, s, out, err = run(test_cmd, clone, online)
                counts = re.search(r'(\d+) passed, (\d+) failed', out)
                check(rc == 0 and counts is not None and counts[2] == '0', f'`{test_cmd}` passes on the fresh clone ({s:.0f} s): {counts and counts[0]}')
            else: run("pip install -q -e '.[dev]'", clone, env)  # the offline check below runs the test command
        bare = clean_copy(tmp/'offline')
        if args.skip_online and not args.offline_here: run("pip install -q -e '.[dev]'", bare, env)  # the commands below need the package and nbdev installed
        offline = dict(env, HF_ENDPOINT='http://127.0.0.1:9')  # nothing listens on port 9: as unreachable as a machine without internet
        for cmd in [install_cmd.split(' && ')[-1], test_cmd.split(' && ')[-1]]:
            rc, s, out, err = run(cmd, bare, offline)
            lines = [l for l in err.splitlines() if l.strip()]
            check(rc != 0 and s < 30, f'offline, no data: `{cmd}` fails within seconds ({s:.1f} s)')
            check(len(lines) == 1 and 'Traceback' not in err, f'offline, no data: `{cmd}` says it in one line, no traceback')
            check(bool(lines) and 'missing' in lines[-1] and 'connect to the internet' in lines[-1] and 'data/' in lines[-1],
                  f'offline, no data: `{cmd}` names what is missing and both ways out')
    finally:
        if args.keep: print(f'kept {tmp}')
        else: shutil.rmtree(tmp, ignore_errors=True)
    print(f'\n{len(failures)} checks failed' if failures else '\nall checks passed')
    sys.exit(1 if failures else 0)


if __name__ == '__main__': main()
