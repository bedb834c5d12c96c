"""Q8: position embeddings (`mf.position_embedding`: rows 0..t-1 of a learned table, added to the token
embeddings and broadcast over the batch) on XOR, simple self-attention with select pooling.

Expected: without positions <= 0.75 (the first position cannot tell "true false" from "false true" apart from
its own token); with positions 1.00.
"""

import inspect

from common import dataset, experiment, parser, setup

import minitx.functional as mf
from minitx.classify import TrainSettings

args = parser(__doc__, epochs=3).parse_args()
setup(args)
print(inspect.getsource(mf.position_embedding))
data = dataset("xor", args)
settings = TrainSettings(epochs=args.epochs, lr=1e-2, batch=16, max_len=None, progress=False)
for positions in (False, True):
    experiment(f"xor simple, select, positions={positions}", data, "simple", settings, args.seeds,
               emb=16, pool="select", positions=positions, max_len=2)
