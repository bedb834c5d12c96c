"""Attention weights recomputed for the heat maps must be the weights the model actually used."""

import pytest
import torch

import minitx.attention_map as attention_map
import minitx.functional as mf
from minitx.attention_map import attention_weights, draw
from minitx.classify import model_config, save_checkpoint
from minitx.nn import Classifier


def model_and_batch(kind: str, **kwargs):
    config = model_config(kind, vocab=12, emb=8, heads=2, pool="select", max_len=6, **kwargs)
    model = Classifier(config, generator=torch.Generator().manual_seed(0)).eval()
    tokens = torch.randint(4, 12, (3, 6), generator=torch.Generator().manual_seed(1))
    mask = torch.arange(6)[None, :] < torch.tensor([6, 4, 1])[:, None]        # right-padded, one of length 1
    return model, tokens, mask


def embedded(model, tokens):
    params = model.tree()
    x = mf.embedding(params["tokens"], tokens)
    if model.config.positions:
        x = x + mf.position_embedding(params["positions"], tokens.shape[1])
    return params, x


@pytest.mark.parametrize("positions", [False, True])
def test_simple_weights_reproduce_simple_attention(positions):
    model, tokens, mask = model_and_batch("simple", positions=positions)
    params, x = embedded(model, tokens)
    (weights,) = attention_weights(params, tokens, model.config, mask)       # (b, 1, t, t)
    torch.testing.assert_close(weights[:, 0] @ x, mf.simple_self_attention(x, mask))


def test_full_weights_reproduce_multi_head_attention():
    model, tokens, mask = model_and_batch("full")
    params, x = embedded(model, tokens)
    (weights,) = attention_weights(params, tokens, model.config, mask)       # (b, h, t, t)
    layer = params["attention"][0]
    values = mf.split_heads(mf.linear(layer["v"], x), model.config.heads)    # (b, h, t, s)
    rebuilt = mf.linear(layer["o"], mf.merge_heads(weights @ values))
    torch.testing.assert_close(rebuilt, mf.self_attention(layer, x, model.config.heads, mask=mask))


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_block_weights_are_distributions_that_skip_padding(norm):
    model, tokens, mask = model_and_batch("transformer", depth=2, norm=norm)
    weights = attention_weights(model.tree(), tokens, model.config, mask)
    assert len(weights) == 2
    for w in weights:
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
        assert torch.all(w.masked_select(~mask[:, None, None, :].expand_as(w)) == 0)


def test_baseline_has_no_attention():
    model, tokens, mask = model_and_batch("baseline")
    with pytest.raises(ValueError, match="no attention"):
        attention_weights(model.tree(), tokens, model.config, mask)


def test_draw_writes_a_png(tmp_path):
    config = model_config("full", vocab=6, emb=8, heads=2, pool="select")
    save_checkpoint(tmp_path / "model.pt", Classifier(config), "xor")
    path = draw(tmp_path / "model.pt", tmp_path / "attention.png", count=2)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="count must be at least 1"):
        draw(tmp_path / "model.pt", tmp_path / "none.png", count=0)
    with pytest.raises(ValueError, match="layer 5 does not exist"):
        draw(tmp_path / "model.pt", tmp_path / "none.png", layer=5)


@pytest.mark.parametrize("start_token", [False, True])
def test_draw_loads_the_data_as_the_model_was_trained(tmp_path, monkeypatch, start_token):
    """A --start-token model is drawn on sequences that begin with .start, as it was trained (not without)."""
    config = model_config("full", vocab=7, emb=8, heads=2, pool="select")
    save_checkpoint(tmp_path / "model.pt", Classifier(config), "xor", start_token=start_token)
    drawn = []
    monkeypatch.setattr(attention_map, "plot_attention", lambda weights, words, out, titles: drawn.append(words))
    attention_map.draw(tmp_path / "model.pt", tmp_path / "attention.png", count=2)
    assert all((words[0] == ".start") == start_token for words in drawn[0])


@pytest.mark.parametrize("positions", [False, True])
def test_draw_cuts_the_sequences_to_the_models_training_length(tmp_path, monkeypatch, positions):
    """A synth model trained with --max-len 3 saw 3 tokens: with positions its table has 3 rows (drawing the
    6-token sequences failed), without them the map showed tokens it never attended to."""
    config = model_config("full", vocab=40, emb=8, heads=2, pool="select", positions=positions, max_len=3)
    save_checkpoint(tmp_path / "model.pt", Classifier(config), "synth")
    drawn = []
    monkeypatch.setattr(attention_map, "plot_attention",
                        lambda weights, words, out, titles: drawn.append((weights.shape, words)))
    attention_map.draw(tmp_path / "model.pt", tmp_path / "attention.png", count=2)
    shape, words = drawn[0]
    assert shape[-2:] == (3, 3) and all(len(sentence) == 3 for sentence in words)

