"""What every benchmark here shares: the workloads, the three contenders built with the same weights, one
training step, interleaved timing and peak memory.

Contenders (the "attention paths"):
- ``scratch``: minitx's from-scratch attention (`minitx.functional.attend` with ``backend='scratch'``);
- ``sdpa``: the same minitx model with PyTorch's fused ``scaled_dot_product_attention``;
- ``torch``: ``nn.TransformerEncoder`` with weights copied from the minitx model, inside the same embedding and
  head, so all three compute the same function (`max_output_difference` checks it).
"""

import json
import math
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import minitx.functional as mf
from minitx import ClassifierConfig, LMConfig
from minitx.distributed import unwrap
from minitx.nn import LM, Classifier
from minitx.runtime import autocast, make_optimizer

CONTENDERS = ("scratch", "sdpa", "torch")


@dataclass(frozen=True)
class Workload:
    """One model size and batch. ``kind`` is 'classifier' (post-norm, padding mask, max pool: the IMDb model of
    Q9) or 'lm' (pre-norm, causal: the character model of Q11-Q14). ``length`` is the sequence length / context."""

    name: str
    title: str
    kind: str
    vocab: int
    emb: int
    heads: int
    depth: int
    length: int
    batch: int

    @property
    def tokens_per_step(self) -> int:
        return self.batch * self.length

    def describe(self) -> str:
        return (f"{self.title}: vocab {self.vocab:,}, emb {self.emb}, {self.heads} heads, {self.depth} blocks, "
                f"length {self.length}, batch {self.batch}")

    def scaled(self, **changes) -> "Workload":
        return replace(self, **changes)


WORKLOADS = {
    "A": Workload("A", "IMDb-style classifier", "classifier", vocab=100_000, emb=128, heads=4, depth=3,
                  length=256, batch=32),
    "B": Workload("B", "character LM", "lm", vocab=100, emb=128, heads=4, depth=4, length=256, batch=32),
    "C": Workload("C", "wider, deeper byte LM", "lm", vocab=256, emb=256, heads=8, depth=6, length=256, batch=16),
}


def tiny(workload: Workload) -> Workload:
    """A few-millisecond version of a workload, for smoke tests and ``--dry-run``."""
    return workload.scaled(vocab=min(workload.vocab, 50), emb=16, heads=2, depth=1, length=16, batch=2)


# ---------------------------------------------------------------- the models

def minitx_model(workload: Workload, backend: str, seed: int = 0) -> nn.Module:
    """The minitx model of a workload; the same ``seed`` gives the same weights for every backend."""
    generator = torch.Generator().manual_seed(seed)
    if workload.kind == "classifier":
        config = ClassifierConfig(vocab=workload.vocab, emb=workload.emb, attention="full", heads=workload.heads,
                                  depth=workload.depth, positions=True, max_len=workload.length, pool="max",
                                  norm="post", blocks=True, backend=backend)
        return Classifier(config, generator)
    config = LMConfig(vocab=workload.vocab, emb=workload.emb, heads=workload.heads, depth=workload.depth,
                      context=workload.length, norm="pre", backend=backend)
    return LM(config, generator)


def _copied(tensor: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(tensor.detach().clone())


def _linear_from(params: dict) -> nn.Linear:
    out_features, in_features = params["weight"].shape
    layer = nn.Linear(in_features, out_features)
    layer.weight, layer.bias = _copied(params["weight"]), _copied(params["bias"])
    return layer


def _layer_norm_from(params: dict) -> nn.LayerNorm:
    layer = nn.LayerNorm(params["weight"].shape[0])
    layer.weight, layer.bias = _copied(params["weight"]), _copied(params["bias"])
    return layer


def _encoder_from(blocks: list[dict], heads: int, norm_first: bool, final_norm: dict | None) -> nn.TransformerEncoder:
    """``nn.TransformerEncoder`` holding minitx's block weights: in_proj = cat(q, k, v), out_proj = o,
    linear1/linear2 = ff hidden/out, norm1/norm2 = ln1/ln2."""
    emb = blocks[0]["ln1"]["weight"].shape[0]
    layer = nn.TransformerEncoderLayer(emb, heads, dim_feedforward=4 * emb, dropout=0.0, activation="relu",
                                       batch_first=True, norm_first=norm_first)
    norm = None if final_norm is None else _layer_norm_from(final_norm)
    encoder = nn.TransformerEncoder(layer, len(blocks), norm=norm, enable_nested_tensor=False)
    for torch_layer, block in zip(encoder.layers, blocks, strict=True):
        attn = block["attn"]
        torch_layer.self_attn.in_proj_weight = _copied(torch.cat([attn[p]["weight"] for p in "qkv"]))
        torch_layer.self_attn.in_proj_bias = _copied(torch.cat([attn[p]["bias"] for p in "qkv"]))
        torch_layer.self_attn.out_proj.weight = _copied(attn["o"]["weight"])
        torch_layer.self_attn.out_proj.bias = _copied(attn["o"]["bias"])
        torch_layer.linear1, torch_layer.linear2 = _linear_from(block["ff"]["hidden"]), _linear_from(block["ff"]["out"])
        torch_layer.norm1, torch_layer.norm2 = _layer_norm_from(block["ln1"]), _layer_norm_from(block["ln2"])
    return encoder


class TorchEncoderModel(nn.Module):
    """A minitx model's embeddings and head around ``nn.TransformerEncoder``, all weights copied from it.

    Attribute names follow minitx (``tokens``, ``positions``, ``head``) so `make_optimizer` groups the
    parameters the same way.
    """

    def __init__(self, source: nn.Module):
        super().__init__()
        params = source.tree()
        self.kind = "classifier" if isinstance(source, Classifier) else "lm"
        self.tokens = nn.Embedding.from_pretrained(params["tokens"]["weight"].detach().clone(), freeze=False)
        self.positions = nn.Embedding.from_pretrained(params["positions"]["weight"].detach().clone(), freeze=False)
        # the classifier is post-norm with no final norm; the LM pre-norm with one
        self.encoder = _encoder_from(params["blocks"], source.config.heads, norm_first=self.kind == "lm",
                                     final_norm=params.get("norm"))
        self.head = _linear_from(params["head"])

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        t = tokens.shape[1]
        x = self.tokens(tokens) + self.positions.weight[:t]                          # (b, t, e)
        if self.kind == "lm":
            causal = nn.Transformer.generate_square_subsequent_mask(t, device=tokens.device, dtype=x.dtype)
            return self.head(self.encoder(x, mask=causal, is_causal=True))         # (b, t, vocab)
        # nn.MultiheadAttention's key_padding_mask is True = ignore: the opposite of minitx's mask
        x = self.encoder(x, src_key_padding_mask=None if mask is None else ~mask)
        return self.head(mf.pool(x, "max", mask))                                   # (b, classes)


def build(workload: Workload, contender: str, device: torch.device, seed: int = 0) -> nn.Module:
    """One contender's model on ``device``, in training mode; all contenders share the weights of ``seed``."""
    if contender not in CONTENDERS:
        raise ValueError(f"contender must be one of {CONTENDERS}, got {contender!r}")
    model = minitx_model(workload, "scratch" if contender == "torch" else contender, seed)
    if contender == "torch":
        model = TorchEncoderModel(model)
    return model.to(device).train()


def make_batch(workload: Workload, device: torch.device, seed: int = 0) -> tuple[tuple, torch.Tensor]:
    """Random ``(inputs, targets)`` shaped like the workload's real batches.

    LM: (batch, length) tokens, next-token targets. Classifier: lengths drawn in [3/4, 1] x length and padded
    on the right (batches sorted by length carry little padding), a (batch, length) mask, binary labels.
    """
    generator = torch.Generator().manual_seed(seed)
    b, t = workload.batch, workload.length
    if workload.kind == "lm":
        window = torch.randint(workload.vocab, (b, t + 1), generator=generator)
        return (window[:, :-1].to(device),), window[:, 1:].to(device)
    lengths = torch.randint(math.ceil(0.75 * t), t + 1, (b,), generator=generator)
    mask = torch.arange(t)[None, :] < lengths[:, None]                                # (b, t)
    tokens = torch.randint(1, workload.vocab, (b, t), generator=generator).masked_fill(~mask, 0)
    labels = torch.randint(2, (b,), generator=generator)
    return (tokens.to(device), mask.to(device)), labels.to(device)


class TrainStep:
    """One forward + backward + AdamW step on a fixed batch, as the trainers take it
    (`minitx.runtime.make_optimizer`, bf16 autocast on CUDA when ``amp``). Call it to run a step.
    ``model`` may be compiled (`minitx.runtime.maybe_compile`)."""

    def __init__(self, model: nn.Module, workload: Workload, device: torch.device, *, amp: bool = False,
                 seed: int = 0):
        self.model, self.device, self.amp = model, device, amp
        # names from the unwrapped model (torch.compile prefixes them) so embeddings are grouped as in training
        self.optimizer = make_optimizer(dict(unwrap(model).named_parameters()), lr=1e-4, weight_decay=0.1)
        self.inputs, self.targets = make_batch(workload, device, seed)

    def __call__(self) -> None:
        with autocast(self.device, self.amp):
            logits = self.model(*self.inputs)                      # (b, t, vocab) or (b, classes)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), self.targets.reshape(-1))
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def max_output_difference(workload: Workload, device: torch.device | None = None) -> dict[str, float]:
    """Max |output - scratch output| of the sdpa and torch contenders on one batch: ~1e-6 means like for like."""
    device = device or torch.device("cpu")
    inputs, _ = make_batch(workload, device)
    outputs = {name: build(workload, name, device)(*inputs).detach() for name in CONTENDERS}
    return {name: (outputs[name] - outputs["scratch"]).abs().max().item() for name in CONTENDERS if name != "scratch"}


# ---------------------------------------------------------------- measuring

def synchronizer(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def interleaved_times(steps: dict[str, Callable[[], None]], repeats: int, warmup: int = 1,
                      sync: Callable[[], None] = lambda: None) -> dict[str, list[float]]:
    """Seconds per call of each function, measured in rounds A B C, C B A, A B C, ...

    Every round runs each contender once, so a burst of load from other processes on a shared machine hits all
    of them alike; the order alternates so none always runs right after the same neighbour.
    """
    for _ in range(warmup):
        for step in steps.values():
            step()
    sync()
    times: dict[str, list[float]] = {name: [] for name in steps}
    names = list(steps)
    for round_ in range(repeats):
        for name in names if round_ % 2 == 0 else reversed(names):
            start = time.perf_counter()
            steps[name]()
            sync()
            times[name].append(time.perf_counter() - start)
    return times


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def peak_memory_mib(step: TrainStep, device: torch.device) -> float:
    """Peak bytes of live tensors during one ``step`` (parameters, gradients, optimizer state, activations), MiB.

    CUDA: the step's rise of ``torch.cuda.max_memory_allocated`` over what was allocated before it, plus this
    step's own state (parameters, optimizer state, any gradients held): the other contenders, resident on the
    same device during the interleaved rounds, are left out. CPU: PyTorch's ``MemTracker`` (a private tool in
    ``torch.distributed._tools``), which follows every tensor storage's allocation and release: the same
    quantity, without the allocator's caching or the process's RSS noise. NaN if the tracker is unavailable.
    """
    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated(device)          # every resident contender's state
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated(device) - before + _state_bytes(step)) / 2**20
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError:
        return math.nan
    tracker = MemTracker()
    tracker.track_external(unwrap(step.model), step.optimizer)
    with tracker:
        step()
    peaks = tracker.get_tracker_snapshot("peak")
    return peaks[torch.device("cpu")]["Total"] / 2**20


def _state_bytes(step: TrainStep) -> int:
    """Bytes a step keeps between calls: parameters, gradients not freed, optimizer state tensors."""
    params = list(step.model.parameters())
    tensors = params + [p.grad for p in params if p.grad is not None]
    tensors += [t for state in step.optimizer.state.values() for t in state.values() if torch.is_tensor(t)]
    return sum(t.numel() * t.element_size() for t in tensors)


def code_version() -> str:
    """The commit measured, with '+changes' when minitx/ or bench/ differ from it (others edit alongside)."""
    def git(*command: str) -> str:
        try:
            return subprocess.run(["git", *command], cwd=Path(__file__).resolve().parent.parent,
                                  capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    return commit + ("+changes" if git("status", "--porcelain", "--", "minitx", "bench").strip() else "")


def markdown_table(rows: list[dict], columns: dict[str, str]) -> str:
    """Rows as a markdown table; ``columns`` maps row keys to headers. Floats get 3 significant digits."""

    def cell(value) -> str:
        if isinstance(value, float):
            return "n/a" if math.isnan(value) else f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
        return str(value)

    lines = ["| " + " | ".join(columns.values()) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(key, "")) for key in columns) + " |" for row in rows]
    return "\n".join(lines)


def report(rows: list[dict], columns, json_path: Path | None) -> None:
    """Print the rows as a markdown table and, when asked, save them as JSON (what `run_all --from-saved` reads)."""
    print(markdown_table(rows, columns))
    if json_path:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(rows, indent=1))
