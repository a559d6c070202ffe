"""Benchmark `tinystories.pretokenize.prepare`: speed against raw `Tokenizer.encode_batch`, and peak memory at 1x and 4x the corpus.

    python bench/pretokenize.py [CORPUS ...] [--tokenizer DIR] [--repeats 3]

Defaults to the shared sample under data/tinystories and a tokenizer trimmed from it into a temporary folder.
Every measurement runs in a fresh Python process, so no tokenizer cache or page of memory carries over between
them; the peak resident memory is reset after imports (Linux `clear_refs`), so it measures prepare itself. Prints the figures and their ratios; asserts nothing.
Goals: prepare/encode_batch >= 0.9; peak memory at 4x about the same as at 1x (memory bounded by the block size).
"""
import argparse, json, os, resource, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path


def status_mb(field):
    "A memory figure of this process from /proc/self/status (VmRSS: now, VmHWM: peak), in MB; None off Linux."
    try: line = next(l for l in Path('/proc/self/status').read_text().splitlines() if l.startswith(field + ':'))
    except (OSError, StopIteration): return None
    return int(line.split()[1]) / 1024


def reset_peak_rss():
    "Reset this process's peak RSS to its current RSS (Linux), so the peak measures only what runs next."
    try: Path('/proc/self/clear_refs').write_text('5')
    except OSError: pass


def child(mode, files, tokenizer, out):
    "Run one measurement in this (fresh) process and print it as JSON."
    from tinystories.tokenizer import load_tokenizer
    from tinystories.data import read_stories
    from tinystories.pretokenize import prepare, read_sidecar
    tok = load_tokenizer(tokenizer)
    reset_peak_rss()
    rss_before = status_mb('VmRSS') or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if mode == 'prepare':
        t0 = time.perf_counter()
        prepare(files, tok, out)
        secs = time.perf_counter() - t0
        meta = read_sidecar(out)
        n_tokens, n_stories = meta['n_tokens'] - meta['n_stories'], meta['n_stories']  # count text tokens, not separators
    else:
        from tinystories.pretokenize import story_batches
        stories = [s for f in files for s in read_stories(f)]
        encode = tok.encode_batch_fast if mode == 'encode_batch_fast' else tok.encode_batch
        # one call on every story, or the same batches prepare encodes (counting tokens as we go, so memory stays flat)
        batches = list(story_batches(stories)) if mode == 'encode_batch_batched' else [stories]
        t0 = time.perf_counter()
        n_tokens = sum(len(e) for b in batches for e in encode(b, add_special_tokens=False))
        secs = time.perf_counter() - t0
        n_stories = len(stories)
    print(json.dumps(dict(mode=mode, secs=secs, n_tokens=n_tokens, n_stories=n_stories, tokens_per_s=n_tokens / secs,
                          rss_before_mb=rss_before, peak_rss_mb=status_mb('VmHWM') or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))


def measure(mode, files, tokenizer, out):
    cmd = [sys.executable, __file__, '--child', mode, '--tokenizer', str(tokenizer), '--out', str(out), *map(str, files)]
    env = dict(os.environ, TQDM_DISABLE='1')  # the progress bar is not what we measure
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode: sys.exit(f'measurement {mode} failed:\n{res.stderr}')
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    root = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('corpus', nargs='*', type=Path, help="story files (default: the course's sample, from data/ or the Hub)")
    p.add_argument('--tokenizer', type=Path, help='trimmed tokenizer folder (default: trim one from the corpus)')
    p.add_argument('--base', type=Path, help="GPT-Neo's tokenizer folder (default: data/gpt-neo, downloaded when missing)")
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--child', choices=['prepare', 'encode_batch', 'encode_batch_fast', 'encode_batch_batched'])
    p.add_argument('--out', type=Path)
    args = p.parse_args()
    if args.child: return child(args.child, args.corpus, args.tokenizer, args.out)

    from tinystories.data import COURSE_STORIES, course_stories
    from tinystories.tokenizer import gpt_neo_folder
    files = args.corpus or [course_stories(split, version, root/'data') for split, version in COURSE_STORIES]
    args.base = args.base or gpt_neo_folder(root/'data')
    tmp = Path(tempfile.mkdtemp(prefix='bench-pretokenize-'))
    print(f'corpus: {", ".join(str(f) for f in files)} ({sum(f.stat().st_size for f in files) / 1e6:.1f} MB)')
    print(f'cpus: {os.cpu_count()}, load average: {" ".join(f"{x:.2f}" for x in os.getloadavg())}')
    tokenizer = args.tokenizer
    if tokenizer is None:
        from tinystories.tokenizer import trim_tokenizer
        tokenizer = trim_tokenizer(files, args.base, tmp/'tokenizer')

    # speed: alternate the measurements so a change in machine load hits them alike; report medians
    runs = {m: [] for m in ('prepare', 'encode_batch', 'encode_batch_fast', 'encode_batch_batched')}
    for _ in range(args.repeats):
        for m in runs: runs[m].append(measure(m, files, tokenizer, tmp/'x1.bin'))
    med = {m: statistics.median(r['tokens_per_s'] for r in rs) for m, rs in runs.items()}
    n = runs['prepare'][0]['n_tokens']
    print(f'\ntokens: {n:,} in {runs["prepare"][0]["n_stories"]:,} stories; median of {args.repeats} runs each, fresh process per run')
    for m in runs:
        each = ', '.join(f'{r["tokens_per_s"]:,.0f}' for r in runs[m])
        print(f'  {m:<20} {med[m]:>12,.0f} tokens/s   (runs: {each})')
    print(f'  ratio prepare / encode_batch      = {med["prepare"] / med["encode_batch"]:.3f}  (goal >= 0.9)')
    print(f'  ratio prepare / encode_batch_fast = {med["prepare"] / med["encode_batch_fast"]:.3f}')
    print(f'  ratio prepare / encode_batch_batched (the same 1 Mi-character batches as prepare) = {med["prepare"] / med["encode_batch_batched"]:.3f}')

    # memory: the same corpus, then four copies of it in one file
    x4 = tmp/'corpus-x4.txt'
    with open(x4, 'wb') as f:
        for _ in range(4):
            for src in files: f.write(src.read_bytes()); f.write(b'\n<|endoftext|>\n')
    m1 = measure('prepare', files, tokenizer, tmp/'x1.bin')
    m4 = measure('prepare', [x4], tokenizer, tmp/'x4.bin')
    print(f'\npeak RSS of the process running prepare ({m1["rss_before_mb"]:.0f} MB before it: Python, imports, the tokenizer):')
    for name, m in (('1x', m1), ('4x', m4)):
        print(f'  {name} corpus ({m["n_tokens"]:>10,} tokens): {m["peak_rss_mb"]:7.1f} MB  (+{m["peak_rss_mb"] - m["rss_before_mb"]:.1f} MB during prepare)')
    print(f'  ratio 4x / 1x = {m4["peak_rss_mb"] / m1["peak_rss_mb"]:.2f}  (goal: about 1)')
    shutil.rmtree(tmp)


if __name__ == '__main__': main()
