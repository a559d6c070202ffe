"""Benchmark `tinystories.generate` with `tinystories.fast_decoding`: new tokens per second of generation, with the lean decoding step and without it, against no cache, and against transformers.

    python bench/generate.py [--presets 1M 8M 28M] [--new-tokens 256] [--batches 1 8] [--dtypes fp32] [--threads N] [--repeats R]

For each preset (random weights; the vocabulary is the tokenizer trimmed from the course's training stories, or
--vocab-size) and batch size, `generate_ids` samples (temperature 1, never stopping early) from one-token prompts,
with the fast one-token steps of `tinystories.fast_decoding` (the default, `step='fastest'`: `CompiledStep` for one
sequence, `LeanDecoder` for a batch) and with the model's own forward (`step='model'`); at
batch 1 also the widget's own path, `StoryWidget.on_generate` (encode, generate, decode piece by piece, render the
HTML), which stops at the end-of-text token like a learner's click. Tokens/s count every sequence of the batch. Each
timing is the best of --repeats after a short warm-up. Goal (issue 13): the widget streams at least 100 tokens/s for
the 8M preset.

    python bench/generate.py --vs-no-cache [--new-tokens 128 512] [--dtypes fp32 bf16 autocast]

The KV cache against the plain loop that re-runs the full forward pass over the window for every token, fp32
weights (`fp32`), weights cast to bf16 (`bf16`) and fp32 weights under bf16 autocast (`autocast`). Goal: the cache
at least 5x faster than the plain loop at 512 new tokens.

    python bench/generate.py --vs-transformers [--presets 1M 8M] [--new-tokens 256 1024] [--dtypes fp32 bf16] [--threads N --decode-threads N]

The same model (random weights) exported to transformers' GPT-NeoX with `tinystories.hf.to_neox`: our greedy
generation with the KV cache (the default compiled step, `CompiledStep`; the lean step in torch operations,
`step='lean'`; and the model's own step, `step='model'`) against transformers' `generate` (greedy, its own cache), all
from a one-token prompt, never stopping early, weights in fp32 or cast to bf16; the context is large enough that
neither slides a window. A fifth run times the matrix products of the lean step alone (each block's four products of
one row and the head, the same torch calls with the same weights and threads, nothing else): the most any decoder
could reach that computes those products with torch's kernels (the compiled step multiplies with its own code). The
five are timed in turn in each repeat, so a change of load hits them alike. Goal (issue 11): ours at least 2x
transformers' tokens/s for the 1M and 8M shapes. Needs transformers (pip install 'tinystories[hf]').

    python bench/generate.py --products [--presets 1M 8M 28M] [--dtypes fp32 bf16] [--threads N] [--repeats R]

The matrix products of one row that a decoding step makes, for each matrix shape of the presets (the blocks' four and
the head), by each route `one_row_linear` knows: `F.linear` on the weights as they are, a float32 copy laid out (in, out),
and oneDNN's packed layout (bf16); µs per product, 8 copies of each matrix taken in turn, and the route `one_row_linear`
takes. Then a whole step's products (every layer's matrices and the head, in turn) by each route and by `one_row_linear`.

Every table asserts nothing; compare figures within one run (the load average is printed at the start and the end).
"""
import argparse, copy, os, sys, tempfile, time
from pathlib import Path
# bench/ is not a package of ours: its kernels.py would shadow the `kernels` package that transformers imports
sys.path[:] = [p for p in sys.path if Path(p or '.').resolve() != Path(__file__).resolve().parent]
import torch


def trimmed_tokenizer(root):
    "The course's tokenizer, trimmed once from its training stories (what a model trained here uses), made or taken from `root/data` by the package."
    from tinystories.tokenizer import course_tokenizer, load_tokenizer
    return load_tokenizer(course_tokenizer(root / 'data'))


def best_seconds(run, repeats, expected=None):
    "Best wall time of `repeats` calls of `run(r)` (r = 0, 1, ...), each returning the tokens it made (which must be `expected`, if given), and those tokens."
    best = float('inf')
    for r in range(repeats):
        t0 = time.perf_counter()
        got = run(r)
        best = min(best, time.perf_counter() - t0)
        assert expected is None or got == expected, (got, expected)
    return best, got


def sampled(model, n_new, batch=1, dtype='fp32', repeats=1, use_cache=True, step='fastest'):
    "Best wall time of `repeats` samplings of `n_new` tokens from `batch` one-token prompts."
    from tinystories.generate import generate_ids
    def run(r):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=dtype == 'autocast'):
            return sum(1 for _ in generate_ids(model, [[0]] * batch, n_new, temperature=1.0, seed=r, use_cache=use_cache, step=step))
    return best_seconds(run, repeats, n_new)[0]


def widget_rate(model, tokenizer, n_new, repeats):
    "Tokens/s of `StoryWidget.on_generate` (a click on Generate) writing up to `n_new` tokens after 'Once upon a time', and the tokens it wrote."
    from tinystories.generate import StoryWidget
    w = StoryWidget(model, tokenizer)
    w.max_new_tokens.value = n_new
    def run(r):
        w.seed.value = r
        w.on_generate()
        return int(w.status.value.split()[0])  # 'N tokens in S s'
    best, n = best_seconds(run, repeats)
    return n / best, n


def set_dtype(model, dtype):
    "`model` itself, or a copy with its weights cast to bf16."
    return copy.deepcopy(model).to(torch.bfloat16) if dtype == 'bf16' else model


def throughput(args, tokenizer):
    "The table of issue 13: tokens/s of generate_ids (lean and model step) at each batch size, and of the widget at batch 1."
    from tinystories.model import GPT, preset_config
    vocab = tokenizer.get_vocab_size()
    print('| preset | dtype | batch | new tokens | lean tok/s | model step tok/s | lean / model step | widget tok/s (tokens) |')
    print('|---|---|---:|---:|---:|---:|---:|---:|', flush=True)
    for name in args.presets:
        torch.manual_seed(0)
        fp32_model = GPT(preset_config(name, vocab)).eval()
        for dtype in args.dtypes:
            model = set_dtype(fp32_model, dtype)
            for batch in args.batches:
                sampled(model, 8, batch, dtype); sampled(model, 8, batch, dtype, step='model')  # warm-up
                for n in args.new_tokens:
                    lean, plain = sampled(model, n, batch, dtype, args.repeats), sampled(model, n, batch, dtype, args.repeats, step='model')
                    widget = ''
                    if batch == 1 and dtype != 'autocast':
                        rate, k = widget_rate(model, tokenizer, n, args.repeats)
                        widget = f'{rate:,.0f} ({k})'
                    print(f'| {name} | {dtype} | {batch} | {n} | {batch * n / lean:,.0f} | {batch * n / plain:,.0f} | {plain / lean:.2f}x | {widget} |', flush=True)


def vs_no_cache(args, vocab):
    "The KV cache (lean step) against re-running the full forward pass for every token."
    from tinystories.model import GPT, preset_config, param_counts
    print('context 512\n')
    print('| preset | non-emb params | dtype | new tokens | cache tok/s | no cache tok/s | speedup | cache ms/tok | no cache ms/tok |')
    print('|---|---|---|---|---|---|---|---|---|', flush=True)
    for name in args.presets:
        torch.manual_seed(0)
        fp32_model = GPT(preset_config(name, vocab)).eval()
        non_emb = param_counts(fp32_model)['non_embedding']
        for dtype in args.dtypes:
            model = set_dtype(fp32_model, dtype)
            sampled(model, 8, 1, dtype); sampled(model, 8, 1, dtype, use_cache=False)  # warm-up
            for n in args.new_tokens:
                fast, slow = sampled(model, n, 1, dtype, args.repeats), sampled(model, n, 1, dtype, args.repeats, use_cache=False)
                print(f'| {name} | {non_emb / 1e6:.2f}M | {dtype} | {n} | {n / fast:,.0f} | {n / slow:,.1f} | {slow / fast:.1f}x '
                      f'| {1e3 * fast / n:.2f} | {1e3 * slow / n:.1f} |', flush=True)


def interleaved_best(runs, repeats, expected):
    "Best wall time of each of `runs` (called as `run(r)`, returning the tokens it made, which must be `expected`), timed in turn in each of `repeats` rounds, so that a change of load hits all of them alike."
    best = [float('inf')] * len(runs)
    for r in range(repeats):
        for i, run in enumerate(runs):
            t0 = time.perf_counter()
            got = run(r)
            best[i] = min(best[i], time.perf_counter() - t0)
            assert got == expected, (got, expected)
    return best


def greedy_ours(model, n_new, step='fastest', decode_threads=1):
    "Our greedy generation (KV cache) of `n_new` tokens from a one-token prompt, never stopping early, as a timed run."
    from tinystories.generate import generate_ids
    return lambda r: sum(1 for _ in generate_ids(model, [[0]], n_new, temperature=0, step=step, decode_threads=decode_threads))


def greedy_transformers(hf_model, n_new):
    "transformers' `generate` (greedy, its KV cache) of exactly `n_new` tokens from a one-token prompt, as a timed run."
    @torch.inference_mode()
    def run(r):
        out = hf_model.generate(torch.zeros(1, 1, dtype=torch.long), max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False,
                                use_cache=True, pad_token_id=0)
        return out.shape[1] - 1
    return run


def products_only(model, n_new, decode_threads=1):
    "Just the matrix products of `n_new` lean one-token steps (each block's four on one row, and the head), as a timed run: the least time any decoder spends that computes them with torch's kernels (the compiled step has its own)."
    from tinystories.generate import forward_on_threads
    from tinystories.fast_decoding import LeanDecoder, one_row_linear
    step = LeanDecoder(model)  # for its head, multiplied as the lean step multiplies it
    mats = [(m.in_features, one_row_linear(m.weight, m.bias)) for b in model.blocks for m in (b.attn.qkv, b.attn.proj, b.mlp.fc, b.mlp.proj)]
    rows = {n: torch.randn(1, n).to(step.emb.dtype) for n, _ in mats}
    x = rows[step.C]
    def products():
        for n, product in mats: product(rows[n])
        return step.unembed(x)
    @torch.inference_mode()
    def run(r):
        for _ in range(n_new): forward_on_threads(products, decode_threads)
        return n_new
    return run


def vs_transformers(args, vocab):
    "Our greedy generation against transformers' `generate` on the same model, exported with `tinystories.hf.to_neox`."
    from tinystories.model import GPT, preset_config, param_counts
    from tinystories.hf import to_neox
    ctx = max(512, max(args.new_tokens) + 1)  # room for every new token: neither side slides a window
    print('| preset | non-emb params | dtype | new tokens | ours tok/s (compiled step) | ours tok/s (lean step) | ours tok/s (model step) | transformers tok/s | compiled / transformers | lean / transformers | model step / transformers | torch products only tok/s |')
    print('|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|', flush=True)
    ratios = {}
    for name in args.presets:
        torch.manual_seed(0)
        ours32 = GPT(preset_config(name, vocab, context=ctx)).eval()
        theirs32 = to_neox(ours32, eot=0)
        non_emb = param_counts(ours32)['non_embedding']
        for dtype in args.dtypes:
            ours, theirs = set_dtype(ours32, dtype), set_dtype(theirs32, dtype)
            interleaved_best([greedy_ours(ours, 8), greedy_ours(ours, 8, 'lean'), greedy_ours(ours, 8, 'model'), greedy_transformers(theirs, 8)], 1, 8)  # warm-up
            for n in args.new_tokens:
                t = args.decode_threads
                comp, lean, plain, hf, mm = interleaved_best([greedy_ours(ours, n, decode_threads=t), greedy_ours(ours, n, 'lean', decode_threads=t),
                                                              greedy_ours(ours, n, 'model', decode_threads=t), greedy_transformers(theirs, n),
                                                              products_only(ours, n, t)], args.repeats, n)
                ratios[name, dtype, n] = hf / comp
                print(f'| {name} | {non_emb / 1e6:.2f}M | {dtype} | {n} | {n / comp:,.0f} | {n / lean:,.0f} | {n / plain:,.0f} | {n / hf:,.0f} | {hf / comp:.2f}x | {hf / lean:.2f}x | {hf / plain:.2f}x | {n / mm:,.0f} |', flush=True)
    small = [k for k in ratios if k[0] in ('1M', '8M')]
    if small:
        worst = min(small, key=ratios.get)
        print(f'\ngoal: ours (the default, compiled step) at least 2x transformers for the 1M and 8M shapes; worst ratio there {ratios[worst]:.2f}x ({" ".join(map(str, worst))})')


def block_shapes(config, vocab):
    "(out, in) of a block's four matrices (query/key/value, attention out, MLP up, MLP down) and then the head's."
    C = config.n_embd
    return [(3 * C, C), (C, C), (4 * C, C), (C, 4 * C)], (vocab, C)


def timed_products(fs, xs, times):
    "A timed run (for `interleaved_best`) of `times` passes over the products `fs`, each on its row of `xs`."
    def run(r):
        for _ in range(times):
            for f, x in zip(fs, xs): f(x)
        return times
    return run


def route_table(args, vocab):
    "µs per one-row product by route, for each matrix shape of the presets (8 copies of each, taken in turn, as a step takes its 8 layers'); then a whole step's products, ms per token."
    from tinystories.fast_decoding import one_row_linear, onednn_packed
    from tinystories.model import preset_config
    import torch.nn.functional as F
    routes = {'fp32': {'F.linear': lambda w: (lambda x: F.linear(x, w)),
                       'float32 transposed copy': lambda w: (lambda x, wt=w.t().contiguous(): x @ wt)},
              'bf16': {'F.linear': lambda w: (lambda x: F.linear(x, w)),
                       'float32 transposed copy': lambda w: (lambda x, wt=w.float().t().contiguous(): (x.float() @ wt).to(x.dtype)),
                       'oneDNN packed': lambda w: (lambda x, p=onednn_packed(w): torch.ops.mkldnn._linear_pointwise(x, p, None, 'none', [], ''))}}
    dtypes = {'fp32': torch.float32, 'bf16': torch.bfloat16}
    def best_ms(makers, shapes, dtype, times):
        "Best ms of one pass over `shapes` by each of `makers`, timed in turn."
        ws = [torch.randn(out, inp).to(dtypes[dtype]) for out, inp in shapes]
        xs = [torch.randn(1, w.shape[1]).to(w.dtype) for w in ws]
        with torch.inference_mode():
            best = interleaved_best([timed_products([make(w) for w in ws], xs, times) for make in makers], args.repeats, times)
        return [t / times * 1e3 for t in best]
    print('| preset | matrix (out x in) | weights | dtype | ' + ' | '.join(f'{r} µs' for r in routes['bf16']) + ' | one_row_linear takes |')
    print('|---|---|---:|---|---:|---:|---:|---|', flush=True)
    for name in args.presets:
        blocks, head = block_shapes(preset_config(name, vocab), vocab)
        for out, inp in blocks + [head]:
            for dtype in args.dtypes:
                ms = best_ms(routes[dtype].values(), [(out, inp)] * 8, dtype, 20)
                cells = [f'{t / 8 * 1e3:.1f}' for t in ms] + [''] * (3 - len(ms))
                route = one_row_linear(torch.zeros(out, inp, dtype=dtypes[dtype])).route
                print(f'| {name} | {out} x {inp} | {out * inp:,} | {dtype} | {" | ".join(cells)} | {route} |', flush=True)
    print('\nA whole step\'s products, every block matrix of every layer and the head taken in turn, ms per token:\n')
    print('| preset | dtype | ' + ' | '.join(f'{r} ms' for r in routes['bf16']) + ' | one_row_linear ms |')
    print('|---|---|---:|---:|---:|---:|', flush=True)
    for name in args.presets:
        c = preset_config(name, vocab)
        blocks, head = block_shapes(c, vocab)
        for dtype in args.dtypes:
            *ms, ours = best_ms([*routes[dtype].values(), one_row_linear], blocks * c.n_layer + [head], dtype, 10)
            cells = [f'{t:.2f}' for t in ms] + [''] * (3 - len(ms)) + [f'{ours:.2f}']
            print(f'| {name} | {dtype} | {" | ".join(cells)} |', flush=True)


def main():
    root = Path(__file__).resolve().parent.parent
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--presets', nargs='+', help='default: 1M 8M 28M (with --vs-transformers: 1M 8M)')
    p.add_argument('--new-tokens', nargs='+', type=int, help='default: 256 (with --vs-no-cache: 128 512; with --vs-transformers: 256 1024)')
    p.add_argument('--batches', nargs='+', type=int, default=[1, 8], help='batch sizes of the default table (default: 1 8)')
    p.add_argument('--dtypes', nargs='+', choices=['fp32', 'bf16', 'autocast'], help='default: fp32 (with --vs-no-cache: fp32 bf16 autocast; with --vs-transformers: fp32 bf16)')
    p.add_argument('--vs-no-cache', action='store_true', help='the KV cache against a full forward pass per token')
    p.add_argument('--vs-transformers', action='store_true', help="ours against transformers' generate on the same exported model (greedy, both with a KV cache)")
    p.add_argument('--products', action='store_true', help="one-row matrix products by route (one_row_linear's choice), µs each")
    p.add_argument('--vocab-size', type=int, help='default: the size of the tokenizer trimmed from data/tinystories (the widget column needs that tokenizer)')
    p.add_argument('--threads', type=int, help='torch threads (default: torch\'s choice; our one-token steps use one thread either way)')
    p.add_argument('--repeats', type=int, default=1)
    p.add_argument('--decode-threads', type=int, default=1, help="with --vs-transformers: threads of our one-token steps (generate_ids' decode_threads; default 1, its default); give it --threads for a like-for-like run on an idle machine")
    args = p.parse_args()
    sys.path.insert(0, str(root))
    import tinystories.fast_decoding  # registers the fast one-token steps that generate_ids and the widget take by default (10b)
    if args.threads: torch.set_num_threads(args.threads)
    tokenizer = trimmed_tokenizer(root) if not args.vocab_size or not (args.vs_no_cache or args.vs_transformers or args.products) else None
    vocab = args.vocab_size or tokenizer.get_vocab_size()
    print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} '
          f'at start, vocabulary {vocab}, best of {args.repeats}\n', flush=True)
    if args.products:
        args.presets, args.dtypes = args.presets or ['1M', '8M', '28M'], [d for d in (args.dtypes or ['fp32', 'bf16']) if d != 'autocast']
        route_table(args, vocab)
    elif args.vs_transformers:
        import transformers
        print(f'transformers {transformers.__version__}; greedy, one-token prompt, never stopping early\n', flush=True)
        args.presets, args.new_tokens = args.presets or ['1M', '8M'], args.new_tokens or [256, 1024]
        args.dtypes = [d for d in (args.dtypes or ['fp32', 'bf16']) if d != 'autocast']
        vs_transformers(args, vocab)
    elif args.vs_no_cache:
        args.presets, args.new_tokens = args.presets or ['1M', '8M', '28M'], args.new_tokens or [128, 512]
        args.dtypes = args.dtypes or ['fp32', 'bf16', 'autocast']
        vs_no_cache(args, vocab)
    else:
        if tokenizer is None or tokenizer.get_vocab_size() != vocab: sys.exit('the default table needs the trimmed tokenizer: leave out --vocab-size')
        args.presets, args.new_tokens, args.dtypes = args.presets or ['1M', '8M', '28M'], args.new_tokens or [256], args.dtypes or ['fp32']
        throughput(args, tokenizer)
    print(f'\nload average {os.getloadavg()[0]:.2f} at the end')


if __name__ == '__main__': main()
