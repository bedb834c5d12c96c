"""Q4: the baseline plus one layer of simple (parameter-free, unscaled) self-attention, max pooling.

The layer is `mf.simple_self_attention` = `mf.attend(x, x, x, scale=False)`: weights softmax(x xᵀ) per row,
output weights @ x, with padded keys masked out. Trains it with max pooling on IMDb-synth and XOR (and IMDb
with --imdb-epochs > 0).
"""

import inspect

from common import dataset, experiment, parser, setup

import minitx.functional as mf
import minitx.functional.attention as attention
from minitx.classify import TrainSettings

p = parser(__doc__, epochs=3)
p.add_argument("--imdb-epochs", type=int, default=0, help="also train on IMDb for this many epochs (slow)")
args = p.parse_args()
setup(args)
print(inspect.getsource(mf.simple_self_attention))
# what `attend` computes, in its plainest form (the kernel computes the same in blocks of queries):
print(inspect.getsource(attention._weights))

settings = TrainSettings(epochs=args.epochs, lr=1e-2, batch=32, max_len=None, progress=False)
for name in ("synth", "xor"):
    experiment(f"{name} simple attention, max pool", dataset(name, args), "simple", settings, args.seeds,
               emb=16, pool="max")
if args.imdb_epochs:
    imdb = dataset("imdb", args, vocab=20_000)
    real = TrainSettings(epochs=args.imdb_epochs, lr=1e-3, batch=64, max_len=256, progress=False)
    experiment("imdb simple attention, max pool", imdb, "simple", real, 1, emb=300, pool="max")
