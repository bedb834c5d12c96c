"""Parameter trees: nested dicts (and lists) of tensors, the currency of `minitx.functional`."""

from collections.abc import Callable, Iterator
from typing import Any

import torch

Params = dict[str, Any]  # nested: str -> Tensor | Params | list[Params]


def tree_map(fn: Callable[[torch.Tensor], torch.Tensor], tree: Any) -> Any:
    """Apply ``fn`` to every tensor of a parameter tree, keeping its shape (dicts, lists) intact.

    Typical uses: ``tree_map(lambda t: t.double(), params)`` for gradcheck, ``tree_map(lambda t: t.to(dev), params)``.
    """
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if isinstance(tree, dict):
        return {key: tree_map(fn, value) for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        return [tree_map(fn, value) for value in tree]
    raise TypeError(f"a parameter tree holds dicts, lists and tensors, not {type(tree).__name__}")


def tree_items(tree: Any, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    """Yield ``(path, tensor)`` pairs with dotted paths, the same names ``state_dict()`` uses.

    ``{'blocks': [{'attn': {'q': {'weight': w}}}]}`` yields ``('blocks.0.attn.q.weight', w)``.
    """
    if isinstance(tree, torch.Tensor):
        yield prefix, tree
        return
    children = tree.items() if isinstance(tree, dict) else enumerate(tree)
    for key, value in children:
        yield from tree_items(value, f"{prefix}.{key}" if prefix else str(key))


def count_parameters(tree: Any) -> int:
    """Total number of scalars in a parameter tree."""
    return sum(tensor.numel() for _, tensor in tree_items(tree))


def tree_from_state_dict(state_dict: dict[str, torch.Tensor]) -> Params:
    """Rebuild the nested parameter tree from dotted names (the inverse of `tree_items`).

    A level whose keys are all ``0, 1, 2, ...`` becomes a list, so ``blocks.0.attn.q.weight`` lands in
    ``params['blocks'][0]['attn']['q']['weight']``. This is how a module's checkpoint loads into the functions.
    """
    root: dict = {}
    for name, tensor in state_dict.items():
        *parents, leaf = name.split(".")
        node = root
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = tensor
    return _lists_from_digit_keys(root)


def _lists_from_digit_keys(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    children = {key: _lists_from_digit_keys(value) for key, value in node.items()}
    if children and all(key.isdigit() for key in children):
        return [children[str(i)] for i in range(len(children))]
    return children
