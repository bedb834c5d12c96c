"""Modules are thin: their state_dict keys are the dict paths and they compute exactly the functions."""

import functools
from dataclasses import replace

import pytest
import torch

import minitx.functional as mf
from minitx import ClassifierConfig, LMConfig
from minitx.nn import LM, Classifier, ParameterTree, SelfAttention, TransformerBlock


def test_state_dict_keys_are_the_parameter_paths():
    config = LMConfig(vocab=7, emb=8, heads=2, depth=2, context=6)
    module = LM(config)
    assert list(module.state_dict()) == [path for path, _ in mf.tree_items(mf.init_lm(config))]
    assert "blocks.1.attn.q.weight" in module.state_dict()


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_lm_module_equals_function_and_checkpoints_cross_over(norm):
    config = LMConfig(vocab=7, emb=8, heads=2, depth=2, context=6, norm=norm)
    module = LM(config, torch.Generator().manual_seed(0)).eval()
    tokens = torch.randint(0, 7, (3, 6))
    params = mf.tree_from_state_dict(module.state_dict())            # module checkpoint -> functions
    torch.testing.assert_close(module(tokens), mf.lm(params, tokens, config))

    fresh = mf.init_lm(config, torch.Generator().manual_seed(5))    # functional params -> module
    module.load_state_dict(dict(mf.tree_items(fresh)))
    torch.testing.assert_close(module(tokens), mf.lm(fresh, tokens, config))


def test_classifier_module_equals_function_with_mask_and_gradients_reach_every_parameter():
    config = ClassifierConfig(vocab=9, emb=8, attention="full", heads=2, depth=2, blocks=True, positions=True,
                              max_len=10)
    module = Classifier(config)
    tokens = torch.randint(0, 9, (4, 10))
    mask = torch.arange(10)[None, :] < torch.tensor([[10], [4], [7], [1]])
    logits = module(tokens, mask)
    torch.testing.assert_close(logits, mf.classifier(mf.tree_from_state_dict(module.state_dict()), tokens, config,
                                                     mask=mask))
    logits.sum().backward()
    assert all(p.grad is not None for p in module.parameters())


# A module's forward must hand every argument it takes (and every setting it holds: norm, backend, dropout, the
# train/eval flag) on to its function. Each test below checks the module against the function called with that
# argument, and checks that the argument changes the result, so a module that dropped it could not pass.

def _differs(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape != b.shape or not torch.allclose(a, b, atol=1e-5)


def _inputs():
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0))
    mask = torch.arange(5)[None, :] < torch.tensor([[5], [3]])                  # the second row: 2 pad positions
    return x, mask


def _module_equals_function_for_each_mask_and_causal(module, function, backend, backends_used) -> dict:
    """Module and ``function(mask, causal)`` agree for masked / unmasked x causal / not, each call on
    ``backend``, and the four outputs all differ (each argument counts). Returns them by (masked, causal)."""
    x, mask = _inputs()
    outputs = {}
    for masked in (False, True):
        for causal in (False, True):
            backends_used.clear()
            got = module(x, mask if masked else None, causal=causal)
            assert backends_used == [backend]
            outputs[masked, causal] = function(x, mask if masked else None, causal)
            torch.testing.assert_close(got, outputs[masked, causal])
    results = list(outputs.values())
    assert all(_differs(a, b) for i, a in enumerate(results) for b in results[i + 1:])
    return outputs


@pytest.mark.parametrize("backend", ["scratch", "sdpa"])
def test_attention_module_passes_mask_causal_and_backend(backend, backends_used):
    module = SelfAttention(8, 2, torch.Generator().manual_seed(1), backend=backend)
    _module_equals_function_for_each_mask_and_causal(
        module, lambda x, mask, causal: mf.self_attention(module.tree(), x, 2, mask=mask, causal=causal,
                                                          backend=backend),
        backend, backends_used)


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("backend", ["scratch", "sdpa"])
def test_block_module_passes_mask_causal_norm_and_backend(norm, backend, backends_used):
    module = TransformerBlock(8, 2, torch.Generator().manual_seed(1), norm=norm, backend=backend).eval()

    def block(x, mask, causal, norm=norm):
        return mf.transformer_block(module.tree(), x, 2, mask=mask, causal=causal, norm=norm, backend=backend)

    outputs = _module_equals_function_for_each_mask_and_causal(module, block, backend, backends_used)
    x, mask = _inputs()
    assert _differs(outputs[True, True], block(x, mask, True, norm="pre" if norm == "post" else "post"))


@pytest.mark.parametrize("kind", ["attention", "block"])
def test_attention_and_block_modules_pass_last_and_cache(kind):
    module = (SelfAttention(8, 2, torch.Generator().manual_seed(1)) if kind == "attention"
              else TransformerBlock(8, 2, torch.Generator().manual_seed(1), norm="pre").eval())
    function = mf.self_attention if kind == "attention" else functools.partial(mf.transformer_block, norm="pre")
    x, _ = _inputs()
    full = function(module.tree(), x, 2, causal=True)
    tail = module(x, causal=True, last=2)
    assert tail.shape == (2, 2, 8)
    torch.testing.assert_close(tail, full[:, -2:])
    cache = mf.LayerCache()
    with torch.no_grad():                              # the cache writes in place: it is for inference
        first, second = module(x[:, :3], causal=True, cache=cache), module(x[:, 3:], causal=True, cache=cache)
    torch.testing.assert_close(torch.cat([first, second], dim=1), full)
    assert _differs(second, function(module.tree(), x[:, 3:], 2, causal=True))       # the cache counts


def test_block_module_follows_eval_and_train_with_dropout():
    x, mask = _inputs()
    module = TransformerBlock(8, 2, torch.Generator().manual_seed(1), dropout=0.3, norm="pre").eval()
    evaluated = module(x, mask, causal=True)
    torch.testing.assert_close(module(x, mask, causal=True), evaluated)             # no dropout in eval mode
    torch.testing.assert_close(evaluated, mf.transformer_block(module.tree(), x, 2, mask=mask, causal=True,
                                                               dropout=0.3, training=False, norm="pre"))
    module.train()                 # forward takes no generator: both calls draw the same global random numbers
    with torch.random.fork_rng():
        torch.manual_seed(7)
        trained = module(x, mask, causal=True)
        torch.manual_seed(7)
        expected = mf.transformer_block(module.tree(), x, 2, mask=mask, causal=True, dropout=0.3, training=True,
                                        norm="pre")
    torch.testing.assert_close(trained, expected)
    assert _differs(trained, evaluated)                                              # dropout did drop


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("backend", ["scratch", "sdpa"])
def test_lm_module_passes_last_and_cache(norm, backend, backends_used):
    config = LMConfig(vocab=7, emb=8, heads=2, depth=2, context=6, norm=norm, backend=backend)
    module = LM(config, torch.Generator().manual_seed(0)).eval()
    tokens = torch.randint(0, 7, (3, 6), generator=torch.Generator().manual_seed(1))
    full = mf.lm(module.tree(), tokens, config)
    backends_used.clear()
    torch.testing.assert_close(module(tokens), full)
    assert backends_used == [backend] * config.depth

    tail = module(tokens, last=2)
    assert tail.shape == (3, 2, 7)
    torch.testing.assert_close(tail, full[:, -2:])

    cache = mf.init_cache(config)
    with torch.no_grad():                              # the cache writes in place: it is for inference
        first, second = module(tokens[:, :4], cache), module(tokens[:, 4:], cache)
    assert cache.length == 6
    assert first.shape == (3, 4, 7) and second.shape == (3, 2, 7)
    torch.testing.assert_close(torch.cat([first, second], dim=1), full)
    assert _differs(second, mf.lm(module.tree(), tokens[:, 4:], config))             # the cache counts


def test_lm_module_follows_eval_and_train_with_dropout():
    config = LMConfig(vocab=7, emb=8, heads=2, depth=2, context=6, dropout=0.3)
    module = LM(config, torch.Generator().manual_seed(0)).eval()
    tokens = torch.randint(0, 7, (3, 6), generator=torch.Generator().manual_seed(1))
    evaluated = module(tokens)
    torch.testing.assert_close(module(tokens), evaluated)
    torch.testing.assert_close(evaluated, mf.lm(module.tree(), tokens, config, training=False))
    module.train()
    with torch.random.fork_rng():
        torch.manual_seed(7)
        trained = module(tokens)
        torch.manual_seed(7)
        expected = mf.lm(module.tree(), tokens, config, training=True)
    torch.testing.assert_close(trained, expected)
    assert _differs(trained, evaluated)


@pytest.mark.parametrize("pool", ["mean", "max", "select"])
def test_classifier_module_passes_mask_pool_and_training(pool):
    config = ClassifierConfig(vocab=9, emb=8, attention="full", heads=2, depth=2, blocks=True, positions=True,
                              max_len=10, pool=pool, dropout=0.3)
    module = Classifier(config, torch.Generator().manual_seed(0)).eval()
    tokens = torch.randint(0, 9, (4, 10), generator=torch.Generator().manual_seed(1))
    mask = torch.arange(10)[None, :] < torch.tensor([[10], [4], [7], [1]])
    evaluated = module(tokens, mask)
    torch.testing.assert_close(module(tokens, mask), evaluated)
    torch.testing.assert_close(evaluated, mf.classifier(module.tree(), tokens, config, mask=mask, training=False))
    assert _differs(evaluated, mf.classifier(module.tree(), tokens, config))         # the mask counts
    for other in {"mean", "max", "select"} - {pool}:                                 # and so does the pool
        assert _differs(evaluated, mf.classifier(module.tree(), tokens, replace(config, pool=other), mask=mask))
    module.train()
    with torch.random.fork_rng():
        torch.manual_seed(7)
        trained = module(tokens, mask)
        torch.manual_seed(7)
        expected = mf.classifier(module.tree(), tokens, config, mask=mask, training=True)
    torch.testing.assert_close(trained, expected)
    assert _differs(trained, evaluated)


def test_parameter_names_that_clash_with_module_attributes_are_refused():
    with pytest.raises(ValueError, match="clashes"):
        ParameterTree({"forward": torch.ones(1)})
