"""Muon's cost in a training step: `torch.optim.Muon` stepping each matrix alone against `StackedMuon` (08b_optimizer),
which stacks the matrices of each shape and runs one batched Newton–Schulz per shape, with AdamW as the reference.

Two tables, on this machine, for one preset (the 3M of bench/cpu30.toml by default: batch 16 x 128, dropout 0.1, bf16):
  1. the optimizer step alone, on the blocks' matrices with random gradients: milliseconds, median of --rounds;
  2. whole training steps as the trainer takes them (forward, backward, clipping, optimizer) with AdamW, with Muon
     (torch.optim.Muon for the matrices) and with MuonAdamW (StackedMuon): tokens/s, each the median over --rounds rounds
     of --steps steps that take the three in turn, so all three share the machine's pace; ratios against AdamW.
Nothing is asserted.

usage: python bench/muon_step.py [--preset 3M] [--rounds 5] [--steps 20] [--threads 2]
"""
import argparse, dataclasses, statistics, sys, time
from pathlib import Path
import torch
from tinystories.config import resolve_config, model_config
from tinystories.loader import TokenFile
from tinystories.model import GPT
from tinystories.optim import MuonAdamW, StackedMuon, make_optimizer
from tinystories.tokenizer import course_tokenizer, load_tokenizer
from tinystories.train import accumulate_gradients
from tinystories.trainer import keep_freed_memory
sys.path.insert(0, str(Path(__file__).parent))
from cpu30 import ROOT, cpu_name, prepare  # the 30-minute search's data: both training files of the course's sample

TRAIN = ROOT/'data/cpu30/train.bin'

class TorchMuonAdamW(MuonAdamW):
    "MuonAdamW with PyTorch's own Muon, one matrix at a time: the reference `StackedMuon` replaces."
    def __init__(self, model, lr, weight_decay, betas):
        super().__init__(model, lr, weight_decay, betas)
        self.muon = torch.optim.Muon(self.muon.param_groups[0]['params'], lr=lr, weight_decay=weight_decay, adjust_lr_fn='match_rms_adamw')

def median_ms(f, rounds, reps=10):
    f()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(reps): f()
        times.append((time.perf_counter() - t) / reps * 1e3)
    return statistics.median(times)

def train_steps(model, opt, cfg, data, start, n):
    "Tokens/s of `n` training steps from batch `start`, as the trainer takes them: forward, backward, clipping, optimizer."
    model.train(); t = time.perf_counter()
    for step in range(start, start + n):
        accumulate_gradients(model, data, step, cfg, 0, 1, torch.device('cpu'))
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step(); opt.zero_grad(set_to_none=True)
    return n * cfg.batch_size * cfg.context / (time.perf_counter() - t)

def in_turn(runs, rounds, n):
    "Tokens/s of each run of `runs` (name: (model, optimizer, cfg, data)) in `rounds` rounds of `n` steps, each run first in turn, so all share the machine's pace."
    at = dict.fromkeys(runs, 0)
    def steps(name, k):
        tok_s = train_steps(*runs[name], at[name], k); at[name] += k
        return tok_s
    for name in runs: steps(name, 3)  # warm up
    tok_s = {name: [] for name in runs}
    names = list(runs)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]: tok_s[name].append(steps(name, n))
    return tok_s

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--preset', default='3M'); p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--steps', type=int, default=20); p.add_argument('--threads', type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads); keep_freed_memory()
    tok = load_tokenizer(course_tokenizer(ROOT/'data'))
    if not TRAIN.is_file(): prepare()
    cfg = resolve_config(preset=a.preset, batch_size=16, context=128, dropout=0.1, lr=1e-2, min_lr=0.0, optimizer='muon', device='cpu')
    data = TokenFile(TRAIN, context=cfg.context)
    mcfg = model_config(cfg, tok.get_vocab_size())
    when = f"{cpu_name()}, {a.threads} threads, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}"

    torch.manual_seed(0)
    mats = [p_ for n, p_ in GPT(mcfg).named_parameters() if p_.dim() == 2 and n.startswith('blocks.')]
    for m in mats: m.grad = torch.randn_like(m)
    opt_ms = {name: median_ms(cls(mats, lr=1e-3, weight_decay=0.1, adjust_lr_fn='match_rms_adamw').step, a.rounds)
              for name, cls in (('torch.optim.Muon', torch.optim.Muon), ('StackedMuon', StackedMuon))}
    print(f"Muon's step alone on the {len(mats)} block matrices of {a.preset} ({len({m.shape for m in mats})} shapes); {when}\n")
    print('| optimizer | ms per step |\n|---|---:|')
    for name, ms in opt_ms.items(): print(f'| {name} | {ms:.1f} |')
    print(f"\nStackedMuon: {opt_ms['torch.optim.Muon'] / opt_ms['StackedMuon']:.2f}x faster\n")

    makers = {'AdamW': lambda m: make_optimizer(m, dataclasses.replace(cfg, optimizer='adamw')),
              'Muon (torch.optim.Muon)': lambda m: TorchMuonAdamW(m, cfg.lr, cfg.weight_decay, (cfg.beta1, cfg.beta2)),
              'Muon (StackedMuon)': lambda m: make_optimizer(m, cfg)}
    runs = {}
    for name, make in makers.items():
        torch.manual_seed(0); model = GPT(mcfg); runs[name] = (model, make(model), cfg, data)
    tok_s = in_turn(runs, a.rounds, a.steps)
    print(f"Training steps of {a.preset} (batch {cfg.batch_size} x {cfg.context}, dropout {cfg.dropout}, {cfg.dtype}), median of {a.rounds} rounds of {a.steps} steps; {when}\n")
    print('| optimizer | tokens/s | vs AdamW |\n|---|---:|---:|')
    base = statistics.median(tok_s['AdamW'])
    for name, v in tok_s.items(): print(f'| {name} | {statistics.median(v):,.0f} | {statistics.median(v) / base:.2f} |')

if __name__ == '__main__': main()
