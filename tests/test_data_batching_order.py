"""What a mutation review found unchecked in minitx.data.batching."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minitx.data import fixed_batches, random_slices, token_budget_batches

lengths_lists = st.lists(st.integers(0, 40), min_size=1, max_size=60)


def test_fixed_batches_are_shuffled_and_reshuffled_each_epoch():
    """A ``shuffle`` that was ignored gave the classifier the same, length-sorted batches every epoch."""
    generator = torch.Generator().manual_seed(0)
    epochs = [fixed_batches(100, 10, generator=generator) for _ in range(2)]
    assert epochs[0] != epochs[1], "another order each epoch"
    assert [i for b in epochs[0] for i in b] != list(range(100)), "a random order, not 0, 1, 2, ..."
    assert fixed_batches(100, 10, shuffle=False) == [list(range(k, k + 10)) for k in range(0, 100, 10)]
    same = [fixed_batches(100, 10, generator=torch.Generator().manual_seed(3)) for _ in range(2)]
    assert same[0] == same[1], "seeded: the same generator state gives the same batches"


@settings(max_examples=40, deadline=None)
@given(lengths_lists, st.integers(1, 200), st.integers(1, 30))
def test_token_budget_counts_lengths_after_the_cut(lengths, max_tokens, max_len):
    """Cutting at ``max_len`` first must give the batches of the already-cut lengths: budgets counted on the
    uncut lengths made needlessly small batches (the within-budget check passes either way)."""
    cut = [min(n, max_len) for n in lengths]
    assert (token_budget_batches(lengths, max_tokens, max_len=max_len, shuffle=False)
            == token_budget_batches(cut, max_tokens, shuffle=False))


def test_a_seeded_generator_reproduces_token_budget_batches_and_windows():
    """Every random draw must come from ``generator``: one taken from the global RNG gave another run other
    batches (or other windows) from the same seed, so a resumed or repeated run did not replay its data."""
    lengths = list(range(1, 60)) * 2
    for make in (lambda g: token_budget_batches(lengths, 100, generator=g),
                 lambda g: random_slices(torch.arange(50), 8, 5, g).tolist()):
        runs = []
        for global_seed in (1, 2):
            with torch.random.fork_rng():
                torch.manual_seed(global_seed)                # the global RNG differs, the generator does not
                runs.append(make(torch.Generator().manual_seed(7)))
        assert runs[0] == runs[1]
