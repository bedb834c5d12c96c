"""Checkpoints that resume a run exactly and load safely.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)`` (no pickled code runs): the model's and optimiser's state dicts, the
schedule's state, the step, the config as a dict, the run log's series, and every random state the run
draws from (torch CPU, CUDA if any, the named generators: data, evaluation, samples) as tensors. It is written
to a temporary file and renamed over the old one, so a crash mid-write never destroys the last good checkpoint.
"""

import re
import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch

from .config import LMConfig, config_from_dict
from .nn import LM
from .tracking import write_atomically


def random_state(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    """Every random state a run draws from, as tensors: torch's global one and each named generator's."""
    state = {"torch": torch.get_rng_state(), **{name: g.get_state() for name, g in generators.items()}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(state: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    """Set the states `random_state` saved; a generator the checkpoint has no state for keeps its own."""
    torch.set_rng_state(state["torch"])
    for name, generator in generators.items():
        if name in state:
            generator.set_state(state[name])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` atomically (`minitx.tracking.write_atomically`): a temporary file, then a rename."""

    def write(temporary: str) -> None:
        try:
            torch.save(payload, temporary)
        except RuntimeError as error:   # a full disk reads "[enforce fail at inline_container.cc] unexpected pos"
            free = shutil.disk_usage(Path(temporary).parent).free
            raise OSError(f"could not write the checkpoint {path} ({free:,} bytes free on its disk): "
                          f"{str(error).strip().splitlines()[0]}") from error

    return write_atomically(path, write)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a missing or unreadable file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `python -m minitx lm --out DIR`")
    payload = load_weights_only(path, map_location, "minitx checkpoint")
    if not isinstance(payload, dict) or "model" not in payload or "config" not in payload:
        raise ValueError(f"{path} is not a minitx checkpoint (no 'model'/'config' entries)")
    return payload


def load_weights_only(path: Path, map_location: str | torch.device, what: str) -> Any:
    """``torch.load(path, weights_only=True)``; a damaged or foreign file is a ValueError saying why ("PATH is
    not a readable WHAT: ..."), whichever of its several error types torch raised (a text file starting with
    "h" gives a KeyError)."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise ValueError(f"{path} is not a readable {what}: {_unreadable(path, error)}") from error


def _unreadable(path: Path, error: Exception) -> str:
    """Why torch.load failed, in a line. Not torch's own advice to load with weights_only=False: that would
    run whatever code a foreign file holds."""
    with open(path, "rb") as file:
        head = file.read(8)
    if not head:
        return "the file is empty"
    if not zipfile.is_zipfile(path):     # torch.save writes a zip archive
        what = "a zip archive cut short" if head.startswith(b"PK") else f"not one torch.save wrote (it begins {head!r})"
        return f"it is {what}"
    refused = re.search(r"Unsupported (?:global: GLOBAL|class) (\S+)", str(error))    # torch >= 2.4 / 2.2
    if refused:                          # e.g. torch.save(model): the whole module, not a state dict
        return (f"it holds a {refused.group(1)}, and a checkpoint loads only tensors and plain data (a whole "
                "torch.save(model) is refused: minitx checkpoints hold state dicts)")
    return re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip().splitlines()[0]


def check_config(saved: dict, wanted: dict, path: str | Path) -> None:
    """Resuming into a model of another shape would fail deep inside load_state_dict: fail here, clearly."""
    differences = {k: (saved.get(k), wanted.get(k)) for k in saved.keys() | wanted.keys()
                   if saved.get(k) != wanted.get(k)}
    if differences:
        listed = ", ".join(f"{k}: checkpoint {a!r} vs asked {b!r}" for k, (a, b) in sorted(differences.items()))
        raise ValueError(f"checkpoint {path} was trained with another model config ({listed}); "
                         "use the same settings, or a fresh --out folder")


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[LM, dict[str, Any]]:
    """The model stored in a checkpoint (in eval mode) and the whole payload (vocabulary, step, ...)."""
    payload = load_checkpoint(path, map_location=device)
    model = LM(config_from_dict(LMConfig, payload["config"])).to(device)
    model.load_state_dict(payload["model"])
    return model.eval(), payload
