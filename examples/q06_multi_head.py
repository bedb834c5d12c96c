"""Q6: multi-head self-attention: project to q, k, v, split into heads, attend per head, merge, project.

Prints `mf.self_attention` and checks it against PyTorch's own `nn.MultiheadAttention` with the same weights
(and a padding mask, which PyTorch spells the other way round: True = ignore), then trains it on XOR.
"""

import inspect

import torch
from common import dataset, experiment, parser, setup

import minitx.functional as mf
import minitx.functional.attention as attention
from minitx.classify import TrainSettings

args = parser(__doc__, epochs=3).parse_args()
setup(args)
for function in (mf.self_attention, attention.project_qkv, mf.split_heads, mf.merge_heads):   # reshape, reorder
    print(inspect.getsource(function))

b, t, e, heads = 3, 7, 16, 4
params = mf.init_self_attention(e, heads, torch.Generator().manual_seed(0))
x = torch.randn(b, t, e)
mask = torch.arange(t)[None, :] < torch.tensor([7, 5, 2])[:, None]          # (b, t), True = real token
reference = torch.nn.MultiheadAttention(e, heads, batch_first=True)
with torch.no_grad():
    reference.in_proj_weight.copy_(torch.cat([params[n]["weight"] for n in "qkv"]))
    reference.in_proj_bias.copy_(torch.cat([params[n]["bias"] for n in "qkv"]))
    reference.out_proj.weight.copy_(params["o"]["weight"])
    reference.out_proj.bias.copy_(params["o"]["bias"])
    expected, _ = reference(x, x, x, key_padding_mask=~mask)
    ours = mf.self_attention(params, x, heads, mask=mask)
print(f"largest difference from nn.MultiheadAttention: {(ours - expected).abs().max().item():.2e}")

settings = TrainSettings(epochs=args.epochs, lr=1e-2, batch=32, max_len=None, progress=False)
experiment("xor full attention (4 heads), select", dataset("xor", args), "full", settings, args.seeds,
           emb=16, heads=4, pool="select")
