"""Q7: full (multi-head, scaled, projected) versus simple self-attention, select pooling, synth and XOR.

Expected: on XOR, simple <= 0.75 and full = 1.00 with 2+ heads, but <= 0.75 with one head (every output of
one head on "a b" is a mix of the two value vectors, so the four inputs fall on one line). On synth, one layer
of simple attention is capped at 0.75 and full attention with 2+ heads can reach 1.00. See docs/results.md.
"""

from common import dataset, experiment, parser, setup

from minitx.classify import TrainSettings

args = parser(__doc__, epochs=3).parse_args()
setup(args)
settings = TrainSettings(epochs=args.epochs, lr=1e-2, batch=16, max_len=None, progress=False)
for name in ("xor", "synth"):
    data = dataset(name, args)
    experiment(f"{name} simple, select", data, "simple", settings, args.seeds, emb=16, pool="select")
    for heads in (1, 4):
        experiment(f"{name} full ({heads} head{'s' * (heads > 1)}), select", data, "full", settings, args.seeds,
                   emb=16, heads=heads, pool="select")
