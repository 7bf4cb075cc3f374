"""The model artifact: a directory with ``config.json`` and ``weights.safetensors``.

Loadable by any PyTorch user without seqstream (see docs/models.md). Loading checks
everything it can and names exactly what is wrong; it never unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from seqstream.model.errors import ModelError
from seqstream.model.network import SequenceModel
from seqstream.model.spec import FORMAT_VERSION, READABLE_FORMATS, ModelSpec

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
DEMO_MODEL_DIR = Path(__file__).resolve().parent / "demo_model"  # see demo_model/README.md
DEMO_CARRY_MODEL_DIR = DEMO_MODEL_DIR.parent / "demo_carry_model"  # see its README.md


class ArtifactError(ModelError):
    """The artifact is missing, corrupt, or does not fit what it is used with."""


@dataclass(frozen=True)
class LoadedModel:
    spec: ModelSpec
    network: SequenceModel  # in eval mode, float32, on the CPU
    path: Path


def expected_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes the weights file must hold for this spec."""
    network = SequenceModel(spec.lstm, spec.head)
    return {name: tuple(t.shape) for name, t in network.state_dict().items()}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_artifact(network: SequenceModel, spec: ModelSpec, directory: str | Path) -> ModelSpec:
    """Write weights then config (with the weights' sha256); returns the spec as written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {
        name: t.detach().to("cpu", torch.float32).contiguous()
        for name, t in network.state_dict().items()
    }
    missing = set(expected_shapes(spec)) ^ set(tensors)
    if missing:
        raise ArtifactError(
            f"network does not match its spec; differing tensors: {sorted(missing)}"
        )
    weights = directory / WEIGHTS_FILE
    save_file(tensors, str(weights), metadata={"format_version": str(FORMAT_VERSION)})
    weights.chmod(0o644)  # safetensors writes 0600; artifacts are shipped to other users/hosts
    written = spec.model_copy(update={"weights_sha256": sha256_of(weights)})
    (directory / CONFIG_FILE).write_text(
        json.dumps(written.model_dump(mode="json"), indent=2) + "\n"
    )
    return written


def read_spec(directory: str | Path) -> ModelSpec:
    """Parse and validate ``config.json`` alone (cheap: for start-up checks on the driver)."""
    directory = Path(directory)
    config = directory / CONFIG_FILE
    if not directory.is_dir():
        raise ArtifactError(f"model artifact not found: {directory} is not a directory")
    if not config.is_file():
        raise ArtifactError(f"model artifact {directory} has no {CONFIG_FILE}")
    return spec_from_file(config)


def spec_from_file(config: Path) -> ModelSpec:
    """A spec from a ``config.json``-format file, with what is wrong in it named."""
    if not config.is_file():
        raise ArtifactError(f"model config not found: {config}")
    try:
        raw = json.loads(config.read_text())
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{config} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ArtifactError(f"{config} must hold a JSON object")
    version = raw.get("format_version")
    if version not in READABLE_FORMATS:
        raise ArtifactError(
            f"{config}: format_version {version!r} is not supported (this seqstream reads "
            f"{', '.join(map(str, READABLE_FORMATS))})"
        )
    try:
        return ModelSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()
        )
        raise ArtifactError(f"{config} is invalid: {problems}") from None


def load_artifact(directory: str | Path) -> LoadedModel:
    """Validate config, hash, tensor names and shapes, then build the network in eval mode."""
    directory = Path(directory)
    spec = read_spec(directory)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise ArtifactError(f"model artifact {directory} has no {WEIGHTS_FILE}")
    actual = sha256_of(weights)
    if spec.weights_sha256 != actual:
        raise ArtifactError(
            f"{weights}: sha256 is {actual} but {CONFIG_FILE} says {spec.weights_sha256}; "
            "the weights were changed, truncated or belong to another model"
        )
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise ArtifactError(f"{weights} is not a readable safetensors file: {exc}") from None
    expected = expected_shapes(spec)
    problems = [
        f"missing {name} {list(shape)}" for name, shape in expected.items() if name not in tensors
    ]
    problems += [f"unexpected {name}" for name in tensors if name not in expected]
    problems += [
        f"{name} has shape {list(tensors[name].shape)}, the config implies {list(shape)}"
        for name, shape in expected.items()
        if name in tensors and tuple(tensors[name].shape) != shape
    ]
    problems += [
        f"{name} is {t.dtype}, expected torch.float32"
        for name, t in tensors.items()
        if t.dtype != torch.float32
    ]
    if problems:
        raise ArtifactError(f"{weights} does not fit {CONFIG_FILE}: " + "; ".join(problems))
    # A NaN or inf weight makes every score NaN, and NaN scores are written nowhere.
    broken = [
        f"{name} ({int((~torch.isfinite(t)).sum())} of {t.numel()} values)"
        for name, t in sorted(tensors.items())
        if not bool(torch.isfinite(t).all())
    ]
    if broken:
        raise ArtifactError(
            f"{weights} holds NaN or infinite weights in {', '.join(broken)}: "
            "the model was saved from a diverged training run; retrain or use another version"
        )
    network = SequenceModel(spec.lstm, spec.head)
    network.load_state_dict(tensors)
    network.eval()
    return LoadedModel(spec, network, directory)
