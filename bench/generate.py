"""Benchmark `tinystories.generate`: new tokens per second with the KV cache and without it.

    python bench/generate.py [--presets 1M 8M 28M] [--new-tokens 128 512] [--dtypes fp32 bf16 autocast] [--threads N]

For each preset (random weights; the vocabulary is the tokenizer trimmed from the course's training stories, or
--vocab-size) and each number of new tokens, generation starts from a one-token prompt and samples (temperature 1,
never stopping early) once with the KV cache and once re-running the full forward pass over the window for every
token, the plain loop. Each timing is the best of --repeats after a short warm-up, under torch.inference_mode, with
fp32 weights (`fp32`), weights cast to bf16 (`bf16`), and fp32 weights under bf16 autocast (`autocast`).
Prints a markdown table of tokens/s, ms per token and the speedup; asserts nothing.
Goal: the cache at least 5x faster than the plain loop at 512 new tokens.
"""
import argparse, copy, os, sys, tempfile, time
from pathlib import Path
import torch


def trimmed_vocab_size(root):
    "Size of the tokenizer trimmed from the course's training stories (what a model trained here would use), taken or downloaded by the package."
    from tinystories.data import COURSE_STORIES, course_stories
    from tinystories.tokenizer import trim_tokenizer, load_tokenizer, gpt_neo_folder
    files = [course_stories(split, version, root / 'data') for split, version in COURSE_STORIES if split == 'train']
    with tempfile.TemporaryDirectory() as d:
        return load_tokenizer(trim_tokenizer(files, base=gpt_neo_folder(root / 'data'), out=Path(d))).get_vocab_size()


def seconds(model, n_new, use_cache, dtype, repeats):
    "Best wall time of `repeats` generations of `n_new` tokens from a one-token prompt."
    from tinystories.generate import generate_ids
    best = float('inf')
    for r in range(repeats):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=dtype == 'autocast'):
            t0 = time.perf_counter()
            n = sum(1 for _ in generate_ids(model, [[0]], n_new, temperature=1.0, seed=r, use_cache=use_cache))
            best = min(best, time.perf_counter() - t0)
        assert n == n_new, (n, n_new)
    return best


def main():
    root = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--presets', nargs='+', default=['1M', '8M', '28M'])
    p.add_argument('--new-tokens', nargs='+', type=int, default=[128, 512])
    p.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16', 'autocast'], choices=['fp32', 'bf16', 'autocast'])
    p.add_argument('--vocab-size', type=int, help='default: the size of the tokenizer trimmed from data/tinystories')
    p.add_argument('--threads', type=int, help='torch threads (default: torch\'s choice)')
    p.add_argument('--repeats', type=int, default=1)
    args = p.parse_args()
    sys.path.insert(0, str(root))
    from tinystories.model import GPT, preset_config, param_counts
    if args.threads: torch.set_num_threads(args.threads)
    vocab = args.vocab_size or trimmed_vocab_size(root) or 20000
    load = os.getloadavg()[0]
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {load:.2f} '
          f'at start, vocabulary {vocab}, context 512, best of {args.repeats}\n', flush=True)
    print('| preset | non-emb params | dtype | new tokens | cache tok/s | no cache tok/s | speedup | cache ms/tok | no cache ms/tok |')
    print('|---|---|---|---|---|---|---|---|---|', flush=True)
    for name in args.presets:
        torch.manual_seed(0)
        fp32_model = GPT(preset_config(name, vocab)).eval()
        non_emb = param_counts(fp32_model)['non_embedding']
        for dtype in args.dtypes:
            model = copy.deepcopy(fp32_model).to(torch.bfloat16) if dtype == 'bf16' else fp32_model
            seconds(model, 8, True, dtype, 1); seconds(model, 8, False, dtype, 1)  # warm-up
            for n in args.new_tokens:
                fast, slow = seconds(model, n, True, dtype, args.repeats), seconds(model, n, False, dtype, args.repeats)
                print(f'| {name} | {non_emb / 1e6:.2f}M | {dtype} | {n} | {n / fast:,.0f} | {n / slow:,.1f} | {slow / fast:.1f}x '
                      f'| {1e3 * fast / n:.2f} | {1e3 * slow / n:.1f} |', flush=True)
    print(f'\nload average {os.getloadavg()[0]:.2f} at the end')


if __name__ == '__main__': main()
