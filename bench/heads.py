"""What the number of heads costs in a training step: the 3M preset's sixteen heads of 8 channels against four of 32
and two of 64 (`--n-head`), with everything else as bench/cpu30.toml trains it (batch 16 x 128, dropout 0.1, bf16,
Muon). The parameters and the projections' products are the same for every split; attention is not: heads of at most 8
channels take the fused kernel of 04b_fast_attention, wider bf16 heads its blocks.

Whole training steps as the trainer takes them (forward, backward, clipping, optimizer): tokens/s, each the median over
--rounds rounds of --steps steps that take the splits in turn (each goes first in turn), so all share the machine's
pace; ratios against the first of --heads (the preset's sixteen by default). Nothing is asserted.

usage: python bench/heads.py [--heads 16 4 2] [--rounds 5] [--steps 15] [--threads 2]
"""
import argparse, statistics, sys, time
from pathlib import Path
import torch
from tinystories.config import resolve_config, model_config
from tinystories.loader import TokenFile
from tinystories.model import GPT
from tinystories.optim import make_optimizer
from tinystories.tokenizer import course_tokenizer, load_tokenizer
from tinystories.trainer import keep_freed_memory
sys.path.insert(0, str(Path(__file__).parent))
from cpu30 import ROOT, cpu_name, prepare  # the 30-minute search's data: both training files of the course's sample
from muon_step import in_turn  # the training steps, each configuration first in turn

TRAIN = ROOT/'data/cpu30/train.bin'

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--heads', type=int, nargs='+', default=[16, 4, 2]); p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--steps', type=int, default=15); p.add_argument('--threads', type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads); keep_freed_memory()
    tok = load_tokenizer(course_tokenizer(ROOT/'data'))
    if not TRAIN.is_file(): prepare()
    data = TokenFile(TRAIN, context=128)
    runs = {}
    for h in a.heads:
        cfg = resolve_config(preset='3M', n_head=h, batch_size=16, context=128, dropout=0.1, lr=1.2e-2, min_lr=0.0, optimizer='muon', device='cpu')
        torch.manual_seed(0); model = GPT(model_config(cfg, tok.get_vocab_size()))
        runs[h] = (model, make_optimizer(model, cfg), cfg, data)
    tok_s = in_turn(runs, a.rounds, a.steps)
    print(f"Training steps of 3M (128 channels, batch 16 x 128, dropout 0.1, bf16, Muon), median of {a.rounds} rounds of {a.steps} steps; "
          f"{cpu_name()}, {a.threads} threads, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}\n")
    print(f'| heads | channels per head | attention | tokens/s | vs {a.heads[0]} heads |\n|---:|---:|---|---:|---:|')
    base = statistics.median(tok_s[a.heads[0]])
    for h, v in tok_s.items():
        print(f"| {h} | {128 // h} | {'fused kernel' if 128 // h <= 8 else 'blocks'} | {statistics.median(v):,.0f} | {statistics.median(v) / base:.2f} |")

if __name__ == '__main__': main()
