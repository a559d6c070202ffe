"""Benchmark `tinystories.generate`: new tokens per second with the KV cache and without it.

    python bench/generate.py [--presets 1M 8M 28M] [--new-tokens 128 512] [--dtypes fp32 bf16 autocast] [--threads N]

For each preset (random weights; the vocabulary is the tokenizer trimmed from the course's training stories, or
--vocab-size) and each number of new tokens, generation starts from a one-token prompt and samples (temperature 1,
never stopping early) once with the KV cache and once re-running the full forward pass over the window for every
token, the plain loop. Each timing is the best of --repeats after a short warm-up, under torch.inference_mode, with
fp32 weights (`fp32`), weights cast to bf16 (`bf16`), and fp32 weights under bf16 autocast (`autocast`).
Prints a markdown table of tokens/s, ms per token and the speedup; asserts nothing.
Goal: the cache at least 5x faster than the plain loop at 512 new tokens.

    python bench/generate.py --vs-transformers [--presets 1M 8M] [--new-tokens 256 1024] [--dtypes fp32 bf16]

The same model (random weights) exported to transformers' GPT-NeoX with `tinystories.hf.to_neox`: our greedy
generation with the KV cache against transformers' `generate` (greedy, its own cache), both from a one-token prompt,
never stopping early, weights in fp32 or cast to bf16; the context is large enough that neither slides a window.
Goal: ours at least 2x transformers' tokens/s for the 1M and 8M shapes. Needs transformers (pip install 'tinystories[hf]').
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


def best_seconds(run, repeats, expected):
    "Best wall time of `repeats` calls of `run(r)` (r = 0, 1, ...), each of which must return `expected` (the tokens it made)."
    best = float('inf')
    for r in range(repeats):
        t0 = time.perf_counter()
        got = run(r)
        best = min(best, time.perf_counter() - t0)
        assert got == expected, (got, expected)
    return best


def seconds(model, n_new, use_cache, dtype, repeats):
    "Best wall time of `repeats` generations of `n_new` tokens from a one-token prompt."
    from tinystories.generate import generate_ids
    def run(r):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=dtype == 'autocast'):
            return sum(1 for _ in generate_ids(model, [[0]], n_new, temperature=1.0, seed=r, use_cache=use_cache))
    return best_seconds(run, repeats, n_new)


def seconds_ours_greedy(model, n_new, repeats):
    "Best wall time of our greedy generation (KV cache) of `n_new` tokens from a one-token prompt, never stopping early."
    from tinystories.generate import generate_ids
    return best_seconds(lambda r: sum(1 for _ in generate_ids(model, [[0]], n_new, temperature=0)), repeats, n_new)


def seconds_transformers_greedy(hf_model, n_new, repeats):
    "Best wall time of transformers' `generate` (greedy, its KV cache) of exactly `n_new` tokens from a one-token prompt."
    @torch.inference_mode()
    def run(r):
        out = hf_model.generate(torch.zeros(1, 1, dtype=torch.long), max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False,
                                use_cache=True, pad_token_id=0)
        return out.shape[1] - 1
    return best_seconds(run, repeats, n_new)


def vs_transformers(args, vocab):
    "Our greedy generation against transformers' `generate` on the same model, exported with `tinystories.hf.to_neox`."
    from tinystories.model import GPT, preset_config, param_counts
    from tinystories.hf import to_neox
    presets, new_tokens = args.presets or ['1M', '8M'], args.new_tokens or [256, 1024]
    dtypes = [d for d in (args.dtypes or ['fp32', 'bf16']) if d != 'autocast']
    ctx = max(512, max(new_tokens) + 1)  # room for every new token: neither side slides a window
    print('| preset | non-emb params | dtype | new tokens | ours tok/s | transformers tok/s | ours / transformers |')
    print('|---|---|---|---|---|---|---|', flush=True)
    ratios = {}
    for name in presets:
        torch.manual_seed(0)
        ours32 = GPT(preset_config(name, vocab, context=ctx)).eval()
        theirs32 = to_neox(ours32, eot=0)
        non_emb = param_counts(ours32)['non_embedding']
        for dtype in dtypes:
            ours, theirs = (copy.deepcopy(m).to(torch.bfloat16) if dtype == 'bf16' else m for m in (ours32, theirs32))
            seconds_ours_greedy(ours, 8, 1); seconds_transformers_greedy(theirs, 8, 1)  # warm-up
            for n in new_tokens:
                a, b = seconds_ours_greedy(ours, n, args.repeats), seconds_transformers_greedy(theirs, n, args.repeats)
                ratios[name, dtype, n] = b / a
                print(f'| {name} | {non_emb / 1e6:.2f}M | {dtype} | {n} | {n / a:,.0f} | {n / b:,.0f} | {b / a:.2f}x |', flush=True)
    small = [r for (name, _, _), r in ratios.items() if name in ('1M', '8M')]
    if small: print(f'\ngoal: ours at least 2x transformers for the 1M and 8M shapes; worst ratio there {min(small):.2f}x')


def main():
    root = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--presets', nargs='+', help='default: 1M 8M 28M (with --vs-transformers: 1M 8M)')
    p.add_argument('--new-tokens', nargs='+', type=int, help='default: 128 512 (with --vs-transformers: 256 1024)')
    p.add_argument('--dtypes', nargs='+', choices=['fp32', 'bf16', 'autocast'], help='default: fp32 bf16 autocast (with --vs-transformers: fp32 bf16)')
    p.add_argument('--vs-transformers', action='store_true', help="ours against transformers' generate on the same exported model (greedy, both with a KV cache)")
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
          f'at start, vocabulary {vocab}, best of {args.repeats}\n', flush=True)
    if args.vs_transformers:
        import transformers
        print(f'transformers {transformers.__version__}; greedy, one-token prompt, never stopping early\n', flush=True)
        vs_transformers(args, vocab)
        print(f'\nload average {os.getloadavg()[0]:.2f} at the end')
        return
    args.presets, args.new_tokens = args.presets or ['1M', '8M', '28M'], args.new_tokens or [128, 512]
    args.dtypes = args.dtypes or ['fp32', 'bf16', 'autocast']
    print('context 512\n')
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
