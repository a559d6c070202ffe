"""Training throughput and MFU of the model presets at fp32 and bf16, on this machine.

MFU (model FLOPs utilization) = model FLOPs per second / peak matmul FLOPs per second of the same machine
and precision, both measured in this run. Model FLOPs per token (PaLM, appendix B):

    6 * N  +  12 * n_layer * context * n_embd

where N counts the parameters used in matmuls: the non-embedding parameters plus the output head
(vocab_size * n_embd; with tied embeddings it is the embedding matrix, but its matmul is real work).
The attention term counts QK^T and AV forward and backward over the full (not causal-halved) square.
The peak is the best time of a large square matmul (`torch.mm`, n x n) at each precision.
Each training step is the trainer's own: `accumulate_gradients` (bf16 autocast or fp32), gradient clipping, AdamW.

usage: python bench/train.py [--presets 1M 8M 28M] [--dtypes fp32 bf16] [--batch-size 16] [--context 256] [--steps 5]

    python bench/train.py --vs-baseline [--presets 1M 3M] [--dtypes fp32 bf16] [--rounds 5]

Our training step against a plain eager GPT of the same shape written below (`BaselineGPT`: the textbook minimal GPT,
as nanoGPT: learned position embeddings, one nn.Linear for q, k, v, F.scaled_dot_product_attention, GELU MLP,
LayerNorm, tied head, torch.optim.AdamW on all parameters with weight decay on the matrices), and against the same
model with its attention written out as in the lectures and minGPT (scores, mask the future, softmax, weigh the
values: the "textbook" column). All draw the same batches and run forward + backward + clip + AdamW; they are timed
in rounds within this one run (same threads, same load; each model goes first in turn), and each ratio is the median
of the per-round ratios. A fourth run is our step with each layer's attention left out (`attend` returns the values):
the rest of the step, which the baselines share in kind (embedding, layers' products, head, loss, optimizer). Its
columns say how far attention alone can move the ratio: the ceiling (baseline time / that time, were our attention
free), our attention's milliseconds per layer (forward + backward, from the difference), and the milliseconds per
layer that a ratio of 1.5x would leave it. The goal is judged against the SDPA baseline, the faster and stricter of the two. Goal: ours at least 1.5x the baseline for
the 1M and 3M presets; the 28M preset at least 60% of the bf16 matmul peak measured in the same run.
Every table runs with `keep_freed_memory()` set, as the trainer sets it for CPU runs (`--malloc-default` leaves malloc as
it comes); it is a setting of the process, so the baselines get it too.

    python bench/train.py --attention [--presets 1M 3M 8M 28M] [--dtypes fp32 bf16] [--rounds 5]

Milliseconds of one attention layer's forward + backward at the shape of a training step (batch x n_head x context x head size
of each preset), for each kernel `04_attention` has: SDPA's fused kernel, `attention_by_hand`, `causal_attention_in_blocks` and, on a CPU
where it compiles, `fused_causal_attention`;
each the median of `--rounds` rounds that take the kernels in turn. It is the table in `04_attention` behind `attend`'s choice.

    python bench/train.py --generation [--presets 1M 8M 28M] [--new-tokens 256]

Tokens/s of `tinystories.generate.generate_ids` (KV cache, sampling) at batch 1 and 8, random weights, fp32, and of the
widget's streaming path (`stream_tokens`: encode, generate, decode piece by piece) at batch 1; generate_ids is timed
both ways in alternating repeats: its default one thread per one-token step, and torch's own thread setting. Goal: the widget streams
at least 100 tokens/s for the 8M preset. Every figure is printed with the load average; nothing is asserted.
"""
import argparse, atexit, math, os, platform, tempfile, time
from pathlib import Path
import numpy as np, torch
from tinystories.model import GPT, param_counts
from tinystories.loader import TokenFile
from tinystories.config import resolve_config, model_config
from tinystories.model import pick_device
from tinystories.optim import make_optimizer, param_groups
from tinystories.train import accumulate_gradients
from tinystories.trainer import keep_freed_memory

def peak_matmul_flops(dtype, device, n=4096, reps=5):
    "Best FLOP/s of an n x n x n matmul at `dtype` on `device`."
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
    best = math.inf
    for _ in range(reps + 1):
        if device.type == 'cuda': torch.cuda.synchronize()
        t = time.perf_counter(); a @ b
        if device.type == 'cuda': torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best

def flops_per_token(model, context):
    "Training FLOPs per token: 6 N (N: matmul parameters, the head included) + 12 L T d (attention)."
    c = model.config
    n = param_counts(model)['non_embedding'] + c.vocab_size * c.n_embd
    return 6 * n + 12 * c.n_layer * context * c.n_embd

def token_file(path, context, vocab_size):
    "A TokenFile of real tokens when `path` exists, else a temporary file of random ids (throughput does not depend on them)."
    if path and Path(path).is_file(): return TokenFile(path, context=context)
    fd, tmp = tempfile.mkstemp(prefix='bench-train-random-', suffix='.bin'); os.close(fd); tmp = Path(tmp)
    atexit.register(tmp.unlink, missing_ok=True)  # the benchmark leaves nothing behind
    np.random.default_rng(0).integers(0, vocab_size, 1 << 20, dtype=np.uint16).tofile(tmp)
    return TokenFile(tmp, vocab_size=vocab_size, context=context)

def our_step(preset, dtype, args, device, data, vocab_size):
    "(step, cfg, model): one training step of our GPT (forward, backward, clipping, AdamW) as the trainer takes it."
    cfg = resolve_config(preset=preset, batch_size=args.batch_size, context=args.context, dtype=dtype, compile=args.compile, device=str(device))
    torch.manual_seed(0)
    model = GPT(model_config(cfg, vocab_size)).to(device)
    net = torch.compile(model) if cfg.compile else model
    opt = make_optimizer(model, cfg)
    def step(i):
        accumulate_gradients(net, data, i, cfg, 0, 1, device)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step(); opt.zero_grad(set_to_none=True)
    return step, cfg, model

def bench(preset, dtype, args, device, data, vocab_size):
    "(params, tokens/s, model FLOP/s) of `args.steps` timed training steps of `preset` at `dtype`."
    step, cfg, model = our_step(preset, dtype, args, device, data, vocab_size)
    for i in range(args.warmup): step(i)
    if device.type == 'cuda': torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(args.steps): step(args.warmup + i)
    if device.type == 'cuda': torch.cuda.synchronize()
    tok_s = args.steps * cfg.batch_size * cfg.context / (time.perf_counter() - t)
    return param_counts(model)['total'], tok_s, tok_s * flops_per_token(model, cfg.context)

class BaselineBlock(torch.nn.Module):
    "A textbook pre-LN block: LayerNorm, causal self-attention (one qkv Linear), LayerNorm, GELU MLP."
    def __init__(self, d, n_head, context, attention='sdpa'):
        super().__init__()
        self.n_head, self.attention = n_head, attention
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.qkv, self.proj = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.fc, self.fc_proj = torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)
        self.register_buffer('future', torch.ones(context, context, dtype=torch.bool).triu(1), persistent=False)

    def attend(self, q, k, v):
        "SDPA (nanoGPT, and ours), or the lecture's attention written out: scores, mask the future, softmax, weigh the values (minGPT)."
        if self.attention == 'sdpa': return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        T = q.shape[-2]
        att = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
        return att.masked_fill(self.future[:T, :T], float('-inf')).softmax(-1) @ v

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = self.attend(q, k, v)
        x = x + self.proj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.fc_proj(torch.nn.functional.gelu(self.fc(self.ln2(x))))

class BaselineGPT(torch.nn.Module):
    "The plain eager GPT the issue compares against: learned positions, tied head, nothing fused or cached."
    def __init__(self, vocab_size, n_embd, n_layer, n_head, context, attention='sdpa'):
        super().__init__()
        self.tok_emb, self.pos_emb = torch.nn.Embedding(vocab_size, n_embd), torch.nn.Embedding(context, n_embd)
        self.blocks = torch.nn.ModuleList(BaselineBlock(n_embd, n_head, context, attention) for _ in range(n_layer))
        self.ln_f = torch.nn.LayerNorm(n_embd)
        self.head = torch.nn.Linear(n_embd, vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight
        for m in self.modules():
            if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)): torch.nn.init.normal_(m.weight, 0.0, 0.02)

    def forward(self, idx, targets):
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(idx.shape[1], device=idx.device))
        for b in self.blocks: x = b(x)
        logits = self.head(self.ln_f(x))
        return torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))

def baseline_optimizer(model, lr=3e-3, weight_decay=0.1):
    "AdamW as nanoGPT configures it: decay on matrices, none on biases and norms (the same groups as ours), torch's default kernel."
    return torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.95))

def baseline_step(dtype, cfg, device, data, vocab_size, c, attention):
    "One training step of a `BaselineGPT` of the config `c`'s shape, with its own optimizer, on the same batches as ours."
    torch.manual_seed(0)
    base = BaselineGPT(vocab_size, c.n_embd, c.n_layer, c.n_head, cfg.context, attention).to(device)
    bopt = baseline_optimizer(base, cfg.lr, cfg.weight_decay)
    def step(i):
        x, y = data.train_batch(i, cfg.batch_size, cfg.context, seed=cfg.seed, device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == 'bf16'): loss = base(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(base.parameters(), cfg.grad_clip)
        bopt.step(); bopt.zero_grad(set_to_none=True)
    return step

def step_fns(preset, dtype, args, device, data, vocab_size):
    "(ours, SDPA baseline, textbook baseline, cfg, our model): one training step of each, same shape, same batches, each with its own optimizer."
    ours, cfg, model = our_step(preset, dtype, args, device, data, vocab_size)
    sdpa, textbook = (baseline_step(dtype, cfg, device, data, vocab_size, model.config, a) for a in ('sdpa', 'textbook'))
    return ours, sdpa, textbook, cfg, model

def without_attention(step):
    "`step` with each layer's `attend` replaced by its values `v`: everything of our step but the attention, timed alike."
    import tinystories.attention as attention
    def run(i):
        keep, attention.attend = attention.attend, lambda q, k, v, mask=None, dropout_p=0.0: v
        try: step(i)
        finally: attention.attend = keep
    return run

def timed(step, first, n):
    "Seconds of `n` calls step(first), step(first+1), ..."
    t = time.perf_counter()
    for i in range(first, first + n): step(i)
    return time.perf_counter() - t

def vs_baseline(args, device, data, vocab_size, peaks):
    "Print our tokens/s against both baselines' and without our attention, timed in rounds that take the four in a rotating order."
    print('| preset | dtype | ours tok/s | baseline tok/s (SDPA) | ours / baseline | textbook tok/s (attention written out) | ours / textbook | ours MFU '
          '| ours without attention tok/s | ceiling: baseline / ours without attention | our attention ms per layer | ms per layer that 1.5x allows | load avg |\n'
          '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|', flush=True)
    for preset in args.presets:
        for dt in args.dtypes:
            *runs, cfg, model = step_fns(preset, dt, args, device, data, vocab_size)
            runs.append(without_attention(runs[0]))
            tok, n = cfg.batch_size * cfg.context, len(runs)
            t_compile = timed(runs[0], 0, args.warmup)
            for run in runs[1:]: timed(run, 0, args.warmup)
            rows = []
            for r in range(args.rounds):
                first, order = args.warmup + r * args.steps, [(r + j) % n for j in range(n)]  # each run goes first in turn
                secs = {j: timed(runs[j], first, args.steps) for j in order}
                rows.append([args.steps * tok / secs[j] for j in range(n)])
            o, b, t, rest = (float(np.median([row[j] for row in rows])) for j in range(n))
            vs_b, vs_t = (float(np.median([row[0] / row[j] for row in rows])) for j in (1, 2))
            ceiling = float(np.median([row[3] / row[1] for row in rows]))
            mfu = o * flops_per_token(model, cfg.context) / peaks[dt]
            per_layer = lambda seconds: 1000 * seconds / model.config.n_layer
            ours_attn, allowed = per_layer(tok / o - tok / rest), per_layer(tok / b / 1.5 - tok / rest)
            print(f'| {preset} | {dt} | {o:,.0f} | {b:,.0f} | {vs_b:.2f}x | {t:,.0f} | {vs_t:.2f}x | {mfu:.0%} | {rest:,.0f} | {ceiling:.2f}x | {ours_attn:.0f} | {allowed:.0f} | {os.getloadavg()[0]:.1f} |', flush=True)
            if args.compile: print(f'# {preset} {dt}: first {args.warmup} steps (compile included) took {t_compile:.1f} s', flush=True)

def attention_kernels(args, device):
    "Print ms of forward + backward of each attention kernel, per layer, at each preset's head shape."
    from tinystories.model import PRESETS
    from tinystories.attention import attention_by_hand
    from tinystories.fast_attention import causal_attention_in_blocks, fused_attention_library, fused_causal_attention
    T = args.context
    mask = torch.ones(T, T, dtype=torch.bool, device=device).tril()
    kernels = {'SDPA': lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True),
               'attention_by_hand': lambda q, k, v: attention_by_hand(q, k, v, mask),
               'causal_attention_in_blocks': causal_attention_in_blocks}
    if device.type == 'cpu' and fused_attention_library() is not None: kernels['fused_causal_attention'] = fused_causal_attention
    ratios = {'blocks': 'causal_attention_in_blocks', 'fused': 'fused_causal_attention'}
    ratios = {k: n for k, n in ratios.items() if n in kernels}
    print(f'| preset | heads x head size | dtype | ' + ' | '.join(f'{n} ms' for n in kernels) + ''.join(f' | SDPA / {k}' for k in ratios) +
          ' | load avg |\n|---|---|---|' + '---:|' * (len(kernels) + len(ratios) + 1), flush=True)
    for preset in args.presets:
        H = PRESETS[preset]['n_head']; d = PRESETS[preset]['n_embd'] // H
        for dt in args.dtypes:
            dtype = torch.float32 if dt == 'fp32' else torch.bfloat16
            torch.manual_seed(0)
            qkv = [torch.randn(args.batch_size, H, T, d, device=device, dtype=dtype) for _ in range(4)]
            def run(f):
                q, k, v = (t.clone().requires_grad_() for t in qkv[:3])
                t0 = time.perf_counter(); f(q, k, v).backward(qkv[3]); return time.perf_counter() - t0
            for f in kernels.values(): run(f)
            times = {n: [] for n in kernels}
            for r in range(args.rounds):
                names = list(kernels); names = names[r % len(names):] + names[:r % len(names)]  # each kernel goes first in turn
                for n in names: times[n].append(run(kernels[n]))
            ms = {n: 1000 * float(np.median(t)) for n, t in times.items()}
            print(f'| {preset} | {H} x {d} | {dt} | ' + ' | '.join(f'{m:.1f}' for m in ms.values()) +
                  ''.join(f' | {ms["SDPA"] / ms[n]:.2f}x' for n in ratios.values()) + f' | {os.getloadavg()[0]:.1f} |', flush=True)

def generation(args, device, root=Path('.')):
    "Print tokens/s of `generate_ids` at batch 1 and 8, and of the widget's streaming path at batch 1."
    from tinystories.model import preset_config
    from tinystories.generate import generate_ids, stream_tokens
    from tinystories.tokenizer import load_tokenizer
    from tinystories.tokenizer import course_tokenizer
    tokenizer = load_tokenizer(course_tokenizer(root / 'data'))
    n = args.new_tokens
    print(f'| preset | batch | path | new tokens | tokens/s (all sequences) | ms per step | tokens/s, decode on torch\'s {torch.get_num_threads()} threads | one thread / torch\'s | load avg |\n|---|---:|---|---:|---:|---:|---:|---:|---:|', flush=True)
    def rate(batch, threads, r):
        t = time.perf_counter(); k = sum(1 for _ in generate_ids(model, [[0]] * batch, n, seed=r, decode_threads=threads))
        return k, batch * k / (time.perf_counter() - t)
    for preset in args.presets:
        torch.manual_seed(0)
        model = GPT(preset_config(preset, tokenizer.get_vocab_size(), context=max(512, n + 1))).to(device).eval()
        for batch in (1, 8):
            sum(1 for _ in generate_ids(model, [[0]] * batch, 8, seed=0))  # warm-up
            one, many = [], []
            for r in range(args.repeats):  # alternating: the default (one thread per one-token step) and torch's setting
                k, a = rate(batch, 1, r); _, b = rate(batch, None, r); one.append(a); many.append(b)
            print(f'| {preset} | {batch} | generate_ids | {k} | {max(one):,.0f} | {1000 * batch * k / max(one) / k:.1f} | {max(many):,.0f} | '
                  f'{float(np.median([a / b for a, b in zip(one, many)])):.1f}x | {os.getloadavg()[0]:.1f} |', flush=True)
        best, k = math.inf, 0
        for r in range(args.repeats):
            t = time.perf_counter(); k = sum(1 for t_, _ in stream_tokens(model, tokenizer, 'Once upon a time', n, seed=r) if t_ is not None)
            best = min(best, time.perf_counter() - t)
        print(f'| {preset} | 1 | widget stream_tokens | {k} | {k / best:,.0f} | {1000 * best / k:.1f} | | | {os.getloadavg()[0]:.1f} |', flush=True)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--presets', nargs='+', default=['1M', '8M', '28M'])
    p.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16'])
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--context', type=int, default=256)
    p.add_argument('--steps', type=int, default=5)
    p.add_argument('--warmup', type=int, default=2)
    p.add_argument('--vocab-size', type=int, default=None, help='default: the tokenizer in data/tokenizer, else 10867 (our trimmed sample)')
    p.add_argument('--data', default='data/train.bin', help='token file to draw batches from (random ids when missing)')
    p.add_argument('--matmul-n', type=int, default=4096)
    p.add_argument('--compile', action='store_true')
    p.add_argument('--device', default='auto')
    p.add_argument('--vs-baseline', action='store_true', help='ours against the plain eager GPT, alternating rounds')
    p.add_argument('--rounds', type=int, default=5, help='with --vs-baseline: alternating timing rounds')
    p.add_argument('--attention', action='store_true', help='ms of forward + backward of each attention kernel, per layer')
    p.add_argument('--generation', action='store_true', help='tokens/s of generate_ids and of the widget stream')
    p.add_argument('--new-tokens', type=int, default=256)
    p.add_argument('--repeats', type=int, default=2)
    p.add_argument('--threads', type=int, default=None, help='torch threads (default: torch\'s choice)')
    p.add_argument('--malloc-default', action='store_true', help="leave glibc's malloc as it comes (default: keep_freed_memory, as the trainer sets it for CPU runs; it applies to every model in this process)")
    args = p.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    kept = not args.malloc_default and keep_freed_memory()
    device = pick_device(args.device)
    if args.generation:
        print(f'# generation on {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; torch {torch.__version__}; load average {os.getloadavg()}')
        return generation(args, device)
    if args.attention:
        print(f'# attention kernels on {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads; torch {torch.__version__}; '
              f'batch {args.batch_size} x context {args.context}; load average {os.getloadavg()[0]:.2f}')
        return attention_kernels(args, device)
    vocab_size = args.vocab_size
    if vocab_size is None:
        tok = Path('data/tokenizer/tokenizer.json')
        if tok.is_file():
            from tinystories.tokenizer import load_tokenizer
            vocab_size = load_tokenizer(tok).get_vocab_size()
        else: vocab_size = 10867
    data = token_file(args.data, args.context, vocab_size)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads'
    print(f'# bench/train.py on {name}; torch {torch.__version__}; load average {os.getloadavg()[0]:.2f}' if hasattr(os, 'getloadavg') else '')
    print(f'# batch {args.batch_size} x context {args.context}, vocab {vocab_size}, {args.steps} timed steps after {args.warmup}, compile={args.compile}, keep_freed_memory={kept}; '
          f'batches from {data.path}' + ('' if data.path == Path(args.data) else ' (random ids: no token file at --data)'))
    peaks = {dt: peak_matmul_flops(torch.float32 if dt == 'fp32' else torch.bfloat16, device, args.matmul_n) for dt in args.dtypes}
    for dt, f in peaks.items(): print(f'# peak {dt} matmul ({args.matmul_n}^3): {f / 1e9:,.1f} GFLOP/s')
    if args.vs_baseline: return vs_baseline(args, device, data, vocab_size, peaks)
    print(f"| preset | params | dtype | tokens/s | model GFLOP/s | peak GFLOP/s | MFU |\n|---|---:|---|---:|---:|---:|---:|")
    for preset in args.presets:
        for dt in args.dtypes:
            n, tok_s, flops = bench(preset, dt, args, device, data, vocab_size)
            print(f'| {preset} | {n / 1e6:.1f}M | {dt} | {tok_s:,.0f} | {flops / 1e9:,.1f} | {peaks[dt] / 1e9:,.1f} | {flops / peaks[dt]:.0%} |', flush=True)

if __name__ == '__main__': main()
