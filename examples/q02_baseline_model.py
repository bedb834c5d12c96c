"""Q2: the baseline model: embedding (b, t) -> (b, t, e), global pool over time -> (b, e), linear -> (b, classes).

Prints the functional classifier (`mf.classifier`), the pooling (`mf.pool`), a forward pass's shapes and the
parameter count for the IMDb vocabulary with embedding size 300. Training is Q3 (q03_baseline.py).
"""

import inspect

from common import dataset, parser, setup

import minitx.functional as mf
from minitx.classify import model_config
from minitx.data import pad_batch
from minitx.nn import Classifier

args = parser(__doc__, epochs=None, seeds=None).parse_args()
setup(args)
data = dataset("imdb", args)
print(inspect.getsource(mf.classifier))
print(inspect.getsource(mf.pool))
for pool in ("mean", "max", "select"):
    model = Classifier(model_config("baseline", vocab=len(data.i2w), emb=300, pool=pool))
    tokens, mask = pad_batch(data.train[0][:4], data.pad_idx)
    logits = model(tokens, mask)
    print(f"pool {pool:<6}: tokens {tuple(tokens.shape)} -> logits {tuple(logits.shape)}; "
          f"{mf.count_parameters(model.tree()):,} parameters ({len(data.i2w):,} words x 300 + the head)")
