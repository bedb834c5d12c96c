"""Modules are thin: their state_dict keys are the dict paths and they compute exactly the functions."""

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


def test_attention_and_block_modules_equal_functions():
    x = torch.randn(2, 5, 8)
    attention = SelfAttention(8, 2)
    torch.testing.assert_close(attention(x, causal=True), mf.self_attention(attention.tree(), x, 2, causal=True))
    block = TransformerBlock(8, 2, norm="pre").eval()
    torch.testing.assert_close(block(x), mf.transformer_block(block.tree(), x, 2, norm="pre"))


def test_parameter_names_that_clash_with_module_attributes_are_refused():
    with pytest.raises(ValueError, match="clashes"):
        ParameterTree({"forward": torch.ones(1)})
