"""What a mutation review found unchecked in minitx.attention_map (pattern choice, titles, the command's flags)."""

import torch

import minitx.attention_map as attention_map
from minitx.attention_map import attention_weights
from minitx.classify import load_dataset, model_config, save_checkpoint
from minitx.data import pad_batch
from minitx.nn import Classifier


def _checkpoint(tmp_path, data_name, **kwargs):
    data = load_dataset(data_name, ntrain=10, nval=200)
    config = model_config("transformer", vocab=len(data.i2w), emb=8, heads=2, pool="select", **kwargs)
    model = Classifier(config, generator=torch.Generator().manual_seed(0)).eval()
    save_checkpoint(tmp_path / "model.pt", model, data_name)
    return model, data


def _capture(monkeypatch):
    drawn = []
    monkeypatch.setattr(attention_map, "plot_attention",
                        lambda weights, words, out, titles: drawn.append((weights, words, titles)) or out)
    return drawn


def test_draw_shows_one_instance_per_word_pattern(tmp_path, monkeypatch):
    """On synth the label is carried by the last two words (very/not, great/terrible): four pictures must
    show the four patterns, not four instances chosen by their (uninformative) first words."""
    _checkpoint(tmp_path, "synth", depth=1)
    drawn = _capture(monkeypatch)
    attention_map.draw(tmp_path / "model.pt", tmp_path / "a.png", count=4)
    _, words, _ = drawn[0]
    assert len(words) == 4 and len({tuple(w[-2:]) for w in words}) == 4


def test_titles_show_the_models_own_predictions(tmp_path, monkeypatch):
    """Each title's 'predicted' must be the model's argmax on that instance (recomputed here from the drawn
    words), and 'label' the data's label for it."""
    model, data = _checkpoint(tmp_path, "synth", depth=1)
    drawn = _capture(monkeypatch)
    attention_map.draw(tmp_path / "model.pt", tmp_path / "a.png", count=4)
    _, words, titles = drawn[0]
    seqs = [[data.w2i[w] for w in sentence] for sentence in words]
    tokens, mask = pad_batch(seqs, data.pad_idx)
    with torch.no_grad():
        predicted = model(tokens, mask).argmax(-1).tolist()
    labels = {tuple(s): y for s, y in zip(*data.val, strict=True)}
    assert titles == [f"label {labels[tuple(s)]}, predicted {p}" for s, p in zip(seqs, predicted, strict=True)]
    assert predicted != [labels[tuple(s)] for s in seqs], "an untrained model: its predictions are not the labels"


def test_the_command_passes_count_and_layer(tmp_path, monkeypatch):
    """``--count 1 --layer 0`` must draw one instance of the first layer, not four of the last."""
    model, data = _checkpoint(tmp_path, "synth", depth=2)
    drawn = _capture(monkeypatch)
    assert attention_map.main([str(tmp_path / "model.pt"), "--out", str(tmp_path / "a.png"), "--count", "1",
                               "--layer", "0"]) == 0
    weights, words, _ = drawn[0]
    assert len(words) == 1 and weights.shape[0] == 1
    tokens, mask = pad_batch([[data.w2i[w] for w in words[0]]], data.pad_idx)
    layers = attention_weights(model.tree(), tokens, model.config, mask)
    torch.testing.assert_close(weights, layers[0])
    assert not torch.allclose(layers[0], layers[1])
