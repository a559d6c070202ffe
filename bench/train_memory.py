#!/usr/bin/env python
"""Memory figures of the training path, moved out of the notebooks' tests (a test asserts behaviour, not a machine's numbers).

1. The loader (`06_loader`): resident memory (RSS) of a process that draws 10,000 training batches of 8 x 256 tokens from a
   `TokenFile`, before and after. Goal: it grows by less than 20 MB (the pages of the file it touched, nothing per batch).
2. The allocator (`09b_trainer`): minor page faults of a typical training step of the 1M preset at 16 x 256, in two fresh
   processes, one with glibc's malloc as it comes and one with `keep_freed_memory()` as the trainer sets it for CPU runs,
   and the tokens/s of each. Goal: at least 10x fewer faults with the setting.

    python bench/train_memory.py            # both, on the course's validation sample in data/
    python bench/train_memory.py --steps 8  # more timed steps per process

Prints one line per figure and `goal met` / `goal missed`; the figures depend on the machine (its CPU, its load).
"""
import argparse, gc, platform, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAULT_PROBE = '''
import resource, sys, time, torch
from tinystories.model import GPT, preset_config
from tinystories.train import lm_loss
from tinystories.trainer import keep_freed_memory
kept = sys.argv[1] == 'keep' and keep_freed_memory()
vocab, steps = int(sys.argv[2]), int(sys.argv[3])
torch.manual_seed(0)
model = GPT(preset_config('1M', vocab, context=256))
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
x = torch.randint(0, vocab, (16, 257))
def step():
    lm_loss(model(x[:, :-1]), x[:, 1:]).backward(); opt.step(); opt.zero_grad(set_to_none=True)
step(); step()  # the heap grows to its working size in the first steps
faults, t0 = [], time.perf_counter()
for _ in range(steps):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(kept, sorted(faults)[1], steps * 16 * 256 / (time.perf_counter() - t0))
'''


def goal(ok): return 'goal met' if ok else 'goal missed'


def loader_rss(valid_bin, vocab_size, batches=10_000):
    "(RSS before, after) in MB of drawing `batches` training batches of 8 x 256 from `valid_bin`."
    import psutil
    from tinystories.loader import TokenFile
    def rss_mb(): return psutil.Process().memory_info().rss / 2**20
    tf = TokenFile(valid_bin, vocab_size=vocab_size)
    for step in range(100): tf.train_batch(step, 8, 256)  # touch the file's pages and torch's allocator
    gc.collect(); before = rss_mb()
    for step in range(batches): tf.train_batch(step, 8, 256)
    gc.collect()
    return before, rss_mb()


def fault_probe(mode, vocab_size, steps):
    "(setting taken, page faults of a typical step, tokens/s) of `steps` training steps in a fresh process."
    out = subprocess.run([sys.executable, '-c', FAULT_PROBE, mode, str(vocab_size), str(steps)], capture_output=True, text=True, check=True).stdout.split()
    return out[0] == 'True', float(out[1]), float(out[2])


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--steps', type=int, default=4, help='timed training steps per process (default: 4)')
    p.add_argument('--data-dir', type=Path, default=ROOT/'data', help='the course data (default: data/ of the repository)')
    args = p.parse_args()
    from tinystories.data import course_stories
    from tinystories.tokenizer import course_tokenizer, load_tokenizer
    from tinystories.pretokenize import prepare
    tok = course_tokenizer(args.data_dir)
    vocab = load_tokenizer(tok).get_vocab_size()
    print(f'# {platform.processor() or platform.machine()}, {__import__("os").cpu_count()} cores, {time.strftime("%Y-%m-%d")}; figures depend on the machine and its load')
    with tempfile.TemporaryDirectory() as d:
        valid_bin = prepare([course_stories('valid', data_dir=args.data_dir)], tok, Path(d)/'valid.bin')
        before, after = loader_rss(valid_bin, vocab)
        size = valid_bin.stat().st_size / 2**20
    print(f'loader: RSS {before:.1f} MB before, {after:.1f} MB after 10,000 batches (+{after - before:.1f} MB; file {size:.1f} MB); goal +20 MB at most: {goal(after - before < 20)}')
    if sys.platform != 'linux': return print('allocator: glibc only; skipped')
    (_, faults, tok_s), (kept, kept_faults, kept_tok_s) = fault_probe('default', vocab, args.steps), fault_probe('keep', vocab, args.steps)
    print(f'allocator: malloc as it comes {faults:,.0f} page faults per step, {tok_s:,.0f} tokens/s; '
          f'keep_freed_memory {kept_faults:,.0f} per step, {kept_tok_s:,.0f} tokens/s ({kept_tok_s / tok_s:.2f}x); '
          f'goal 10x fewer faults: {goal(kept and kept_faults * 10 < max(faults, 1))}')


if __name__ == '__main__': main()
