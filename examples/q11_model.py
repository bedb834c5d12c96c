"""Q11: the causal transformer language model, and the masking that keeps position t from seeing t + 1.

    python examples/q11_model.py

The model is `minitx.functional.lm` (module twin `minitx.nn.LM`): token and position embeddings, pre-norm
transformer blocks with causal self-attention, and a linear head giving next-character logits at every position.
The mask is `minitx.functional.causal_visibility`: True on and below the diagonal (a query sees itself and
earlier keys), applied inside the one attention core `minitx.functional.attend`.
"""

import argparse
import inspect
import math

import torch

import minitx.functional as mf
from minitx import LMConfig
from minitx.cli import HelpFormatter
from minitx.data import lm_batch, load_toy
from minitx.lm_train import lm_loss
from minitx.nn import LM

argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter).parse_args()   # no flags: --help

for function in (mf.lm, mf.causal_visibility):      # the forward pass, and the mask `attend` applies
    print(inspect.getsource(function))
print("causal visibility for 5 positions (row = query, column = key):")
print(mf.causal_visibility(5, 5).int())

(train, _), (i2c, _) = load_toy(ntrain=2000, ntest=10)
config = LMConfig(vocab=len(i2c), emb=64, heads=4, depth=2, context=64)
model = LM(config, torch.Generator().manual_seed(0))
print(f"{mf.count_parameters(model.tree()):,} parameters")

inputs, targets = lm_batch(train, 8, config.context, torch.Generator().manual_seed(0))   # (8, 64) each
logits = model(inputs)                                                                    # (8, 64, vocab)
print(f"logits {tuple(logits.shape)}; untrained loss {lm_loss(logits, targets):.3f} nats per character "
      f"(uniform would be ln {len(i2c)} = {math.log(len(i2c)):.3f})")

# Causality, checked: changing a later token leaves every earlier prediction unchanged.
changed = inputs.clone()
changed[:, 40] = (changed[:, 40] + 1) % len(i2c)
assert torch.allclose(model(changed)[:, :40], logits[:, :40], atol=1e-6)
assert not torch.allclose(model(changed)[:, 40:], logits[:, 40:])
print("positions 0-39 do not see position 40: ok")
