"""Whole models: causal prefixes, padding invariance, cached decoding, gradients, errors."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import minitx.functional as mf
from minitx import ClassifierConfig, LMConfig

f64 = torch.float64


def double(params):
    return mf.tree_map(lambda p: p.double(), params)


CLASSIFIER_VARIANTS = [
    dict(attention="none", pool="mean"),
    dict(attention="none", pool="max"),
    dict(attention="simple", pool="select"),
    dict(attention="simple", pool="max", positions=True),
    dict(attention="full", pool="select", heads=2),
    dict(attention="full", pool="mean", heads=2, depth=2, blocks=True, positions=True),
    dict(attention="full", pool="max", heads=2, depth=2, blocks=True, norm="pre"),
]


@pytest.mark.parametrize("variant", CLASSIFIER_VARIANTS)
@given(seed=st.integers(0, 2**31 - 1), lengths=st.lists(st.integers(1, 6), min_size=1, max_size=4))
def test_classifier_padding_never_changes_a_sequence_result(variant, seed, lengths):
    config = ClassifierConfig(vocab=11, classes=3, emb=4, max_len=9, **variant)
    g = torch.Generator().manual_seed(seed)
    params = double(mf.init_classifier(config, g))
    seqs = [torch.randint(1, 11, (n,), generator=g) for n in lengths]
    width = max(lengths) + 2                                          # extra padding beyond the longest
    tokens = torch.zeros(len(seqs), width, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.bool)
    for row, seq in enumerate(seqs):
        tokens[row, : len(seq)], mask[row, : len(seq)] = seq, True
    batched = mf.classifier(params, tokens, config, mask=mask)
    for row, seq in enumerate(seqs):
        alone = mf.classifier(params, seq[None], config)
        torch.testing.assert_close(batched[row : row + 1], alone)


def small_lm(seed=0, **overrides):
    config = LMConfig(**{"vocab": 13, "emb": 8, "heads": 2, "depth": 2, "context": 12, **overrides})
    return config, double(mf.init_lm(config, torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize("norm", ["pre", "post"])
@given(seed=st.integers(0, 2**31 - 1), t=st.integers(2, 12))
def test_lm_prefix_output_is_the_prefix_of_the_output(norm, seed, t):
    config, params = small_lm(seed, norm=norm)
    tokens = torch.randint(0, 13, (2, t), generator=torch.Generator().manual_seed(seed))
    full = mf.lm(params, tokens, config)
    for cut in range(1, t):
        torch.testing.assert_close(mf.lm(params, tokens[:, :cut], config), full[:, :cut])
        changed = tokens.clone()
        changed[:, cut:] = (changed[:, cut:] + 1) % 13
        torch.testing.assert_close(mf.lm(params, changed, config)[:, :cut], full[:, :cut])


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("backend", ["scratch", "sdpa"])
@given(seed=st.integers(0, 2**31 - 1), t=st.integers(1, 12), data=st.data())
def test_lm_last_positions_equal_the_tail_of_the_full_output(norm, backend, seed, t, data):
    """``last=n`` skips work in the final block only: its logits are the full forward's last n."""
    config, params = small_lm(seed, norm=norm, backend=backend, depth=3)
    tokens = torch.randint(0, 13, (2, t), generator=torch.Generator().manual_seed(seed))
    n = data.draw(st.integers(1, t))
    out = mf.lm(params, tokens, config, last=n)
    assert out.shape == (2, n, 13)
    torch.testing.assert_close(out, mf.lm(params, tokens, config)[:, -n:])


@pytest.mark.parametrize("last", [0, -2])
def test_lm_last_below_one_is_a_clear_error(last):
    """``x[:, -0:]`` is every position: without the check ``last=0`` would return the full output silently."""
    config, params = small_lm(0)
    with pytest.raises(ValueError, match="last must be a positive number"):
        mf.lm(params, torch.randint(0, 13, (1, 5)), config, last=last)


@given(seed=st.integers(0, 2**31 - 1))
def test_stacked_qkv_tree_computes_the_same_as_the_plain_tree(seed):
    config, params = small_lm(seed)
    stacked = mf.with_stacked_qkv(params)
    assert all("qkv" in block["attn"] for block in stacked["blocks"])
    assert all("qkv" not in block["attn"] for block in params["blocks"])     # the original is left alone
    tokens = torch.randint(0, 13, (2, 12), generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(mf.lm(stacked, tokens, config), mf.lm(params, tokens, config))


@pytest.mark.parametrize("backend", ["scratch", "sdpa"])
@given(seed=st.integers(0, 2**31 - 1), prompt=st.integers(1, 6))
def test_kv_cache_decoding_equals_full_forward_step_by_step(backend, seed, prompt):
    config, params = small_lm(seed, backend=backend)
    tokens = torch.randint(0, 13, (3, 12), generator=torch.Generator().manual_seed(seed))
    full = mf.lm(params, tokens, config)
    cache = mf.init_cache(config)
    pieces = [mf.lm(params, tokens[:, :prompt], config, cache=cache)]       # the prompt in one go
    for i in range(prompt, 12):
        pieces.append(mf.lm(params, tokens[:, i : i + 1], config, cache=cache))
        assert cache.length == i + 1
    torch.testing.assert_close(torch.cat(pieces, dim=1), full)


@pytest.mark.parametrize("variant", CLASSIFIER_VARIANTS[2:])
def test_sdpa_backend_equals_scratch_for_classifiers(variant):
    config = ClassifierConfig(vocab=11, emb=4, max_len=9, **variant)
    params = double(mf.init_classifier(config, torch.Generator().manual_seed(0)))
    tokens = torch.randint(0, 11, (3, 7))
    mask = torch.arange(7)[None, :] < torch.tensor([[7], [3], [1]])
    fast = ClassifierConfig(**{**config.to_dict(), "backend": "sdpa"})
    torch.testing.assert_close(mf.classifier(params, tokens, fast, mask=mask),
                               mf.classifier(params, tokens, config, mask=mask))


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_gradcheck_transformer_block_in_float64(norm):
    g = torch.Generator().manual_seed(0)
    params = double(mf.init_transformer_block(4, 2, g))
    x = torch.randn(2, 3, 4, generator=g, dtype=f64, requires_grad=True)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    names, leaves = zip(*mf.tree_items(params), strict=True)
    leaves = [leaf.requires_grad_() for leaf in leaves]

    def block(x, *leaves):
        tree = mf.tree_from_state_dict(dict(zip(names, leaves, strict=True)))
        return mf.transformer_block(tree, x, 2, mask=mask, causal=True, norm=norm)

    assert torch.autograd.gradcheck(block, (x, *leaves))


def test_dropout_is_active_only_in_training_and_reproducible():
    config = LMConfig(vocab=13, emb=8, heads=2, depth=1, context=8, dropout=0.5)
    params = mf.init_lm(config, torch.Generator().manual_seed(0))
    tokens = torch.randint(0, 13, (2, 8))
    assert torch.equal(mf.lm(params, tokens, config), mf.lm(params, tokens, config))

    def train_run(seed):
        return mf.lm(params, tokens, config, training=True, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(train_run(1), train_run(1))
    assert not torch.equal(train_run(1), train_run(2))


def test_too_long_sequence_names_both_lengths():
    config, params = small_lm()
    with pytest.raises(ValueError, match="length 13 .* table \\(12 positions\\)"):
        mf.lm(params, torch.zeros(1, 13, dtype=torch.long), config)
    cache = mf.init_cache(config)
    mf.lm(params, torch.zeros(1, 10, dtype=torch.long), config, cache=cache)
    with pytest.raises(ValueError, match="length 13"):
        mf.lm(params, torch.zeros(1, 3, dtype=torch.long), config, cache=cache)
    with pytest.raises(ValueError, match=r"10 positions in the cache, 3 new.*start a new cache"):
        mf.lm(params, torch.zeros(1, 3, dtype=torch.long), config, cache=cache)


def test_a_cached_call_that_fails_part_way_leaves_the_cache_as_it_found_it():
    """A call that failed in its second block (here float32 weights on a float64 cache) left the first block's
    cache one position ahead: the next call then attended at the wrong positions, silently."""
    config, params = small_lm()                                                  # float64 weights
    tokens = torch.randint(0, 13, (2, 5), generator=torch.Generator().manual_seed(1))
    full = mf.lm(params, tokens, config)
    cache = mf.init_cache(config)
    mf.lm(params, tokens[:, :3], config, cache=cache)
    broken = {**params, "blocks": [params["blocks"][0], mf.tree_map(lambda t: t.float(), params["blocks"][1])]}
    with pytest.raises(RuntimeError):
        mf.lm(broken, tokens[:, 3:4], config, cache=cache)
    assert [layer.length for layer in cache.layers] == [3, 3]
    torch.testing.assert_close(mf.lm(params, tokens[:, 3:], config, cache=cache), full[:, 3:])


@pytest.mark.parametrize("where", ["head", "final norm"])
def test_a_cached_call_that_fails_after_the_blocks_leaves_the_cache_as_it_found_it(where, monkeypatch):
    """The head makes the largest tensor of a call (out of memory), and Ctrl-C can land anywhere: a failure
    after the last block left every layer one call ahead."""
    config, params = small_lm()
    tokens = torch.randint(0, 13, (2, 5), generator=torch.Generator().manual_seed(1))
    full = mf.lm(params, tokens, config)
    cache = mf.init_cache(config)
    mf.lm(params, tokens[:, :3], config, cache=cache)
    if where == "head":
        broken, error = {**params, "head": {"weight": params["head"]["weight"][:, :3]}}, RuntimeError
    else:
        def interrupted(*args):
            raise KeyboardInterrupt
        monkeypatch.setattr(mf.models, "layer_norm", interrupted)
        broken, error = params, KeyboardInterrupt
    with pytest.raises(error):
        mf.lm(broken, tokens[:, 3:4], config, cache=cache)
    monkeypatch.undo()
    assert [layer.length for layer in cache.layers] == [3, 3]
    torch.testing.assert_close(mf.lm(params, tokens[:, 3:], config, cache=cache), full[:, 3:])


def test_a_first_cached_call_that_fails_leaves_a_cache_fit_for_any_batch():
    """Its buffers (batch 1) stayed, so the cache refused a batch of 2 although it held nothing."""
    config, params = small_lm()
    cache = mf.init_cache(config)
    broken = {**params, "blocks": [params["blocks"][0], mf.tree_map(lambda t: t.float(), params["blocks"][1])]}
    with pytest.raises(RuntimeError):
        mf.lm(broken, torch.zeros(1, 3, dtype=torch.long), config, cache=cache)
    tokens = torch.randint(0, 13, (2, 4), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(mf.lm(params, tokens, config, cache=cache), mf.lm(params, tokens, config))
    with pytest.raises(ValueError, match="length must be >= 0"):
        cache.truncate(-1)


def test_truncating_a_cache_shortens_its_padding_mask():
    cache = mf.init_cache(LMConfig(vocab=5, emb=4, heads=2, depth=1, context=8))
    layer = cache.layers[0]
    k = torch.randn(2, 2, 3, 2)
    layer.append(k, k, torch.tensor([[True, True, False], [True, False, False]]))
    cache.truncate(2)
    assert layer.length == 2 and torch.equal(layer.mask, torch.tensor([[True, True], [True, False]]))


def test_parameters_or_a_cache_of_another_depth_than_the_config_are_clear_errors():
    """Extra blocks ran silently (config.depth ignored); with a cache they were an IndexError."""
    config, params = small_lm()                                                   # depth 2
    tokens = torch.zeros(1, 3, dtype=torch.long)
    deeper = {**params, "blocks": [*params["blocks"], params["blocks"][0]]}
    with pytest.raises(ValueError, match="config.depth is 2, but the parameters hold 3 blocks"):
        mf.lm(deeper, tokens, config)
    with pytest.raises(ValueError, match="the cache 3 layers"):
        mf.lm(params, tokens, config, cache=mf.init_cache(LMConfig(vocab=13, emb=8, heads=2, depth=3, context=12)))


def test_a_cache_refuses_a_batch_of_another_size():
    """A batch-1 step on a batch-3 cache was broadcast into all three rows: batch-3 logits for one sequence."""
    config, params = small_lm(backend="sdpa")
    cache = mf.init_cache(config)
    mf.lm(params, torch.zeros(3, 4, dtype=torch.long), config, cache=cache)
    with pytest.raises(ValueError, match="start a new cache"):
        mf.lm(params, torch.zeros(1, 1, dtype=torch.long), config, cache=cache)


@pytest.mark.parametrize(
    "tokens, error",
    [
        (torch.zeros(2, 3), "integer tensor"),
        (torch.zeros(3, dtype=torch.long), "shape \\(batch, time\\)"),
        (torch.zeros(0, 3, dtype=torch.long), "empty batch"),
        # scratch attention crashed in a reshape; the message names the caller's tokens, not a layer's input
        (torch.zeros(2, 0, dtype=torch.long), "tokens are empty sequences"),
    ],
)
def test_bad_token_inputs_raise_clear_errors(tokens, error):
    config = ClassifierConfig(vocab=5, emb=4)
    with pytest.raises((TypeError, ValueError), match=error):
        mf.classifier(mf.init_classifier(config), tokens, config)


@pytest.mark.parametrize(
    "cls, fields, error",
    [
        (ClassifierConfig, dict(attention="full", emb=10, heads=3), "divisible by heads"),
        (ClassifierConfig, dict(pool="median"), "pool must be one of"),
        (ClassifierConfig, dict(backend="flash"), "backend must be one of"),
        (ClassifierConfig, dict(blocks=True), "needs attention='full'"),
        (ClassifierConfig, dict(dropout=1.0), "dropout"),
        (ClassifierConfig, dict(dropout=-0.1), "dropout must be in"),
        (ClassifierConfig, dict(emb=0), "emb must be positive, got 0"),     # the field by name, not the whole config
        (ClassifierConfig, dict(classes=0), "classes must be positive, got 0"),
        (ClassifierConfig, dict(depth=-1), "depth must be >= 0, got -1"),
        (ClassifierConfig, dict(attention="full", depth=0), "needs depth >= 1"),   # no layer: no state_dict key says so
        (ClassifierConfig, dict(attention="simple", depth=0), "needs depth >= 1"),
        (LMConfig, dict(emb=10, heads=3), "divisible by heads"),         # when the config is made, not at init
        (LMConfig, dict(depth=0), "depth must be positive, got 0"),
        (LMConfig, dict(dropout=1.0), "dropout must be in"),
        (LMConfig, dict(backend="flash"), "backend must be one of"),
    ],
)
def test_bad_configs_raise_clear_errors(cls, fields, error):
    with pytest.raises(ValueError, match=error):
        cls(vocab=5, **fields)


def test_heads_need_not_divide_emb_without_attention():
    """The baseline has no heads, so heads that do not divide emb are no error there: the default heads=4 with
    emb=10, say, for a baseline built in code."""
    assert ClassifierConfig(vocab=5, attention="none", emb=10, heads=3).heads == 3


@pytest.mark.parametrize("cls, fields, error", [
    (ClassifierConfig, dict(vocab=5, depth=2.0), "depth must be an integer, got 2.0"),
    (ClassifierConfig, dict(vocab="50"), "vocab must be an integer, got '50'"),
    (ClassifierConfig, dict(vocab=5, max_len=8.0), "max_len must be an integer, got 8.0"),
    (LMConfig, dict(vocab=5, emb=8.0, heads=2), "emb must be an integer"),
    (LMConfig, dict(vocab=5, context=8.5), "context must be an integer"),
    (LMConfig, dict(vocab=5, heads=True), "heads must be an integer"),
])
def test_sizes_that_are_not_integers_are_clear_errors(cls, fields, error):
    """They passed validate() and failed later inside torch.randn or range()."""
    with pytest.raises(TypeError, match=error):
        cls(**fields)


def test_numpy_and_tensor_integers_are_taken_as_plain_ints():
    """vocab=stream.max() + 1 is a natural way to size a model; the config keeps a JSON-ready int."""
    import numpy as np
    config = LMConfig(vocab=torch.tensor(12), emb=np.int64(8), heads=2)
    assert (config.vocab, config.emb) == (12, 8) and type(config.vocab) is int and type(config.emb) is int


@pytest.mark.parametrize("make, field", [
    (lambda: __import__("minitx.classify", fromlist=["x"]).TrainSettings(tokens=256.0), "tokens"),
    (lambda: __import__("minitx.lm_train", fromlist=["x"]).LMTrainSettings(steps=10.5), "steps"),
])
def test_training_counts_that_are_not_integers_are_named(make, field):
    """A float token budget failed deep in the batching, naming its parameter there (max_tokens)."""
    with pytest.raises(TypeError, match=f"{field} must be an integer"):
        make().validate()


@pytest.mark.parametrize("backend", ["scratch", "sdpa"])
def test_simple_attention_classifier_runs_on_its_configured_backend(backend, backends_used):
    config = ClassifierConfig(vocab=9, emb=8, attention="simple", depth=2, backend=backend)
    mf.classifier(mf.init_classifier(config), torch.randint(0, 9, (2, 5)), config)
    assert backends_used == [backend, backend]


# What a mutation review found unchecked: each test below fails on one plausible slip in the code.
def _randomised_block(emb, heads, seed):
    g = torch.Generator().manual_seed(seed)
    params = mf.init_transformer_block(emb, heads, g, hidden=3 * emb)
    for name in ("ln1", "ln2"):        # init makes ln1 == ln2 == (1, 0): a swap of the two would go unseen
        params[name] = {"weight": 1 + 0.5 * torch.randn(emb, generator=g, dtype=torch.float64),
                        "bias": 0.5 * torch.randn(emb, generator=g, dtype=torch.float64)}
    return mf.tree_map(lambda t: t.double(), params)


@pytest.mark.parametrize("norm", ["post", "pre"])
@pytest.mark.parametrize("causal", [False, True])
def test_transformer_block_matches_torch_encoder_layer(norm, causal):
    """Against torch's own block with copied weights (ln1 and ln2 made different): where each layer norm and
    each residual sits, pre- and post-norm, padded and causal."""
    emb, heads, b, t = 8, 2, 3, 5
    params = _randomised_block(emb, heads, seed=0)
    ref = torch.nn.TransformerEncoderLayer(emb, heads, dim_feedforward=3 * emb, dropout=0.0, activation="relu",
                                           batch_first=True, norm_first=norm == "pre").double().train()
    with torch.no_grad():
        a = params["attn"]
        ref.self_attn.in_proj_weight.copy_(torch.cat([a[n]["weight"] for n in "qkv"]))
        ref.self_attn.in_proj_bias.copy_(torch.cat([a[n]["bias"] for n in "qkv"]))
        pairs = [(a["o"], ref.self_attn.out_proj), (params["ff"]["hidden"], ref.linear1),
                 (params["ff"]["out"], ref.linear2), (params["ln1"], ref.norm1), (params["ln2"], ref.norm2)]
        for mine, theirs in pairs:
            theirs.weight.copy_(mine["weight"])
            theirs.bias.copy_(mine["bias"])
    x = torch.randn(b, t, emb, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2, [True] * 4 + [False]])
    src_mask = torch.ones(t, t, dtype=torch.bool).triu(1) if causal else None   # True = not allowed (torch)
    expected = ref(x, src_mask=src_mask, src_key_padding_mask=~mask)
    got = mf.transformer_block(params, x, heads, mask=mask, causal=causal, norm=norm)
    torch.testing.assert_close(got[mask], expected[mask])


def test_block_applies_dropout_to_the_attention_branch():
    """pre-norm with the feed-forward zeroed: out - x is dropout(attention), so about p of it is exactly 0."""
    emb, heads = 16, 2
    params = mf.init_transformer_block(emb, heads, torch.Generator().manual_seed(0))
    params["ff"] = mf.tree_map(torch.zeros_like, params["ff"])
    x = torch.randn(4, 6, emb, generator=torch.Generator().manual_seed(1))
    out = mf.transformer_block(params, x, heads, norm="pre", dropout=0.5, training=True,
                               generator=torch.Generator().manual_seed(2))
    zero_fraction = ((out - x) == 0).float().mean().item()
    assert 0.35 < zero_fraction < 0.65


def _normalised(x):
    return x.mean(-1).abs().max().item() < 1e-4 and (x.var(-1, unbiased=False) - 1).abs().max().item() < 0.05


@pytest.mark.parametrize("norm", ["pre", "post"])
def test_lm_logits_are_a_linear_read_of_a_layer_normed_stream(norm):
    """With the head set to the identity (vocab = emb), the logits are the last layer norm's output: each
    position has mean 0 and variance 1 over features (pre-norm: the final norm; post-norm: the block's ln2)."""
    config = LMConfig(vocab=16, emb=16, heads=2, depth=2, context=8, norm=norm)
    params = mf.init_lm(config, torch.Generator().manual_seed(0))
    params["head"] = {"weight": torch.eye(16), "bias": torch.zeros(16)}
    tokens = torch.randint(0, 16, (2, 8), generator=torch.Generator().manual_seed(1))
    assert _normalised(mf.lm(params, tokens, config))


def test_pre_norm_classifier_normalises_before_the_head():
    config = ClassifierConfig(vocab=10, classes=12, emb=12, attention="full", heads=2, depth=2, blocks=True,
                              norm="pre", pool="select")
    params = mf.init_classifier(config, torch.Generator().manual_seed(0))
    params["head"] = {"weight": torch.eye(12), "bias": torch.zeros(12)}
    tokens = torch.randint(0, 10, (3, 5), generator=torch.Generator().manual_seed(1))
    assert _normalised(mf.classifier(params, tokens, config))


def test_init_lm_follows_gpt2():
    """normal(0, 0.02) everywhere, zero biases, and the two projections into the residual (attn.o, ff.out)
    at 0.02 / sqrt(2 * depth)."""
    config = LMConfig(vocab=64, emb=128, heads=4, depth=8, context=64)
    params = mf.init_lm(config, torch.Generator().manual_seed(0))
    out_std = 0.02 / (2 * config.depth) ** 0.5
    for name, tensor in mf.tree_items(params):
        if ".ln" in name or name.startswith("norm"):
            continue
        if name.endswith("bias"):
            assert torch.count_nonzero(tensor) == 0, name
            continue
        expected = out_std if name.endswith(("attn.o.weight", "ff.out.weight")) else 0.02
        assert tensor.std().item() == pytest.approx(expected, rel=0.1), name


def test_lm_drops_out_the_embeddings():
    """Blocks that add nothing (o and ff.out zero, pre-norm) leave the stream dropout(tokens + positions): the
    logits are head(norm(that)), the dropout being the generator's first draw."""
    config = LMConfig(vocab=11, emb=8, heads=2, depth=1, context=6, norm="pre", dropout=0.5)
    params = mf.init_lm(config, torch.Generator().manual_seed(0))
    for block in params["blocks"]:
        block["attn"]["o"] = mf.tree_map(torch.zeros_like, block["attn"]["o"])
        block["ff"]["out"] = mf.tree_map(torch.zeros_like, block["ff"]["out"])
    tokens = torch.randint(0, 11, (2, 6), generator=torch.Generator().manual_seed(1))
    got = mf.lm(params, tokens, config, training=True, generator=torch.Generator().manual_seed(2))
    stream = mf.embedding(params["tokens"], tokens) + params["positions"]["weight"][:6]
    stream = mf.dropout(stream, 0.5, True, torch.Generator().manual_seed(2))
    torch.testing.assert_close(got, mf.linear(params["head"], mf.layer_norm(params["norm"], stream)))


def test_classifier_drops_out_the_embeddings():
    """No attention, mean pooling: the logits are head(mean(dropout(tokens + positions))), the dropout being the
    generator's first draw."""
    config = ClassifierConfig(vocab=11, classes=3, emb=8, max_len=6, positions=True, pool="mean", dropout=0.5)
    params = mf.init_classifier(config, torch.Generator().manual_seed(0))
    tokens = torch.randint(0, 11, (2, 6), generator=torch.Generator().manual_seed(1))
    got = mf.classifier(params, tokens, config, training=True, generator=torch.Generator().manual_seed(2))
    stream = mf.embedding(params["tokens"], tokens) + params["positions"]["weight"][:6]
    stream = mf.dropout(stream, 0.5, True, torch.Generator().manual_seed(2))
    torch.testing.assert_close(got, mf.linear(params["head"], stream.mean(dim=1)))


@pytest.mark.parametrize("first, second", [(None, "padded"), ("real", "padded"), ("padded", None)])
def test_cache_joins_masked_and_unmasked_chunks(first, second):
    """A chunk without a mask (None) means all its tokens are real, whatever the chunks before or after bring."""
    emb, heads, t1, t2 = 8, 2, 3, 2
    params = mf.init_self_attention(emb, heads, torch.Generator().manual_seed(0))
    x = torch.randn(2, t1 + t2, emb, generator=torch.Generator().manual_seed(1))
    m1 = (torch.tensor([[True, False, True], [True, True, False]]) if first == "padded"
          else torch.ones(2, t1, dtype=torch.bool))
    m2 = torch.tensor([[True, True], [True, False]]) if second == "padded" else torch.ones(2, t2, dtype=torch.bool)
    real = torch.cat([m1, m2], 1)
    full = mf.self_attention(params, x, heads, mask=real, causal=True)
    cache = mf.LayerCache()
    a = mf.self_attention(params, x[:, :t1], heads, mask=None if first is None else m1, causal=True, cache=cache)
    b = mf.self_attention(params, x[:, t1:], heads, mask=None if second is None else m2, causal=True, cache=cache)
    torch.testing.assert_close(torch.cat([a, b], 1)[real], full[real])


def test_truncating_a_cache_past_its_length_changes_nothing():
    """truncate(length) forgets positions from length on: a length beyond the cache's own forgets nothing."""
    config = LMConfig(vocab=7, emb=8, heads=2, depth=2, context=8)
    params, cache = mf.init_lm(config, torch.Generator().manual_seed(0)), mf.init_cache(config)
    tokens = torch.randint(0, 7, (1, 5), generator=torch.Generator().manual_seed(1))
    mf.lm(params, tokens[:, :3], config, cache=cache)
    cache.truncate(6)
    assert cache.length == 3
    torch.testing.assert_close(mf.lm(params, tokens[:, 3:], config, cache=cache)[:, -1],
                               mf.lm(params, tokens, config)[:, -1])


def test_a_classifiers_heads_must_be_an_integer():
    with pytest.raises(TypeError, match="heads must be an integer, got 2.0"):
        ClassifierConfig(vocab=5, emb=8, attention="full", heads=2.0)


@pytest.mark.parametrize("field", ["epochs", "batch", "tokens", "warmup", "log_every", "seed"])
def test_every_training_count_must_be_an_integer(field):
    import numpy as np

    from minitx.classify import TrainSettings
    with pytest.raises(TypeError, match=f"{field} must be an integer"):
        TrainSettings(**{field: 2.5}).validate()
    settings = TrainSettings(**{field: np.int64(3)})
    settings.validate()
    assert type(getattr(settings, field)) is int


@pytest.mark.parametrize("field", ["batch", "steps", "accumulate", "warmup", "log_every", "eval_every",
                                   "eval_batches", "sample_every", "sample_length", "seed_length",
                                   "checkpoint_every", "seed"])
def test_every_lm_training_count_must_be_an_integer(field):
    from minitx.lm_train import LMTrainSettings
    with pytest.raises(TypeError, match=f"{field} must be an integer"):
        LMTrainSettings(**{field: 2.5}).validate()
