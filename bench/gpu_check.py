"""One check of the CUDA path, run in one go on a GPU: agreement with the CPU, training throughput and MFU, DDP, generation, evaluation against training, and the paper-scale estimate.

    python bench/gpu_check.py [--device cuda] [--out bench/results/gpu-DEVICE-DATE.json] [--budget 480]
    python bench/gpu_check.py --dry-run --out FILE.json     # the same code paths on the CPU, tiny shapes (CI runs this)

On one CUDA device, in under 8 minutes (--budget: later runs that would not fit are skipped and say so):

- **Agreement.** The same weights on the CPU and on the device: the losses of a few training steps (fp32 and bf16, the
  package's fused AdamW, batches through `TokenFile.train_batch`, whose CUDA path copies through pinned memory), the
  logits (fp32 within 1e-4; bf16 autocast within a few bf16 roundings of the largest logit), their greedy tokens, and
  greedy generation (`generate_ids`); on the device, generation with the KV cache against the full pass. A greedy
  token is checked as the other side's argmax (to 1e-4 of its best logit), so near-ties cannot fail a correct pair.
- **Training throughput.** `train` itself (the trainer a user runs, data loading and all) on the 1M, 8M and 28M presets at
  the batch and context of `11_study`'s recipe, bf16, without and with `torch.compile`; where memory asks, the same
  tokens a step in smaller micro-batches with gradient accumulation. Tokens/s, MFU against the device's bf16 peak
  (`PEAK_BF16_TFLOPS`, else a measured large matrix product), peak memory, compile time and graph breaks.
- **DDP.** `train` under `torchrun` on every visible GPU (two processes on gloo in the dry run) for 20 steps in fp32,
  its losses against the single-process run on the same batches. With one GPU torchrun starts one process, which trains
  without DistributedDataParallel; the worker then checks NCCL and DDP on that process group of one as well.
- **Generation.** New tokens/s of `generate_ids` for one sequence and for 32, fp32 and bf16 weights, beside
  transformers' `generate` on the same weights exported with `tinystories.hf.to_neox` (greedy, no early stop), and
  whether every token ours wrote is transformers' argmax.
- **Evaluation against training.** For the 1M, 3M and 8M presets at the trainer's default shape (16 x 128) and a
  larger one: tokens/s of the training step (bf16 autocast, AdamW), of its forward pass alone, of the evaluations during training (windows, bf16
  autocast), of the final evaluation (windows, fp32) and of story scoring (`story_scores`, weights in fp32 and bf16),
  each as a multiple of the step's (issue 29's goal: at least 3x), the median of a few rounds that take them in turn.
- **The paper-scale estimate.** The 28M preset's best measured tokens/s turned into wall time for the recipe's tokens,
  on one GPU and on eight at the same efficiency (evaluations and checkpoints not counted).

Data: the course's sample through the package (`course_tokenizer`, `course_stories`, `prepare`), nothing downloaded
when `data/` holds it (on a machine without internet, carry `data/course-tokenizer` and `data/tinystories`). The
recipe is read from `nbs/11_study.ipynb`'s RECIPE cell. Prints one table and writes the JSON (after every section, so
a run cut short keeps what it measured). Exits 1 when a check fails or a section breaks.
"""
import argparse, copy, datetime, functools, gc, itertools, json, os, platform, re, signal, subprocess, sys, tempfile, time, tomllib, traceback, warnings
from pathlib import Path
import torch
import torch.distributed as dist

ROOT = Path(__file__).resolve().parents[1]
# bench/ is not a package of modules to import: its scripts' names (bench/kernels.py) would shadow installed packages (transformers imports `kernels`)
sys.path[:] = [p for p in sys.path if Path(p or '.').resolve() != Path(__file__).resolve().parent]
os.environ.setdefault('TQDM_DISABLE', '1')  # the trainer's progress bars would bury the report (read when tqdm is imported)
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))  # this checkout's package, also under torchrun

# The package's public names this check uses, in one place.
from tinystories.model import GPT, preset_config, param_counts
from tinystories.config import resolve_config, TrainConfig
from tinystories.optim import make_optimizer
from tinystories.train import train, lm_loss, autocast
from tinystories.loader import TokenFile
from tinystories.generate import generate_ids
from tinystories.tokenizer import course_tokenizer, load_tokenizer, eot_id
from tinystories.data import course_stories, iter_stories
from tinystories.pretokenize import prepare

# Dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, by a pattern of `torch.cuda.get_device_name()`; first match wins.
PEAK_BF16_TFLOPS = [
    (r'H100.*NVL', 835, "NVIDIA H100 NVL datasheet: 1,671 TFLOPS bf16 with sparsity, half of it dense"),
    (r'H100.*PCIe', 756, "NVIDIA H100 datasheet, PCIe column: 1,513 TFLOPS bf16 with sparsity, half of it dense"),
    (r'H200.*NVL', 835, "NVIDIA H200 datasheet, NVL column: 1,671 TFLOPS bf16 with sparsity, half of it dense"),
    (r'GH200', 989, "NVIDIA GH200 datasheet: the H100 SXM's 989 TFLOPS dense bf16"),
    (r'H200', 989, "NVIDIA H200 datasheet, SXM column: 1,979 TFLOPS bf16 with sparsity, half of it dense"),
    (r'H100', 989, "NVIDIA H100 datasheet, SXM column (the 'H100 80GB HBM3'): 1,979 TFLOPS bf16 with sparsity, half of it dense"),
    (r'A100', 312, "NVIDIA A100 datasheet: 312 TFLOPS bf16 dense (624 with sparsity), SXM and PCIe alike"),
    (r'L40S', 362, "NVIDIA L40S datasheet: 362 TFLOPS bf16 dense (733 with sparsity)"),
    (r'\bL4\b', 121, "NVIDIA L4 datasheet: 242 TFLOPS bf16 with sparsity, half of it dense"),
    (r'\bA10\b', 125, "NVIDIA A10 datasheet: 125 TFLOPS bf16 dense (250 with sparsity)"),
    (r'RTX 4090', 165, "NVIDIA Ada Lovelace architecture whitepaper, GeForce RTX 4090: 165.2 TFLOPS bf16 with fp32 accumulate, dense"),
]

def log(*a): print(*a, file=sys.stderr, flush=True)

def utc_now(): return datetime.datetime.now(datetime.timezone.utc)

def write_json_atomic(path, obj):
    "Write `obj` as JSON to `path` through a temporary file and a rename: a reader never sees half a file."
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.tmp')
    tmp.write_text(json.dumps(obj, indent=1, default=str) + '\n')
    os.replace(tmp, path)

def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)

# ---------------------------------------------------------------------------------------------------------------- setup

def environment(device):
    "What the numbers depend on: the device, the software, the CPU."
    cpu = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines() if l.startswith('model name')), platform.processor()) \
          if Path('/proc/cpuinfo').is_file() else platform.processor()
    env = dict(date=utc_now().strftime('%Y-%m-%d %H:%M UTC'), torch=torch.__version__, python=platform.python_version(),
               cpu=cpu, cpu_cores=os.cpu_count(), torch_threads=torch.get_num_threads(), device=str(device))
    if device.type == 'cuda':
        p = torch.cuda.get_device_properties(device)
        env.update(gpu=torch.cuda.get_device_name(device), gpus=torch.cuda.device_count(), cuda=torch.version.cuda,
                   capability=f'{p.major}.{p.minor}', gpu_memory_gib=round(p.total_memory / 2**30, 1), bf16=torch.cuda.is_bf16_supported(),
                   nccl=nccl_version())
    try:
        import transformers; env['transformers'] = transformers.__version__
    except ImportError: env['transformers'] = None
    return env

def nccl_version():
    try:
        v = torch.cuda.nccl.version()
        return '.'.join(map(str, v)) if isinstance(v, tuple) else str(v)
    except Exception: return None

def device_slug(env):
    name = env.get('gpu') or 'cpu'
    return re.sub(r'[^a-z0-9]+', '-', name.lower().replace('nvidia', '')).strip('-')

def read_recipe(root=ROOT):
    "(`11_study`'s training recipe as a dict, where it came from): its RECIPE cell, else the numbers that cell held when this was written."
    nb = root/'nbs'/'11_study.ipynb'
    try:
        for cell in json.loads(nb.read_text())['cells']:
            if m := re.search(r"RECIPE\s*=\s*'''\\?\n(.*?)'''", ''.join(cell['source']), re.S): return tomllib.loads(m.group(1)), f'{nb.relative_to(root)} (RECIPE)'
    except (OSError, ValueError, KeyError) as e: log(f'{nb}: {e}; using the built-in copy of the recipe')
    return dict(preset='28M', max_steps=10000, batch_size=256, context=512, lr=1e-3, min_lr=1e-4, warmup_steps=500, dtype='bf16', compile=True), 'built-in copy'

def course_data(tmp, data_dir):
    "(train.bin, valid.bin, tokenizer folder): the course's sample stories, tokenized by the course's tokenizer into `tmp`, through the package."
    tok = course_tokenizer(data_dir)
    files = {}
    for split in ('train', 'valid'):
        files[split] = prepare(course_stories(split, 'v1', data_dir), tok, Path(tmp)/f'{split}.bin')
    return files['train'], files['valid'], tok

class Check:
    "A pass/fail list: each check a name, a measured value, its limit and a verdict."
    def __init__(self): self.rows = []
    def add(self, section, name, value, limit, ok, note=''):
        self.rows.append(dict(section=section, name=name, value=value, limit=limit, ok=bool(ok), note=note))
        log(f"  [{'ok' if ok else 'FAIL'}] {name}: {fmt(value)} (limit {fmt(limit)}) {note}")
        return ok

def fmt(v):
    if isinstance(v, float): return f'{v:.3g}' if (v != 0 and (abs(v) < 1e-2 or abs(v) >= 1e5)) else f'{v:.4g}'
    return str(v)

# ------------------------------------------------------------------------------------------------------------ agreement

def train_losses(model, data, cfg, steps, device):
    "The losses of `steps` training steps of `model` on `device` as the trainer takes them: batches by (seed, step), autocast, clipping, fused AdamW."
    opt, losses = make_optimizer(model, cfg), []
    for step in range(steps):
        x, y = data.train_batch(step, cfg.batch_size, cfg.context, seed=cfg.seed, device=device)
        with autocast(device, cfg.dtype): logits = model(x)
        loss = lm_loss(logits, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step(); opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses

def steps_tokens(gen):
    "The sequences `generate_ids` wrote, one list of ids per prompt."
    return [list(s) for s in zip(*list(gen))]

# Two correct implementations may pick different tokens where the two best logits are closer than their rounding
# differences (near-ties happen among thousands of logits, most of all in a model with random weights), and a
# generation that picked differently goes on differently. So a greedy generation is checked against a model's logits
# on the very tokens it wrote: each token must be that model's argmax, to within `tol` of the largest logit.
@torch.no_grad()
def greedy_shortfall(logits_of, prompts, gens, device):
    "The most any token of `gens` (each continuing its prompt in `prompts`, all prompts of one length) falls short of the best logit that `logits_of(ids)` gives at its place: 0 when every token is the argmax."
    seq = torch.tensor([p + g for p, g in zip(prompts, gens)], device=device)
    logits = logits_of(seq[:, :-1]).float()[:, len(prompts[0]) - 1:]
    chosen = logits.gather(-1, torch.tensor(gens, device=device)[..., None])[..., 0]
    return (logits.max(-1).values - chosen).max().item()

def differing(a, b): return sum(x != y for p, q in zip(a, b) for x, y in zip(p, q))

def argmax_share(ref, other, tol):
    "(share of positions where `other`'s argmax is `ref`'s, positions compared): those where `ref`'s two best logits are more than `tol` apart."
    top2 = ref.topk(2, dim=-1).values
    clear = (top2[..., 0] - top2[..., 1]) > tol
    same = (ref.argmax(-1) == other.argmax(-1))[clear]
    return (same.float().mean().item() if same.numel() else 1.0), int(clear.sum())

def agreement(ctx):
    "The same weights on the CPU and on the device: training losses, logits, greedy tokens; the KV cache against the full pass on the device."
    s, dev, cpu, chk, sec = ctx.shape['agree'], ctx.device, torch.device('cpu'), ctx.checks, 'agreement'
    data = TokenFile(ctx.train_bin, vocab_size=ctx.vocab_size)
    x_cpu, _ = data.train_batch(0, 4, s['context'])
    x_dev, _ = data.train_batch(0, 4, s['context'], device=dev)
    chk.add(sec, f'loader: a batch on {dev.type} equals the CPU batch', int((x_dev.cpu() != x_cpu).sum()), 0, x_dev.device.type == dev.type and torch.equal(x_dev.cpu(), x_cpu),
            'through pinned memory, non-blocking' if dev.type == 'cuda' else '')
    torch.manual_seed(0)
    base = GPT(preset_config(s['preset'], ctx.vocab_size, context=s['context'], **s.get('overrides', {})))
    trained = {}
    for dtype, tol in (('fp32', 1e-3), ('bf16', 2e-2)):
        cfg = resolve_config(preset=s['preset'], batch_size=s['batch'], context=s['context'], lr=1e-3, dtype=dtype, device=str(dev))
        on_cpu, on_dev = copy.deepcopy(base), copy.deepcopy(base).to(dev)
        a, b = train_losses(on_cpu, data, cfg, s['steps'], cpu), train_losses(on_dev, data, cfg, s['steps'], dev)
        diff = max(abs(p - q) for p, q in zip(a, b))
        chk.add(sec, f'training losses, {s["steps"]} steps, {dtype}: max |CPU - {dev.type}|', diff, tol, diff <= tol, f'losses {a[0]:.4f} .. {a[-1]:.4f}')
        trained[dtype] = on_cpu
    model_cpu = trained['fp32'].eval()
    model_dev = copy.deepcopy(model_cpu).to(dev).eval()
    x = x_cpu[:, :s['context']]
    with torch.no_grad():
        lc, ld = model_cpu(x), model_dev(x.to(dev)).cpu()
        diff = (lc - ld).abs().max().item()
        chk.add(sec, f'fp32 logits: max |CPU - {dev.type}|', diff, 1e-4, diff <= 1e-4, f'largest logit {lc.abs().max().item():.3g}')
        same, n_clear = argmax_share(lc, ld, 2 * max(diff, 1e-6))
        chk.add(sec, 'fp32 greedy token of each position: share equal', same, 1.0, same == 1.0, f'{n_clear} of {lc.shape[0] * lc.shape[1]} positions without a near-tie')
        with autocast(cpu, 'bf16'): bc = model_cpu(x)
        with autocast(dev, 'bf16'): bd = model_dev(x.to(dev)).cpu()
        rel = ((bc - bd).abs().max() / lc.abs().max()).item()
        # bf16 keeps 8 significant bits (a rounding is at most 2^-9 relative); 8 layers of rounded products add a few
        chk.add(sec, f'bf16 logits: max |CPU - {dev.type}| / largest fp32 logit', rel, 2**-5, rel <= 2**-5,
                f'each against fp32: CPU {((bc - lc).abs().max() / lc.abs().max()).item():.3g}, {dev.type} {((bd - lc).abs().max() / lc.abs().max()).item():.3g}')
        same, n_clear = argmax_share(bc, bd, 2 * (bc - bd).abs().max().item())
        chk.add(sec, 'bf16 greedy token of each position: share equal', same, 1.0, same == 1.0, f'{n_clear} of {bc.shape[0] * bc.shape[1]} positions without a near-tie')
    n, prompts = s['new_tokens'], x[:2, :8].tolist()
    g_cpu = steps_tokens(generate_ids(model_cpu, prompts, n, temperature=0))
    g_dev = steps_tokens(generate_ids(model_dev, prompts, n, temperature=0))
    short = greedy_shortfall(model_cpu, prompts, g_dev, cpu)
    chk.add(sec, f'greedy generation on {dev.type} ({n} tokens x 2): each token the CPU model\'s argmax, short by', short, 1e-4, short <= 1e-4,
            f'{differing(g_cpu, g_dev)} tokens differ from the CPU\'s own generation')
    g_full = steps_tokens(generate_ids(model_dev, prompts, n, temperature=0, use_cache=False))
    short = greedy_shortfall(model_dev, prompts, g_dev, dev)
    chk.add(sec, f'{dev.type}: generation with the KV cache: each token the full pass\'s argmax, short by', short, 1e-4, short <= 1e-4,
            f'{differing(g_dev, g_full)} tokens differ from generation without the cache')
    with torch.no_grad():
        seq = x[:2, :s['context'] // 2].to(dev)
        full = model_dev(seq)
        cache = model_dev.new_cache(2)
        stepped = torch.cat([model_dev(seq[:, :8], cache=cache)] + [model_dev(seq[:, i:i + 1], cache=cache) for i in range(8, seq.shape[1])], 1)
        diff = (stepped - full).abs().max().item()
        chk.add(sec, f'{dev.type}: fp32 logits token by token on the cache vs the full pass', diff, 1e-4, diff <= 1e-4)
    return dict(shape=s)

# ----------------------------------------------------------------------------------------------------------- throughput

def flops_per_token(config, context):
    "Training FLOPs per token (PaLM, Chowdhery et al. 2022, appendix B): 6 N, N the matmul parameters (the head included), + 12 L T C for attention."
    n = param_counts(config)['non_embedding'] + config.vocab_size * config.n_embd
    return 6 * n + 12 * config.n_layer * context * config.n_embd

def measured_peak_tflops(device, n, reps=10):
    "TFLOP/s of an n x n x n bf16 matrix product on `device`, the best of `reps` after a warm-up."
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(2): a @ b
    best = float('inf')
    for _ in range(reps):
        sync(device); t = time.perf_counter(); a @ b; sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e12

def peak_tflops(env, device, matmul_n):
    "(dense bf16 peak TFLOP/s, where it comes from): the table's value for this GPU, else a measured large matrix product."
    name = env.get('gpu', '')
    for pattern, tflops, source in PEAK_BF16_TFLOPS:
        if re.search(pattern, name): return tflops, source
    return float(f'{measured_peak_tflops(device, matmul_n):.3g}'), f'measured: {matmul_n}^3 bf16 matrix product on {name or env["cpu"]}'

def read_metrics(out):
    path = Path(out)/'metrics.jsonl'
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.is_file() else []

def run_train(ctx, name, **fields):
    "`train` of a fresh run `name` on the course's token files, with `fields` of its TrainConfig; (its metrics records, wall seconds)."
    out = ctx.tmp/f'run-{name}'
    cfg = resolve_config(train=str(ctx.train_bin), valid=str(ctx.valid_bin), tokenizer=str(ctx.tok_dir), out=str(out), device=str(ctx.device),
                         eval_every=10**9, ckpt_every=10**9, keep_last=1, eval_batches=1, sample_tokens=0, **fields)
    t = time.perf_counter()
    train(cfg)
    return read_metrics(out), time.perf_counter() - t

def out_of_memory(e):
    return isinstance(e, getattr(torch, 'OutOfMemoryError', ())) or 'out of memory' in str(e).lower()

def throughput_run(ctx, preset, compiled):
    "One preset's training throughput, bf16, at the recipe's tokens a step, halving the micro-batch while memory runs out."
    s, r = ctx.shape['train'], ctx.recipe
    batch, accum, over = s['batch'], 1, s.get('overrides', {})
    config = preset_config(preset, ctx.vocab_size, context=s['context'], **over)
    while True:
        gc.collect()
        if ctx.device.type == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(ctx.device)
        if compiled:
            torch._dynamo.reset(); counters.clear()
        try:
            recs, wall = run_train(ctx, f'{preset}-{"compiled" if compiled else "eager"}-{batch}x{accum}', preset=preset, batch_size=batch, grad_accum=accum,
                                   context=s['context'], dtype='bf16', compile=compiled, stop_after=s['steps'], max_steps=r['max_steps'],
                                   lr=r['lr'], min_lr=r.get('min_lr'), warmup_steps=r['warmup_steps'], **over)
            break
        except Exception as e:
            if not out_of_memory(e) or batch == 1: raise
            log(f'  {preset}: out of memory at micro-batch {batch}; trying {batch // 2} x {accum * 2}')
            batch, accum = batch // 2, accum * 2
    tokens_step = batch * accum * s['context']
    secs = [tokens_step / rec['tok_per_s'] for rec in recs if 'tok_per_s' in rec]
    warm = s['warmup_compiled' if compiled else 'warmup']
    steady = secs[warm:]
    tok_s = tokens_step * len(steady) / sum(steady)
    row = dict(preset=preset, compile=compiled, params=param_counts(config)['total'], micro_batch=batch, grad_accum=accum, context=s['context'],
               tokens_per_step=tokens_step, steps=len(secs), timed_steps=len(steady), tok_s=round(tok_s, 1),
               step_ms=round(1000 * sum(steady) / len(steady), 2), first_steps_s=[round(x, 3) for x in secs[:warm]], wall_s=round(wall, 1),
               flops_per_token=flops_per_token(config, s['context']))
    row['mfu'] = tok_s * row['flops_per_token'] / (ctx.peak_tflops * 1e12)
    row['peak_mem_gib'] = round(torch.cuda.max_memory_allocated(ctx.device) / 2**30, 2) if ctx.device.type == 'cuda' else None
    if compiled:
        row['compile_s'] = round(max(0.0, sum(secs[:warm]) - warm * sum(steady) / len(steady)), 1)
        breaks = counters['graph_break']
        row['graph_breaks'] = sum(breaks.values())
        row['graph_break_reasons'] = sorted({k.strip().splitlines()[0][:160] for k in breaks})
        row['graphs'] = counters['stats'].get('unique_graphs', None)
    return row

def throughput(ctx):
    "Training throughput of the presets in bf16, eager then compiled, while the budget allows."
    s, rows = ctx.shape['train'], []
    plan = [(p, False) for p in s['presets']] + [(p, True) for p in reversed(s['presets']) if ctx.compile and (p in s['compile_presets'])]
    for preset, compiled in plan:
        need = s['need_compiled_s' if compiled else 'need_eager_s']
        if ctx.time_left() < need:
            rows.append(dict(preset=preset, compile=compiled, skipped=f'{ctx.time_left():.0f} s of the budget left, {need} s needed'))
            log(f'  {preset} {"compiled" if compiled else "eager"}: skipped (budget)')
            continue
        log(f'  training {preset} {"compiled" if compiled else "eager"} ...')
        try: row = throughput_run(ctx, preset, compiled)
        except Exception as e:
            ctx.errors.append(f'throughput {preset} compile={compiled}: {type(e).__name__}: {e}')
            log(traceback.format_exc())
            row = dict(preset=preset, compile=compiled, error=f'{type(e).__name__}: {str(e)[:300]}')
        rows.append(row)
        ctx.save()
    return rows

# ------------------------------------------------------------------------------------------------------------------ DDP

def backend_for(device):
    "The collective backend for tensors on `device`: NCCL for CUDA, gloo for the CPU."
    return 'nccl' if torch.device(device).type == 'cuda' else 'gloo'

def distributed_train():
    "What trains under torchrun: `run_training` where the trainer's command has its own module (joining the process group there), else `train`, which joins it itself."
    try: from tinystories.trainer import run_training
    except ImportError: return train
    return run_training

def ddp_worker(cfg_path):
    "Under torchrun: `train` the run of the JSON config at `cfg_path` (DistributedDataParallel when there are several processes); with one process on a GPU, check NCCL and DDP on a process group of one."
    cfg = TrainConfig(**json.loads(Path(cfg_path).read_text()))
    distributed_train()(cfg)
    world = int(os.environ.get('WORLD_SIZE', 1))
    if world == 1 and torch.device(cfg.device).type == 'cuda':
        device = torch.device('cuda', int(os.environ.get('LOCAL_RANK', 0)))
        torch.cuda.set_device(device)
        dist.init_process_group(backend_for(device))
        try:
            t = torch.arange(4.0, device=device); dist.all_reduce(t)
            torch.manual_seed(0)
            model = GPT(preset_config('1M', 512, context=64)).to(device)
            ddp = torch.nn.parallel.DistributedDataParallel(copy.deepcopy(model), device_ids=[device.index])
            x = torch.randint(0, 512, (4, 64), device=device)
            for m in (model, ddp): m(x).float().square().mean().backward()
            diff = max((p.grad - q.grad).abs().max().item() for p, q in zip(model.parameters(), ddp.module.parameters()))
            print('DDP-ONE ' + json.dumps(dict(backend=dist.get_backend(), all_reduce_ok=t.tolist() == [0.0, 1.0, 2.0, 3.0], grad_max_diff=diff)), flush=True)
        finally: dist.destroy_process_group()

def ddp(ctx):
    "`train` under torchrun on every visible GPU (2 CPU processes in the dry run) against the single-process run: the same losses."
    s, chk, sec = ctx.shape['ddp'], ctx.checks, 'ddp'
    n = torch.cuda.device_count() if ctx.device.type == 'cuda' else 2
    fields = dict(preset=s['preset'], batch_size=s['batch_per_process'] * n, context=s['context'], dtype='fp32', compile=False,
                  stop_after=s['steps'], max_steps=10 * s['steps'], lr=1e-3, warmup_steps=2, **s.get('overrides', {}))  # stopped, not finished: no final evaluation
    single, _ = run_train(ctx, 'ddp-single', **fields)
    out = ctx.tmp/'run-ddp-torchrun'
    cfg = resolve_config(train=str(ctx.train_bin), valid=str(ctx.valid_bin), tokenizer=str(ctx.tok_dir), out=str(out), device=ctx.device.type,
                         eval_every=10**9, ckpt_every=10**9, keep_last=1, eval_batches=1, sample_tokens=0, **fields)
    cfg_path = ctx.tmp/'ddp-config.json'
    cfg_path.write_text(json.dumps(cfg.__dict__))
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc_per_node={n}', str(Path(__file__).resolve()), '--ddp-worker', str(cfg_path)]
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')]))}
    t = time.perf_counter()
    # a session of its own: on a timeout the whole group goes (torchrun's workers too, which would keep the GPU otherwise)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    limit = min(s['timeout_s'], max(30, ctx.time_left()))
    try: stdout, stderr = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        stdout, stderr = p.communicate()
        tail = (stdout + stderr)[-3000:]
        chk.add(sec, f'torchrun --nproc_per_node {n}: finishes within {limit:.0f} s', limit, s['timeout_s'], False, tail[-300:])
        return dict(processes=n, backend=backend_for(ctx.device), returncode='timeout', output_tail=tail)
    wall = time.perf_counter() - t
    res = dict(processes=n, backend=backend_for(ctx.device), wall_s=round(wall, 1), returncode=p.returncode)
    if p.returncode != 0:
        res['output_tail'] = (stdout + stderr)[-3000:]
        chk.add(sec, f'torchrun --nproc_per_node {n}: exits 0', p.returncode, 0, False, res['output_tail'][-300:])
        return res
    multi = read_metrics(out)
    a, b = [r['loss'] for r in single if 'loss' in r], [r['loss'] for r in multi if 'loss' in r]
    diff = max(abs(x - y) for x, y in zip(a, b)) if len(a) == len(b) and a else float('inf')
    res.update(steps=len(b), loss_max_diff=diff, first_last_loss=[a[0], a[-1]] if a else None)
    chk.add(sec, f'{len(b)} steps, {n} process(es) ({res["backend"]}) vs one: max |loss diff|', diff, 1e-4, diff <= 1e-4 and len(a) == s['steps'],
            'DDP needs 2+ processes: one GPU trains without it' if n == 1 else '')
    if one := next((json.loads(l[len('DDP-ONE '):]) for l in stdout.splitlines() if l.startswith('DDP-ONE ')), None):
        res['one_process_group'] = one
        chk.add(sec, f'DDP on a process group of one ({one["backend"]}): all-reduce and gradients', one['grad_max_diff'], 1e-6,
                one['all_reduce_ok'] and one['grad_max_diff'] <= 1e-6)
    return res

# ----------------------------------------------------------------------------------------------------------- generation

def timed(device, fn):
    sync(device); t = time.perf_counter(); out = fn(); sync(device)
    return time.perf_counter() - t, out

def generation(ctx):
    "New tokens/s of `generate_ids` and of transformers' `generate` on the same weights, greedy, for 1 and 32 sequences."
    from tinystories.hf import to_neox
    import transformers
    transformers.logging.set_verbosity_error()
    s, dev, chk, rows = ctx.shape['gen'], ctx.device, ctx.checks, []
    torch.manual_seed(0)
    base = GPT(preset_config(s['preset'], ctx.vocab_size, context=s['context'], **s.get('overrides', {}))).eval()
    eot = eot_id(load_tokenizer(ctx.tok_dir))
    hf_base = to_neox(base, eot)
    n = s['new_tokens']
    for dtype in (torch.float32, torch.bfloat16):
        ours, theirs = copy.deepcopy(base).to(dev, dtype), copy.deepcopy(hf_base).to(dev, dtype).eval()
        for B in s['batches']:
            prompts = [[1 + i] for i in range(B)]  # one-token prompts; eot=None: no sequence ends early
            ids = torch.tensor(prompts, device=dev)
            def run_ours(k): return steps_tokens(generate_ids(ours, prompts, k, temperature=0))
            def run_theirs(k):
                with torch.inference_mode():
                    out = theirs.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=k, min_new_tokens=k, do_sample=False, pad_token_id=eot)
                return out[:, 1:].tolist()
            run_ours(4); run_theirs(4)  # warm-up: kernels chosen, caches allocated
            t_ours, tok_ours = timed(dev, lambda: run_ours(n))
            t_theirs, tok_theirs = timed(dev, lambda: run_theirs(n))
            row = dict(dtype=str(dtype).replace('torch.', ''), batch=B, new_tokens=n, ours_tok_s=round(B * n / t_ours, 1), transformers_tok_s=round(B * n / t_theirs, 1))
            row['ratio'] = round(row['ours_tok_s'] / row['transformers_tok_s'], 2)
            row['same_tokens'] = tok_ours == tok_theirs
            rows.append(row)
            log(f'  generation {row}')
            if dtype == torch.float32:
                short = greedy_shortfall(lambda ids: theirs(ids).logits, prompts, tok_ours, dev)
                chk.add('generation', f'fp32, batch {B}: each token ours wrote is transformers\' argmax, short by', short, 1e-4, short <= 1e-4,
                        f'{differing(tok_ours, tok_theirs)} tokens differ from transformers\' own generation')
    return rows

# ----------------------------------------------------------------------------------------------------------- evaluation

def bench_script(name):
    "The module of the script `bench/name.py`, loaded from its file (bench/ stays off sys.path, above)."
    import importlib.util
    spec = importlib.util.spec_from_file_location(f'bench_{name}', ROOT/'bench'/f'{name}.py')
    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    return module

def evaluation_rates(ctx, preset, batch, context, stories, valid):
    "One preset's training step and evaluations on the device, by `bench/evaluate.py`'s own measurement: tokens/s, and each evaluation's multiple of the step's."
    s = ctx.shape['eval']
    torch.manual_seed(0)
    model = GPT(preset_config(preset, ctx.vocab_size, context=context, **s.get('overrides', {}))).to(ctx.device)
    rates = bench_script('evaluate').evaluation_rates(model, load_tokenizer(ctx.tok_dir), stories, valid, batch, context, s['steps'], s['windows'], s['rounds'], ctx.device)
    row = dict(preset=preset, batch=batch, context=context, **{f'{k}_tok_s': round(v, 1) for k, v in rates.items()})
    row.update({f'{k}_x': round(v / rates['train'], 2) for k, v in rates.items() if k != 'train'})
    return row

def evaluation(ctx):
    "Evaluation tokens/s against the training step's for each preset and shape, while the budget allows."
    s, rows = ctx.shape['eval'], []
    stories = list(itertools.islice(iter_stories(course_stories('valid', 'v1', ctx.data_dir)), s['stories']))
    for batch, context in s['shapes']:
        valid = TokenFile(ctx.valid_bin, vocab_size=ctx.vocab_size, context=context)
        for preset in s['presets']:
            if ctx.time_left() < s['need_s']:
                rows.append(dict(preset=preset, batch=batch, context=context, skipped=f'{ctx.time_left():.0f} s of the budget left, {s["need_s"]} s needed'))
                continue
            rows.append(evaluation_rates(ctx, preset, batch, context, stories, valid))
            log(f'  evaluation {rows[-1]}')
            ctx.save()
    return rows

# ------------------------------------------------------------------------------------------------------------- estimate

def estimate(ctx):
    "The recipe's tokens at the 28M preset's best measured tokens/s, on one GPU and on eight at the same efficiency."
    r = ctx.recipe
    tokens = r['max_steps'] * r['batch_size'] * r['context'] * r.get('grad_accum', 1)
    runs = [row for row in ctx.results.get('throughput', []) if row.get('preset') == r['preset'] and 'tok_s' in row]
    if not runs: return dict(tokens=tokens, note=f'no throughput of {r["preset"]} measured')
    best = max(runs, key=lambda row: row['tok_s'])
    h1 = tokens / best['tok_s'] / 3600
    return dict(preset=r['preset'], tokens=tokens, tok_s=best['tok_s'], compile=best['compile'], hours_1_gpu=round(h1, 3), hours_8_gpus=round(h1 / 8, 3),
                note='training steps only (no evaluations, checkpoints or start-up); eight GPUs assumed as efficient as one' +
                     ('; DRY RUN: tiny shapes on a CPU, the hours mean nothing' if ctx.dry else ''))

# ---------------------------------------------------------------------------------------------------------------- table

def table(res):
    "The printed report."
    env, L = res['env'], []
    where = f"{env.get('gpu', 'CPU (dry run)')}" + (f" x{env['gpus']}, CUDA {env['cuda']}" if 'gpu' in env else '')
    L.append(f"gpu_check on {where}; torch {env['torch']}, transformers {env.get('transformers')}; {env['cpu']}, {env['cpu_cores']} cores; {env['date']}")
    L.append(f"bf16 peak {res['peak_tflops']} TFLOP/s ({res['peak_source']}); vocabulary {res['vocab_size']:,}; recipe from {res['recipe_source']}; "
             f"torch.compile backend {res['compile_backend']}")
    L.append('\nchecks' + ' ' * 86 + 'value     limit  ok')
    for c in res['checks']: L.append(f"  {c['name'][:84]:84} {fmt(c['value']):>10} {fmt(c['limit']):>9}  {'yes' if c['ok'] else 'NO'}")
    t = res.get('throughput', [])
    if t:
        s = res['shapes']['train']
        L.append(f"\ntraining throughput: train(), bf16, {s['batch']} x {s['context']} tokens a step" + (f" ({s['overrides']})" if s.get('overrides') else ''))
        L.append('  preset  compile  micro x accum   tokens/s    ms/step    MFU   peak GiB  compile s  graph breaks')
        for r in t:
            head = f"  {r['preset']:7} {'yes' if r['compile'] else 'no':8}"
            if 'tok_s' not in r: L.append(head + ' ' + (r.get('skipped') or r.get('error', ''))[:100]); continue
            mem = '-' if r['peak_mem_gib'] is None else f"{r['peak_mem_gib']:.1f}"
            L.append(head + f" {r['micro_batch']:>5} x {r['grad_accum']:<5} {r['tok_s']:>11,.0f} {r['step_ms']:>10.1f} {100 * r['mfu']:>5.1f}% {mem:>9} "
                     f"{r.get('compile_s', '-'):>10} {r.get('graph_breaks', '-'):>13}")
    d = res.get('ddp')
    if d:
        L.append(f"\nDDP: torchrun, {d['processes']} process(es), {d['backend']}, {res['shapes']['ddp']['steps']} steps fp32: "
                 + (f"max |loss - single process| {fmt(d['loss_max_diff'])}, {d['wall_s']} s" if 'loss_max_diff' in d else f"exit {d['returncode']}"))
    g = res.get('generation', [])
    if g:
        L.append(f"\ngeneration: new tokens/s, greedy, {g[0]['new_tokens']} new tokens from a one-token prompt, {res['shapes']['gen']['preset']} shape")
        L.append('  dtype      batch      ours  transformers   ratio  same tokens')
        for r in g: L.append(f"  {r['dtype']:9} {r['batch']:>6} {r['ours_tok_s']:>9,.0f} {r['transformers_tok_s']:>13,.0f} {r['ratio']:>6.2f}x  {r['same_tokens']}")
    v = res.get('evaluation', [])
    if v:
        L.append(f"\nevaluation against the training step: tokens/s, and each as a multiple of the step's (bf16 autocast, AdamW); {res['shapes']['eval']['stories']} validation stories")
        L.append('  preset  batch x ctx      step   step\'s forward       x   windows bf16       x   windows fp32       x   stories fp32       x   stories bf16       x')
        for r in v:
            head = f"  {r['preset']:7} {r['batch']:>5} x {r['context']:<5}"
            if 'train_tok_s' not in r: L.append(head + ' ' + r.get('skipped', '')); continue
            L.append(head + f" {r['train_tok_s']:>9,.0f}" + ''.join(f" {r[k + '_tok_s']:>14,.0f} {r[k + '_x']:>6.2f}x" for k in ('forward', 'windows_bf16', 'windows_fp32', 'stories_fp32', 'stories_bf16')))
    e = res.get('estimate')
    if e and 'tok_s' in e:
        L.append(f"\npaper-scale estimate: {e['tokens']:,} tokens of the recipe at {e['tok_s']:,.0f} tokens/s ({e['preset']}, compile {e['compile']}): "
                 f"{e['hours_1_gpu']:.2f} h on 1 GPU, {e['hours_8_gpus']:.2f} h on 8 ({e['note']})")
    for err in res.get('errors', []): L.append(f'ERROR {err}')
    L.append(f"\n{sum(c['ok'] for c in res['checks'])}/{len(res['checks'])} checks passed, {len(res.get('errors', []))} sections broke; {res.get('wall_s', 0):.0f} s")
    return '\n'.join(L)

# ----------------------------------------------------------------------------------------------------------------- main

def shapes(dry, recipe):
    "What each section runs: the recipe's shapes on a GPU, tiny ones for the dry run."
    if dry:
        tiny = dict(n_layer=1)
        return dict(agree=dict(preset='1M', overrides=tiny, batch=4, context=32, steps=3, new_tokens=8),
                    train=dict(presets=['1M', '8M', '28M'], compile_presets=['1M'], overrides=tiny, batch=4, context=32, steps=3, warmup=1, warmup_compiled=1,
                               need_eager_s=5, need_compiled_s=30),
                    ddp=dict(preset='1M', overrides=tiny, batch_per_process=2, context=16, steps=20, timeout_s=240),
                    gen=dict(preset='1M', overrides=tiny, context=64, new_tokens=8, batches=[1, 4]),
                    eval=dict(presets=['1M'], overrides=tiny, shapes=[(2, 16)], steps=2, windows=2, stories=8, rounds=1, need_s=5))
    return dict(agree=dict(preset='8M', batch=4, context=256, steps=5, new_tokens=32),
                train=dict(presets=['1M', '8M', '28M'], compile_presets=['1M', '8M', '28M'], batch=recipe['batch_size'], context=recipe['context'],
                           steps=8, warmup=2, warmup_compiled=3, need_eager_s=20, need_compiled_s=90),
                ddp=dict(preset='8M', batch_per_process=16, context=256, steps=20, timeout_s=150),
                gen=dict(preset=recipe['preset'], context=recipe['context'], new_tokens=256, batches=[1, 32]),
                eval=dict(presets=['1M', '3M', '8M'], shapes=[(16, 128), (64, 512)], steps=10, windows=16, stories=400, rounds=3, need_s=20))

class Context:
    def __init__(self, args):
        self.dry, self.compile, self.t0 = args.dry_run, not args.no_compile, time.perf_counter()
        self.device = torch.device('cpu' if args.dry_run else args.device)
        self.budget, self.errors, self.checks, self.results = args.budget, [], Check(), {}
        self.data_dir = args.data_dir
    def time_left(self): return self.budget - (time.perf_counter() - self.t0)
    def save(self):
        self.results.update(checks=self.checks.rows, errors=self.errors, wall_s=round(time.perf_counter() - self.t0, 1))
        write_json_atomic(self.out, self.results)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--device', default='cuda', help='the CUDA device to check (default: cuda)')
    p.add_argument('--dry-run', action='store_true', help='the same code paths on the CPU with tiny shapes and few steps (what CI runs)')
    p.add_argument('--out', type=Path, default=None, help='the JSON file, or a folder for it (default: bench/results/gpu-DEVICE-DATE.json; with --dry-run, dry-run-DATE.json there)')
    p.add_argument('--budget', type=float, default=None, help='seconds the whole check may take; runs that would not fit are skipped (default: 480, dry run 270)')
    p.add_argument('--no-compile', action='store_true', help='leave out the torch.compile runs')
    p.add_argument('--compile-backend', default=None, help="torch.compile's backend for the trainer (default: inductor; with --dry-run, aot_eager: "
                   'dynamo traces the model and counts its graph breaks, and no C++ is built, which takes minutes on a busy CPU)')
    p.add_argument('--data-dir', type=Path, default=ROOT/'data', help="where the course's sample is (default: the checkout's data/)")
    p.add_argument('--ddp-worker', type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.ddp_worker: return ddp_worker(args.ddp_worker)
    if args.budget is None: args.budget = 270 if args.dry_run else 480
    if not args.dry_run and torch.device(args.device).type == 'cuda' and not torch.cuda.is_available():
        sys.exit(f'gpu_check: --device {args.device}: torch sees no CUDA GPU here; on a CPU run --dry-run')
    global counters
    from torch._dynamo.utils import counters
    ctx = Context(args)
    # fp32 means fp32 in every comparison (TF32 would round products to 10 bits); bf16 runs are autocast's bf16 either way
    torch.backends.cuda.matmul.allow_tf32 = False; torch.backends.cudnn.allow_tf32 = False
    # the dry run's timings mean nothing, and on a busy machine a second thread (OpenMP spinning beside other work) slows tiny steps severalfold
    if ctx.dry: torch.set_num_threads(1)
    backend = args.compile_backend or ('aot_eager' if ctx.dry else None)
    if backend:  # the trainer calls torch.compile(model): give it this backend
        torch.compile = functools.partial(torch.compile, backend=backend)
    warnings.filterwarnings('ignore', category=UserWarning, module=r'torch\._dynamo')  # graph breaks are counted and listed instead
    env = environment(ctx.device)
    name = f'dry-run-{utc_now():%Y-%m-%d}.json' if ctx.dry else f'gpu-{device_slug(env)}-{utc_now():%Y-%m-%d}.json'
    ctx.out = args.out/name if args.out is not None and args.out.is_dir() else args.out or ROOT/'bench'/'results'/name
    ctx.recipe, recipe_source = read_recipe()
    ctx.shape = shapes(ctx.dry, ctx.recipe)
    log(f'gpu_check: {env}')
    with tempfile.TemporaryDirectory(prefix='gpu-check-') as tmp:
        ctx.tmp = Path(tmp)
        ctx.train_bin, ctx.valid_bin, ctx.tok_dir = course_data(ctx.tmp, args.data_dir)
        ctx.vocab_size = load_tokenizer(ctx.tok_dir).get_vocab_size()
        ctx.peak_tflops, peak_source = peak_tflops(env, ctx.device, 1024 if ctx.dry else 8192)
        ctx.results.update(env=env, dry_run=ctx.dry, compile_backend=backend or 'inductor', recipe=ctx.recipe, recipe_source=recipe_source, vocab_size=ctx.vocab_size,
                           peak_tflops=ctx.peak_tflops, peak_source=peak_source, shapes=ctx.shape)
        for name, section in (('agreement', agreement), ('ddp', ddp), ('generation', generation), ('throughput', throughput), ('evaluation', evaluation), ('estimate', estimate)):
            log(f'== {name} ({ctx.time_left():.0f} s of the budget left)')
            try: ctx.results[name] = section(ctx)
            except Exception as e:
                ctx.errors.append(f'{name}: {type(e).__name__}: {e}')
                log(traceback.format_exc())
            ctx.save()
    print(table(ctx.results))
    print(f'JSON: {ctx.out}')
    return 0 if all(c['ok'] for c in ctx.checks.rows) and not ctx.errors else 1

if __name__ == '__main__':
    sys.exit(main())
