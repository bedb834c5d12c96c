"""What a mutation review found unchecked in the parameter trees (minitx.functional.tree, minitx.nn.ParameterTree)."""


import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minitx import functional as mf
from minitx.nn import ParameterTree

leaves = st.integers(1, 3).map(lambda n: torch.randn(n))
# dict keys mix digits and names; a dict whose keys are all digits would read back as a list, so none is made
keys = st.sampled_from(["0", "1", "w", "b", "ln"])
trees = st.recursive(
    leaves,
    lambda children: st.lists(children, min_size=1, max_size=3)
    | st.dictionaries(keys, children, min_size=1, max_size=3).filter(lambda d: not all(k.isdigit() for k in d)),
    max_leaves=10,
).filter(lambda t: not isinstance(t, torch.Tensor))


def same_tree(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_tree(a[k], b[k]) for k in a)
    return isinstance(b, list) and len(a) == len(b) and all(same_tree(x, y) for x, y in zip(a, b, strict=True))


@settings(max_examples=60, deadline=None)
@given(trees, st.randoms(use_true_random=False))
def test_state_dict_names_round_trip_in_any_order(tree, rng):
    """tree_from_state_dict inverts tree_items whatever order the names come in (a file may store them
    sorted: blocks.10 before blocks.2), and a level with some digit keys stays a dict."""
    items = list(mf.tree_items(tree))
    rng.shuffle(items)
    assert same_tree(mf.tree_from_state_dict(dict(items)), tree)


@settings(max_examples=40, deadline=None)
@given(trees)
def test_tree_map_reaches_every_tensor(tree):
    """tree_map must apply its function inside lists too (the blocks of a model), keeping every path."""
    mapped = mf.tree_map(lambda t: t.double() * 2, tree)
    before, after = dict(mf.tree_items(tree)), dict(mf.tree_items(mapped))
    assert before.keys() == after.keys()
    for name, tensor in before.items():
        assert after[name].dtype == torch.float64 and torch.equal(after[name], tensor.double() * 2), name


def test_tree_map_takes_tuples_and_refuses_what_is_not_a_tree():
    pair = (torch.ones(2), {"w": torch.zeros(1)})
    assert same_tree(mf.tree_map(lambda t: t + 1, pair), [torch.full((2,), 2.0), {"w": torch.ones(1)}])
    with pytest.raises(TypeError, match="not float"):                   # a number where a tensor goes
        mf.tree_map(lambda t: t, {"scale": 0.5})


def test_count_parameters_counts_every_scalar_not_every_tensor():
    assert mf.count_parameters({"w": torch.ones(2, 3), "blocks": [{"b": torch.ones(4)}, {"b": torch.ones(1)}]}) == 11


def test_an_empty_state_dict_is_an_empty_tree():
    assert mf.tree_from_state_dict({}) == {}


@settings(max_examples=40, deadline=None)
@given(trees)
def test_parameter_tree_gives_back_the_tree_it_was_built_from(tree):
    """ParameterTree(tree).tree() is the same tree, also for a list mixing tensors and sub-trees (parameters
    and sub-modules are stored apart, so their order must be rebuilt from the names)."""
    assert same_tree(ParameterTree(tree).tree(), tree)


def test_blocks_of_a_deep_model_keep_their_order_from_sorted_names():
    """Twelve blocks stored with sorted names (0, 1, 10, 11, 2, ...) must come back as blocks 0 .. 11."""
    tree = {"blocks": [{"w": torch.full((1,), float(i))} for i in range(12)]}
    names = dict(sorted(mf.tree_items(tree)))
    rebuilt = mf.tree_from_state_dict(names)
    assert [b["w"].item() for b in rebuilt["blocks"]] == list(range(12))
