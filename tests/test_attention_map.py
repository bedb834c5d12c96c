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


def test_the_command_draws_beside_the_checkpoint_and_refuses_what_it_cannot_draw(tmp_path, monkeypatch, capsys):
    """Without --out the picture goes beside model.pt (not into the working folder). A missing checkpoint,
    a layer just past the last and an IMDb model are each one line on stderr and exit 2, not a traceback."""
    model, _ = _checkpoint(tmp_path, "xor", depth=1)
    _capture(monkeypatch)
    assert attention_map.main([str(tmp_path / "model.pt")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "attention.png")
    save_checkpoint(tmp_path / "imdb.pt", model, "imdb")
    for argv, message in (([str(tmp_path / "none.pt")], "No checkpoint at"),
                          ([str(tmp_path / "model.pt"), "--layer", "1"], "layer 1 does not exist"),
                          ([str(tmp_path / "imdb.pt")], "drawn for synth or xor models")):
        assert attention_map.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("attention_map: error: ") and message in err and err.count("\n") == 1


def test_each_heat_map_is_titled_with_its_instance_and_head_and_labelled_with_its_words(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    figures, close = [], plt.close
    monkeypatch.setattr(plt, "close", lambda figure: figures.append(figure) or close(figure))
    weights = torch.softmax(torch.randn(2, 2, 3, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    attention_map.plot_attention(weights, [["a", "b", "c"], ["d", "e"]], tmp_path / "a.png", ["first", "second"])
    axes = [ax for ax in figures[0].axes if ax.get_title()]                     # not the colour bar
    assert [ax.get_title() for ax in axes] == ["first, head 1", "first, head 2", "second, head 1", "second, head 2"]
    assert [t.get_text() for t in axes[3].get_xticklabels()] == ["d", "e"]      # cut to the instance's own words
