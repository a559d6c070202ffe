"""Benchmark `tinystories.probes`: items/s of a probe run, batched against one continuation at a time.

    python bench/probes.py [--presets 1M 8M] [--batch-sizes 1 8 32 128] [--dtypes fp32 bf16] [--threads N] [--repeats N]

For each preset (random weights: speed does not depend on training; the tokenizer is the one trimmed from the sample under
data/tinystories), the course's 90 probes (360 continuations) are scored with `score_probes` at each batch size, where
batch size 1 is one forward pass per continuation with no padding. Each timing is the best of --repeats after a warm-up.
Prints a markdown table of items/s and the speedup over batch size 1; asserts nothing.
"""
import argparse, os, sys, tempfile, time
from pathlib import Path
import torch


def trimmed_tokenizer(root, out=None):
    "The course's tokenizer, trimmed once from its training stories (what a model trained here uses), made or taken from `root/data` by the package."
    from tinystories.tokenizer import course_tokenizer, load_tokenizer
    return load_tokenizer(course_tokenizer(root / 'data'))


def best_seconds(model, probes, batch_size, repeats):
    "Best wall time of `repeats` probe runs."
    from tinystories.probes import score_probes
    best = float('inf')
    for _ in range(repeats):
        t0 = time.perf_counter(); score_probes(model, probes, batch_size); best = min(best, time.perf_counter() - t0)
    return best


def main():
    root = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--presets', nargs='+', default=['1M', '8M'])
    p.add_argument('--batch-sizes', nargs='+', type=int, default=[1, 8, 32, 128])
    p.add_argument('--dtypes', nargs='+', default=['fp32'], choices=['fp32', 'bf16'])
    p.add_argument('--threads', type=int, help="torch threads (default: torch's choice)")
    p.add_argument('--repeats', type=int, default=1)
    args = p.parse_args()
    sys.path.insert(0, str(root))
    from tinystories.model import GPT, preset_config, param_counts
    from tinystories.tokenizer import eot_id
    from tinystories.textmodel import TextModel, DTYPES
    from tinystories.probes import load_probes, score_probes
    if args.threads: torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d: tok = trimmed_tokenizer(root, d)
    probes = load_probes()
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} '
          f'at start, vocabulary {tok.get_vocab_size()}, {len(probes)} probes, best of {args.repeats}\n', flush=True)
    print('| preset | non-emb params | dtype | batch | seconds | items/s | speedup over batch 1 |')
    print('|---|---|---|---|---|---|---|', flush=True)
    for name in args.presets:
        torch.manual_seed(0)
        gpt = GPT(preset_config(name, tok.get_vocab_size()))
        non_emb = param_counts(gpt)['non_embedding']
        for dtype in args.dtypes:
            model = TextModel(name, gpt.to(DTYPES[dtype]), tok, eot_id(tok))
            score_probes(model, probes[:8], max(args.batch_sizes))  # warm-up
            base = None
            for bs in sorted(args.batch_sizes):
                s = best_seconds(model, probes, bs, args.repeats)
                base = base or s
                print(f'| {name} | {non_emb / 1e6:.2f}M | {dtype} | {bs} | {s:.2f} | {len(probes) / s:.1f} | {base / s:.1f}x |', flush=True)
    print(f'\nload average {os.getloadavg()[0]:.2f} at the end')


if __name__ == '__main__': main()
