"""Q3: the baseline (embedding, global pool, linear) with mean, max and select pooling on IMDb-synth, XOR and
IMDb. Prints validation accuracy, mean ± std over seeds.

Expected (docs/results.md): synth and XOR: mean 0.50, max 1.00, select 0.50; IMDb mean >= 0.88. XOR's mean pool
can land anywhere from 0.25 to 0.75 (seed 0 gives 0.2494): its loss minimum leaves near-equal logits, and
the argmax of those is noise.
"""

from common import dataset, experiment, parser, setup

from minitx.classify import TrainSettings

p = parser(__doc__, epochs=3)
p.add_argument("--imdb-epochs", type=int, default=5, help="epochs on IMDb")
p.add_argument("--imdb-seeds", type=int, default=1, help="runs per pool on IMDb (slow: ~4 min/epoch on 1 core)")
args = p.parse_args()
setup(args)

synthetic_settings = TrainSettings(epochs=args.epochs, lr=1e-3, batch=64, max_len=None, progress=False)
for name in ("synth", "xor"):
    data = dataset(name, args)
    for pool in ("mean", "max", "select"):
        experiment(f"{name} baseline {pool}", data, "baseline", synthetic_settings, args.seeds, emb=300, pool=pool)

if args.imdb_seeds:
    # A 20k-word vocabulary (rarer words -> .unk): Adam updates every embedding row each step, so a
    # 162k-row table costs most of the step time for a negligible gain.
    imdb = dataset("imdb", args, vocab=20_000)
    real = TrainSettings(epochs=args.imdb_epochs, lr=1e-3, batch=64, max_len=512, progress=False)
    for pool in ("mean", "max", "select"):
        experiment(f"imdb baseline {pool}", imdb, "baseline", real, args.imdb_seeds, emb=300, pool=pool)
