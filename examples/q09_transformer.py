"""Q9: three transformer blocks (`mf.transformer_block`, post-norm) with select pooling on IMDb.

A `.start` token is put in front of every review: select pooling reads that position, and the attention
layers must gather the review into it (the [CLS] token of BERT). Without it, select reads the first word's
position, which also works but has to double as a word. Settings: see docs/results.md.
"""

import inspect

from common import dataset, experiment, parser, setup

import minitx.functional as mf
from minitx.classify import TrainSettings

args = parser(__doc__, epochs=4, seeds=1).parse_args()
setup(args)
print(inspect.getsource(mf.transformer_block))
data = dataset("imdb", args, vocab=20_000, start_token=True)
settings = TrainSettings(epochs=args.epochs, lr=2e-3, tokens=8192, max_len=512, warmup=200, decay=True, clip=1.0,
                         weight_decay=0.05, progress=False)
experiment("imdb transformer x3, select on .start", data, "transformer", settings, args.seeds, emb=64, heads=4,
           depth=3, pool="select", positions=True, max_len=512, dropout=0.2, backend="sdpa")
