"""Model configurations: one dataclass per model family.

A config says *what* model to build; `init_*` builds its parameters and the apply function runs it. Every
field has a default that trains on a laptop CPU, and `validate()` turns a bad combination into a clear error
before any tensor is made.
"""

import operator
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, TypeVar

Attention = Literal["none", "simple", "full"]
Pool = Literal["mean", "max", "select"]
Norm = Literal["post", "pre"]
Backend = Literal["scratch", "sdpa"]


Config = TypeVar("Config")


def config_from_dict(cls: type[Config], saved: dict[str, Any]) -> Config:
    """A config rebuilt from its `to_dict` (a checkpoint's); a field this version does not know is a clear
    error rather than a TypeError from the constructor."""
    unknown = sorted(set(saved) - {field.name for field in fields(cls)})
    if unknown:
        raise ValueError(f"the saved {cls.__name__} has fields this version of minitx does not know: {unknown} "
                         "(saved by another version?)")
    return cls(**saved)


def whole_number(value: Any) -> int | None:
    """``value`` as a plain int if it is a whole number: an int, a NumPy integer or a one-element integer tensor
    (``stream.max() + 1``); None for anything else, a bool (an int to Python) or a float such as 8.0 included."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def check_integer(settings: object, *names: str) -> None:
    """A clear error naming the first field in ``names`` that is not a `whole_number` (8.0 or '8' would fail
    later, inside torch, with a message about its arguments); the others become plain ints, which JSON and
    checkpoints can hold."""
    for name in names:
        value = getattr(settings, name)
        number = whole_number(value)
        if number is None:
            raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
        setattr(settings, name, number)


def check_positive(settings: object, *names: str) -> None:
    """A clear error naming the first field in ``names`` of ``settings`` that is not > 0 (the command-line flags
    carry the same names, with - for _)."""
    for name in names:
        if not getattr(settings, name) > 0:              # `not >` also catches NaN
            raise ValueError(f"{name} must be positive, got {getattr(settings, name)}")


def check_non_negative(settings: object, *names: str) -> None:
    """As `check_positive`, for fields that may be 0."""
    for name in names:
        if not getattr(settings, name) >= 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(settings, name)}")


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_heads(emb: int, heads: int) -> None:
    """Multi-head attention splits emb features into equal heads; say so when it cannot."""
    if heads < 1:
        raise ValueError(f"heads must be positive, got {heads}")
    if emb % heads != 0:
        raise ValueError(f"emb ({emb}) must be divisible by heads ({heads}): each head gets emb // heads features")


@dataclass
class ClassifierConfig:
    """Sequence classifier of questions 2-9.

    - ``attention='none'``: the baseline (embedding, pool, linear), Q2-Q3.
    - ``attention='simple'``: ``depth`` layers of parameter-free self-attention, Q4-Q5.
    - ``attention='full'``: ``depth`` layers of multi-head self-attention with projections, Q6-Q7.
    - ``positions=True`` adds learned position embeddings (Q8); ``blocks=True`` wraps each full attention
      layer in a transformer block (layer norm, feed-forward, residuals, dropout), Q9.
    """

    vocab: int
    classes: int = 2
    emb: int = 300
    attention: Attention = "none"
    heads: int = 4
    depth: int = 1
    positions: bool = False
    max_len: int = 512
    pool: Pool = "mean"
    dropout: float = 0.0
    norm: Norm = "post"
    blocks: bool = False
    backend: Backend = "scratch"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _check_choice("attention", self.attention, ("none", "simple", "full"))
        _check_choice("pool", self.pool, ("mean", "max", "select"))
        _check_choice("norm", self.norm, ("post", "pre"))
        _check_choice("backend", self.backend, ("scratch", "sdpa"))
        check_integer(self, "vocab", "classes", "emb", "heads", "depth", "max_len")
        check_positive(self, "vocab", "classes", "emb", "max_len")
        check_non_negative(self, "depth")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.attention == "full":
            check_heads(self.emb, self.heads)
        if self.blocks and self.attention != "full":
            raise ValueError("blocks=True needs attention='full': a transformer block wraps multi-head attention")
        if self.attention != "none" and self.depth < 1:   # no layer at all is the baseline: say attention='none'
            raise ValueError(f"attention={self.attention!r} needs depth >= 1, got {self.depth}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LMConfig:
    """GPT-style character model of questions 10-14: causal transformer blocks and per-position logits.

    Pre-norm is the default here (unlike the classifier's course-style post-norm) because deep causal
    models train more stably with it; ``norm='post'`` gives the course's block.
    """

    vocab: int
    emb: int = 128
    heads: int = 4
    depth: int = 4
    context: int = 256
    dropout: float = 0.0
    norm: Norm = "pre"
    backend: Backend = "scratch"

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        _check_choice("norm", self.norm, ("post", "pre"))
        _check_choice("backend", self.backend, ("scratch", "sdpa"))
        check_integer(self, "vocab", "emb", "heads", "depth", "context")
        check_positive(self, "vocab", "emb", "depth", "context")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        check_heads(self.emb, self.heads)

    def to_dict(self) -> dict:
        return asdict(self)


# The optional Wikipedia (enwik8) model: about 38M parameters, fits one 24 GB GPU with batches of 64 under bf16.
# `examples/wikipedia.py` trains it; `bench.gpu` measures its training throughput.
ENWIK8_MODEL = {"emb": 512, "heads": 8, "depth": 12, "context": 512, "dropout": 0.1, "backend": "sdpa"}
