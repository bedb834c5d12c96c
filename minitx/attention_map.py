"""Which words does a trained classifier look at? Its attention weights, drawn as heat maps.

`attention_weights` runs the classifier once inside `mf.recording_attention`, which collects the weights of
every `mf.attend` call: the weights the model used, layer by layer, with no second copy of the model's code.

    python -m minitx.attention_map runs/q08-xor-pos/model.pt --out runs/q08-xor-pos/attention.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import functional as mf
from .classify import classifier_from_checkpoint, load_dataset, read_checkpoint
from .cli import HelpFormatter
from .config import ClassifierConfig
from .data import pad_batch


@torch.no_grad()
def attention_weights(params: mf.Params, tokens: torch.Tensor, config: ClassifierConfig,
                      mask: torch.Tensor | None = None) -> list[torch.Tensor]:
    """One (batch, heads, time, time) tensor per attention layer: row i is what position i attends to.

    Simple attention has one "head". Works for every attention kind of `mf.classifier` (eval mode).
    """
    if config.attention == "none":
        raise ValueError("the baseline model has no attention to draw; train --model simple, full or transformer")
    with mf.recording_attention() as weights:
        mf.classifier(params, tokens, config, mask=mask)
    return [w if w.dim() == 4 else w[:, None] for w in weights]       # simple attention: (b, t, t) -> (b, 1, t, t)


def plot_attention(weights: torch.Tensor, words: list[list[str]], path: str | Path, titles: list[str]) -> Path:
    """Heat maps of one layer's weights (n, heads, t, t): a row per instance, a column per head."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, heads = weights.shape[:2]
    fig, axes = plt.subplots(n, heads, figsize=(2.6 * heads + 0.6, 2.4 * n + 0.4), squeeze=False)
    for i in range(n):
        length = len(words[i])
        for h in range(heads):
            ax = axes[i][h]
            image = ax.imshow(weights[i, h, :length, :length].numpy(), vmin=0, vmax=1, cmap="viridis")
            ax.set_xticks(range(length), words[i], rotation=60, fontsize=7)
            ax.set_yticks(range(length), words[i], fontsize=7)
            ax.set_title(f"{titles[i]}, head {h + 1}" if heads > 1 else titles[i], fontsize=8)
    fig.supxlabel("attended word (key)", fontsize=8)
    fig.supylabel("attending position (query)", fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.6, label="attention weight")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def draw(checkpoint: str | Path, out: str | Path, count: int = 4, layer: int = -1) -> Path:
    """Heat maps for up to ``count`` validation instances of the checkpoint's dataset (synth or XOR), one per
    word pattern (fewer if the data has fewer patterns), with the true label and the model's prediction in each
    title. The sequences are cut to the length the model was trained on (its config's ``max_len``)."""
    if count < 1:
        raise ValueError(f"count must be at least 1 instance to draw, got {count}")
    saved = read_checkpoint(checkpoint)
    model, name = classifier_from_checkpoint(saved), saved["data"]
    if name not in ("synth", "xor"):
        raise ValueError(f"attention maps are drawn for synth or xor models, this checkpoint was trained on {name!r}")
    # the data as the model saw it in training: with `.start` in front if it was trained so
    data = load_dataset(name, ntrain=10, nval=200, start_token=saved.get("start_token", False))
    x, y = data.val
    chosen, seen = [], set()
    for i, seq in enumerate(x):                       # distinct word patterns first, so each picture differs
        key = tuple(seq[-2:])
        if key not in seen:
            seen.add(key)
            chosen.append(i)
        if len(chosen) == count:
            break
    cut = model.config.max_len                        # what `--max-len` cut the sequences to in training
    tokens, mask = pad_batch([x[i] for i in chosen], data.pad_idx, max_len=cut)
    with torch.no_grad():
        predicted = model(tokens, mask).argmax(dim=-1).tolist()
    layers = attention_weights(model.tree(), tokens, model.config, mask)
    if not -len(layers) <= layer < len(layers):
        raise ValueError(f"layer {layer} does not exist: the model has {len(layers)} attention layer(s)")
    weights = layers[layer]
    words = [[data.i2w[w] for w in x[i][:cut]] for i in chosen]
    titles = [f"label {y[i]}, predicted {p}" for i, p in zip(chosen, predicted, strict=True)]
    return plot_attention(weights, words, out, titles)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minitx.attention_map", description=__doc__,
                                     formatter_class=HelpFormatter)
    parser.add_argument("checkpoint", help="model.pt written by `python -m minitx classify ... --out DIR`")
    parser.add_argument("--out", default=None, help="PNG path (default: attention.png beside the checkpoint)")
    parser.add_argument("--count", type=int, default=4, help="instances to draw")
    parser.add_argument("--layer", type=int, default=-1, help="which attention layer (-1: the last)")
    args = parser.parse_args(argv)
    out = args.out or Path(args.checkpoint).with_name("attention.png")
    try:
        print(draw(args.checkpoint, out, args.count, args.layer))
    except (OSError, ValueError) as error:
        print(f"attention_map: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
