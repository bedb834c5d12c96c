"""Sampling speed: the key/value cache against re-running the forward pass for every new character, in two
forms: the library's uncached sampler, whose final block computes only the last position (``last=1``), and the
whole forward pass with every position computed, as the course's sampler does (`rerun_whole_forward`).

    python -m bench.sampling --threads 2 --repeats 5

Two cases on the default character model (emb 128, 4 heads, 4 blocks, context 256): 200 new characters after
a 16-character seed (the sequence fits the context: the cache does one position per character), and 600 new
characters (past the context: all paths run full windows of 256 after the first 240). The three contenders run
in interleaved rounds (`bench.common.interleaved_times`) and their greedy outputs are checked to be identical.

``--overhead`` adds a fourth contender to the same rounds: the cached sampler on a model 16 times narrower
(emb 8, the same heads, depth and context), whose steps are the same ~90 operations with almost no arithmetic.
Its time over the default model's is the share of a cached step that is per-operation overhead.

``--floor`` adds another: `cached_floor`, the same greedy decoding as bare torch calls with no library code
between them, the least time eager PyTorch takes per cached character for this model. Its ratios to the
re-runs are the best any eager cached sampler could print here, so they show how much of a missed target is the
library's own Python and how much is PyTorch's per-call cost on this machine.
"""

import argparse
import datetime
import json
import math
import os
import statistics

import torch
import torch.nn.functional as F

from minitx import LMConfig
from minitx import functional as mf
from minitx.cli import HelpFormatter
from minitx.nn import LM
from minitx.sample import sample

from .common import code_version, interleaved_times, spread


def _model(emb: int = 128) -> LM:
    return LM(LMConfig(vocab=31, emb=emb, backend="sdpa"), torch.Generator().manual_seed(0)).eval()


def rerun_whole_forward(model: LM, seed: torch.Tensor, length: int) -> torch.Tensor:
    """Greedy sampling the plain way: for each new token the whole forward pass over the last ``context``
    tokens, every position computed and only the last one's logits used. seed (b, t) -> (b, t + length)."""
    params, config = mf.with_stacked_qkv(model.tree()), model.config
    tokens = seed
    with torch.inference_mode():
        for _ in range(length):
            logits = mf.lm(params, tokens[:, -config.context:], config)[:, -1]              # (b, vocab)
            tokens = torch.cat([tokens, logits.argmax(dim=-1, keepdim=True)], dim=1)      # (b, t + 1)
    return tokens


def cached_floor(model: LM, seed: torch.Tensor, length: int) -> torch.Tensor:
    """Greedy sampling with a key/value cache written as bare torch calls: the same maths as
    ``sample(model, seed, length, temperature=0)`` for a pre-norm model inside its context (the seed in one
    pass, then one position a character), with no checks, no wrappers and no cache object. A measuring stick
    for the benchmark, not a second sampler: it knows one model layout and nothing of sliding windows or
    padding. seed (b, t) -> (b, t + length)."""
    config, params = model.config, mf.with_stacked_qkv(model.tree())
    if config.norm != "pre" or seed.shape[1] + length > config.context:
        raise ValueError("cached_floor is written for pre-norm models, inside the context")
    b, e, heads = seed.shape[0], config.emb, config.heads
    s = e // heads
    factor = 1.0 / math.sqrt(s)                          # attend's scale, so the sums round alike
    keys = [torch.empty(b, heads, config.context, s) for _ in range(config.depth)]
    values = [torch.empty_like(k) for k in keys]

    def next_logits(new: torch.Tensor, start: int) -> torch.Tensor:
        """new (b, t) tokens at positions start ... start + t - 1 -> the last one's logits (b, vocab)."""
        t, end = new.shape[1], start + new.shape[1]
        x = F.embedding(new, params["tokens"]["weight"]) + params["positions"]["weight"][start:end]   # (b, t, e)
        for block, k_room, v_room in zip(params["blocks"], keys, values, strict=True):
            attn, ff, ln1, ln2 = block["attn"], block["ff"], block["ln1"], block["ln2"]
            h = F.layer_norm(x, (e,), ln1["weight"], ln1["bias"])
            q, k, v = (F.linear(h, attn["qkv"]["weight"], attn["qkv"]["bias"])
                       .view(b, t, 3, heads, s).permute(2, 0, 3, 1, 4).unbind(0))            # 3 x (b, h, t, s)
            k_room[:, :, start:end] = k
            v_room[:, :, start:end] = v
            y = F.scaled_dot_product_attention(q, k_room[:, :, :end], v_room[:, :, :end], is_causal=t > 1,
                                               scale=factor)                                   # (b, h, t, s)
            x = x + F.linear(y.transpose(1, 2).reshape(b, t, e), attn["o"]["weight"], attn["o"]["bias"])
            h = torch.relu_(F.linear(F.layer_norm(x, (e,), ln2["weight"], ln2["bias"]),
                                     ff["hidden"]["weight"], ff["hidden"]["bias"]))
            x = x + F.linear(h, ff["out"]["weight"], ff["out"]["bias"])
        x = F.layer_norm(x, (e,), params["norm"]["weight"], params["norm"]["bias"])
        return F.linear(x, params["head"]["weight"], params["head"]["bias"])[:, -1]

    tokens, pending = seed, seed
    with torch.inference_mode():
        for _ in range(length):
            new = next_logits(pending, tokens.shape[1] - pending.shape[1]).argmax(dim=-1, keepdim=True)  # (b, 1)
            tokens = torch.cat([tokens, new], dim=1)
            pending = new
    return tokens


def measure(length: int, repeats: int, batch: int = 1, overhead: bool = False, floor: bool = False) -> dict:
    model = _model()
    seed = torch.randint(4, 31, (batch, 16), generator=torch.Generator().manual_seed(1))
    cached = sample(model, seed, length, temperature=0)
    rerun = sample(model, seed, length, temperature=0, use_cache=False)
    if not (torch.equal(cached, rerun) and torch.equal(cached, rerun_whole_forward(model, seed, length))
            and (not floor or torch.equal(cached, cached_floor(model, seed, length)))):
        raise AssertionError("cached and re-run greedy samples differ")
    contenders = {
        "cache": lambda: sample(model, seed, length, temperature=0),
        "rerun": lambda: sample(model, seed, length, temperature=0, use_cache=False),
        "rerun_whole": lambda: rerun_whole_forward(model, seed, length),
    }
    if overhead:
        narrow = _model(emb=8)
        contenders["cache_emb8"] = lambda: sample(narrow, seed, length, temperature=0)
    if floor:
        contenders["cache_floor"] = lambda: cached_floor(model, seed, length)
    times = interleaved_times(contenders, repeats)
    row = {"new_characters": length, "batch": batch, "cache_s": spread(times["cache"])}
    for baseline, suffix in (("rerun", ""), ("rerun_whole", "_whole")):
        ratios = [r / c for c, r in zip(times["cache"], times[baseline], strict=True)]   # paired, per round
        row |= {f"{baseline}_s": spread(times[baseline]), f"speedup{suffix}_median": statistics.median(ratios),
                f"speedup{suffix}_min": min(ratios)}
    row["identical_greedy_output"] = True
    if overhead:
        row["cache_emb8_s"] = spread(times["cache_emb8"])
        row["overhead_share_median"] = statistics.median(
            n / c for c, n in zip(times["cache"], times["cache_emb8"], strict=True))
    if floor:
        row["cache_floor_s"] = spread(times["cache_floor"])
        row["floor_share_median"] = statistics.median(
            f / c for c, f in zip(times["cache"], times["cache_floor"], strict=True))
        for baseline, suffix in (("rerun", ""), ("rerun_whole", "_whole")):
            row[f"floor_speedup{suffix}_median"] = statistics.median(
                r / f for f, r in zip(times["cache_floor"], times[baseline], strict=True))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--lengths", type=int, nargs="+", default=[200, 600], help="new characters per sample")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--overhead", action="store_true",
                        help="also time the cached sampler on an emb-8 model (the per-operation overhead)")
    parser.add_argument("--floor", action="store_true",
                        help="also time `cached_floor`, the cached step as bare torch calls (eager PyTorch's least)")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows = [measure(length, args.repeats, overhead=args.overhead, floor=args.floor) for length in args.lengths]
    conditions = {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                  "threads": torch.get_num_threads(), "repeats": args.repeats, "commit": code_version(),
                  "load_before": load_before, "load_after": os.getloadavg()}
    rows = [{**row, "conditions": conditions} for row in rows]    # so a saved file says how it was measured
    for row in rows:
        print(f"{row['new_characters']} new characters: cache {row['cache_s']['median']:.2f} s, "
              f"re-run (last=1) {row['rerun_s']['median']:.2f} s, whole re-run {row['rerun_whole_s']['median']:.2f} s "
              f"(medians); speed-up {row['speedup_median']:.1f}x (min {row['speedup_min']:.1f}x) over the re-run, "
              f"{row['speedup_whole_median']:.1f}x (min {row['speedup_whole_min']:.1f}x) over the whole re-run; "
              "identical greedy output")
        if args.overhead:
            print(f"  cache on an emb-8 model {row['cache_emb8_s']['median']:.2f} s: "
                  f"{row['overhead_share_median']:.0%} of the default model's cached time (median of rounds)")
        if args.floor:
            print(f"  bare torch calls (cached_floor) {row['cache_floor_s']['median']:.2f} s: "
                  f"{row['floor_share_median']:.0%} of the library's cached time; speed-up "
                  f"{row['floor_speedup_median']:.1f}x over the re-run, {row['floor_speedup_whole_median']:.1f}x over "
                  "the whole re-run (medians of rounds)")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
