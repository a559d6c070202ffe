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
"""
import argparse, math, os, platform, time
from pathlib import Path
import numpy as np, torch
from tinystories.model import GPT, param_counts
from tinystories.loader import TokenFile
from tinystories.train import resolve_config, model_config, make_optimizer, accumulate_gradients, pick_device

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
    tmp = Path(os.environ.get('TMPDIR', '/tmp'))/'bench-train-random.bin'
    np.random.default_rng(0).integers(0, vocab_size, 1 << 20, dtype=np.uint16).tofile(tmp)
    return TokenFile(tmp, vocab_size=vocab_size, context=context)

def bench(preset, dtype, args, device, data, vocab_size):
    "(params, tokens/s, model FLOP/s) of `args.steps` timed training steps of `preset` at `dtype`."
    cfg = resolve_config(preset=preset, batch_size=args.batch_size, context=args.context, dtype=dtype, compile=args.compile, device=str(device))
    torch.manual_seed(0)
    model = GPT(model_config(cfg, vocab_size)).to(device)
    net = torch.compile(model) if cfg.compile else model
    opt = make_optimizer(model, cfg)
    def step(i):
        accumulate_gradients(net, data, i, cfg, 0, 1, device)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step(); opt.zero_grad(set_to_none=True)
    for i in range(args.warmup): step(i)
    if device.type == 'cuda': torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(args.steps): step(args.warmup + i)
    if device.type == 'cuda': torch.cuda.synchronize()
    tok_s = args.steps * cfg.batch_size * cfg.context / (time.perf_counter() - t)
    return param_counts(model)['total'], tok_s, tok_s * flops_per_token(model, cfg.context)

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
    args = p.parse_args()
    device = pick_device(args.device)
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
    print(f'# batch {args.batch_size} x context {args.context}, vocab {vocab_size}, {args.steps} timed steps after {args.warmup}, compile={args.compile}; '
          f'batches from {data.path}' + ('' if data.path == Path(args.data) else ' (random ids: no token file at --data)'))
    peaks = {dt: peak_matmul_flops(torch.float32 if dt == 'fp32' else torch.bfloat16, device, args.matmul_n) for dt in args.dtypes}
    for dt, f in peaks.items(): print(f'# peak {dt} matmul ({args.matmul_n}^3): {f / 1e9:,.1f} GFLOP/s')
    print(f"| preset | params | dtype | tokens/s | model GFLOP/s | peak GFLOP/s | MFU |\n|---|---:|---|---:|---:|---:|---:|")
    for preset in args.presets:
        for dt in args.dtypes:
            n, tok_s, flops = bench(preset, dt, args, device, data, vocab_size)
            print(f'| {preset} | {n / 1e6:.1f}M | {dt} | {tok_s:,.0f} | {flops / 1e9:,.1f} | {peaks[dt] / 1e9:,.1f} | {flops / peaks[dt]:.0%} |', flush=True)

if __name__ == '__main__': main()
