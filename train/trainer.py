"""The training loop: pretraining by reconstruction, then the white-box adversarial losses (Wang & Yu 2020, §3).

``Trainer.step(batch) -> dict[str, float]`` is one iteration; ``Trainer.fit()`` runs the schedule with
progress bar, logs (``metrics.jsonl``, TensorBoard), sample grids, atomic checkpoints, resume and a NaN guard.
Under ``torchrun`` the networks are wrapped in DDP (gloo on CPU, NCCL on CUDA); rank 0 alone logs and saves.

Two step implementations compute the same losses:

* **literal** (``--literal``): the authors' ``train.py`` as written — fp32, NCHW, G run three times (for the
  superpixel target, the G step and the D step), superpixels inline, VGG run once per loss.
* **fast** (default): G runs once; its detached output feeds the structure target, computed in worker
  processes while the main process runs the discriminators and VGG; one VGG pass of ``G(x)`` serves both the
  content and the structure loss; channels_last; bf16 autocast where the hardware has it (guided filters and
  losses stay fp32); D sees real and fake in one batch. The D step uses the G output of this iteration's
  forward (before G's update) rather than a third forward after it.

A step's host-side choices (the colour-shift weights, the loss-conditional factors, the loss weights of a face
step) are drawn before its device work and handed to it as one small tensor (:class:`StepDraws`): the fast step
then reads no host value and waits for nothing, so that on CUDA it can be captured once as a CUDA graph and
replayed (``--cuda-graph``, on by default wherever it can be, :mod:`train.graphed_step`): one launch instead of
some two thousand kernels.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import time
from contextlib import nullcontext
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from cartoon.checkpoint import load_generator
from cartoon.device import cpu_supports_bf16, resolve_device
from cartoon.models import PatchDiscriminator, UNetGenerator
from cartoon.models.generator import CONDITION_NAMES
from cartoon.representations.structure import StructureParams, structure_batch
from cartoon.representations.surface import SURFACE_EPS, SURFACE_RADIUS, guided_filter
from cartoon.representations.texture import color_shift, sample_weights
from train import checkpoints
from train.augment import diff_augment, parse_policy
from train.data import load_training_data
from train.graphed_step import CapturedStep, resolve_cuda_graph
from train.logs import RunLog
from train.losses import (
    cast_loss,
    chroma_variation,
    colour_loss,
    discriminator_loss,
    feature_l1,
    grey_variation,
    lsgan_loss,
    reconstruction_l1,
    total_variation,
    training_output,
)
from train.options import WEIGHT_NAMES, options_table, save_options, to_jsonable
from train.perceptual import load_perceptual, resolve_kind
from train.superpixels import DeviceStructure, SuperpixelPool, resolve_structure_path, smooth_structure_target

log = logging.getLogger("train")

SAMPLE_COUNT = 4


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; nothing is saved from that state."""


@dataclass(frozen=True)
class StepDraws:
    """What one adversarial step chose on the host, as views of one float32 tensor on the device.

    Attributes:
        packed: ``(3 + L [+ 3],)``: the layout below, copied to the device in one transfer.
        shift: ``(3,)`` the colour-shift channel weights (red, green, blue) as drawn; ``color_shift`` normalises them.
        loss_weights: ``(L,)`` G's weight for each of its losses, in :attr:`Trainer.g_loss_names` order, with this
            step's loss-conditional and face factors applied.
        condition: ``(3,)`` the logs of this step's surface, structure and texture factors (what a conditioned G
            reads), or None for an unconditioned G.
    """

    packed: torch.Tensor
    shift: torch.Tensor
    loss_weights: torch.Tensor
    condition: torch.Tensor | None

    @classmethod
    def unpack(cls, packed: torch.Tensor, losses: int, conditioned: bool) -> "StepDraws":
        condition = packed[3 + losses : 6 + losses] if conditioned else None
        return cls(packed, packed[:3], packed[3 : 3 + losses], condition)


class Trainer:
    """One training run (pretrain or adversarial), built from parsed options."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.adversarial = args.command == "adversarial"
        self.conditional = self.adversarial and getattr(args, "conditional", False)  # G sees its loss weights
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = resolve_device(args.device, local_rank)
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
        if args.threads:
            torch.set_num_threads(args.threads)
        self.is_main = self.rank == 0
        self.literal = args.literal
        bf16_ok = self.device.type == "cuda" or cpu_supports_bf16()
        self.bf16 = not self.literal and (args.bf16 == "on" or (args.bf16 == "auto" and bf16_ok))
        self.channels_last = not self.literal

        self.run_dir = args.run_dir or Path("runs") / f"{args.command}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.step_index = 0
        self.elapsed_before = 0.0
        self._unchecked: list[tuple[int, tuple[str, ...], torch.Tensor]] = []

        torch.manual_seed(args.seed)
        self.data_rng = torch.Generator().manual_seed(args.seed * 1000 + self.rank)
        self.shift_rng = torch.Generator().manual_seed(args.seed * 1000 + 999)
        self.generator = self._build_generator()
        self.structure_on = "host"
        if self.adversarial:
            algorithm = "felzenszwalb" if args.structure == "felzenszwalb" else "slic"
            self.structure_params = StructureParams(algorithm=algorithm, n_segments=args.segments, merge_to=args.segments
                                                    if algorithm == "felzenszwalb" else None)
            self.structure_on = resolve_structure_path(args.structure_on, self.device, self.literal, algorithm)
        self.cuda_graph = self.adversarial and resolve_cuda_graph(getattr(args, "cuda_graph", "off"), self.device,
                                                                  self.literal, self.world, self.structure_on)
        # On CUDA the fused Adam: one kernel per step instead of a foreach chain plus a host-side read of every
        # parameter's step count (the GPU step is bound by launching kernels: issue 14). The CPU keeps the default.
        self._adam_options = {"lr": args.lr, "betas": (args.beta1, args.beta2), "fused": True if self.device.type == "cuda" else None}
        if self.cuda_graph:  # the step count lives on the device, so that a replayed step advances it
            self._adam_options["capturable"] = True
        self.g_opt = torch.optim.Adam(self.generator.parameters(), **self._adam_options)
        if self.adversarial:
            self.d_surface = PatchDiscriminator(in_channels=3).to(self.device)
            self.d_texture = PatchDiscriminator(in_channels=1).to(self.device)
            if getattr(args, "init_discriminators", None) is not None:
                checkpoints.load_discriminators(args.init_discriminators,
                                                {"d_surface": self.d_surface, "d_texture": self.d_texture})
                log.info("discriminators initialised from %s", args.init_discriminators)
            params = list(self.d_surface.parameters()) + list(self.d_texture.parameters())
            self.d_opt = torch.optim.Adam(params, **self._adam_options)
            args.perceptual = resolve_kind(args.perceptual, args.vgg_weights)  # the saved options and card name it
            self.perceptual = load_perceptual(args.perceptual, args.vgg_weights).to(self.device)
            if self.structure_on == "device":
                self.superpixels = DeviceStructure(self.structure_params)
            else:
                self.superpixels = SuperpixelPool(self.structure_params, 0 if self.literal else args.superpixel_workers)
            self.weights = {name: getattr(args, f"w_{name}") for name in WEIGHT_NAMES}
            optional = [name for name in ("chroma", "surface_prior", "cast") if self.weights[name]]  # colour: always
            self.g_loss_names = ("g_surface", "g_texture", "content", "tv", "colour", *optional, "structure")
            self.augment = parse_policy(args.diffaugment)
            self.augment_rng = torch.Generator(device=self.device).manual_seed(args.seed * 1000 + 7)
        self.condition_rng = torch.Generator().manual_seed(args.seed * 1000 + 11)
        self._factors: dict[str, float] = {}
        self._face_step = False
        if self.channels_last:
            for module in self._modules():
                module.to(memory_format=torch.channels_last)
        if self.adversarial and self.bf16:
            self.perceptual.to(torch.bfloat16)  # frozen: cast once, not on every autocast call
        self.g_train = self._wrap(self.generator)
        if self.adversarial:
            self.d_surface_train = self._wrap(self.d_surface)
            self.d_texture_train = self._wrap(self.d_texture)
        self._captured: CapturedStep | None = None
        if self.cuda_graph and self.adversarial:
            self._captured = CapturedStep(self._captured_body, generators=(self.augment_rng,),
                                          on_failure=lambda: self._set_discriminators_trainable(True))

    # ------------------------------------------------------------------------------------------ building
    def _build_generator(self) -> UNetGenerator:
        init = getattr(self.args, "init", None)
        conditional = getattr(self.args, "conditional", False)
        if init is not None:
            folder = checkpoints.generator_folder(Path(init))
            generator = load_generator(folder)
            log.info("G initialised from %s", folder)
            if conditional and not generator.conditioned:  # add the conditioning; it starts as the identity
                plain = generator
                generator = UNetGenerator(**plain.config, condition_dim=len(CONDITION_NAMES))
                result = generator.load_state_dict(plain.state_dict(), strict=False)
                assert all(key.startswith("conditioning.") for key in result.missing_keys) and not result.unexpected_keys
        else:
            generator = UNetGenerator(channels=self.args.channels, num_blocks=self.args.num_blocks,
                                      condition_dim=len(CONDITION_NAMES) if conditional else 0)
        return generator.to(self.device).train()

    def _draw_condition(self) -> list[float]:
        """Loss-conditional training: this step's weight factors for the surface, structure and texture losses,
        log-uniform in ``[1/r, r]`` (``--condition-range r``), one draw per batch (``self._factors``); returns
        their logs, what G sees ([] for an unconditioned G)."""
        if not self.conditional:
            self._factors = {}
            return []
        spread = float(np.log(self.args.condition_range))
        logs = ((torch.rand(len(CONDITION_NAMES), generator=self.condition_rng, dtype=torch.float64) * 2 - 1) * spread).tolist()
        self._factors = {name: float(np.exp(value)) for name, value in zip(CONDITION_NAMES, logs)}
        return logs

    def _draw(self, faces: bool) -> StepDraws:
        """This adversarial step's host-side choices, in one transfer to the device: the condition (its factors
        set the loss weights), the colour shift, and G's loss weights (face factors applied when ``faces``)."""
        self._face_step = faces
        logs = self._draw_condition()
        shift = sample_weights(self.shift_rng)
        weights = self._loss_weights(self.g_loss_names)
        host = torch.tensor([*shift, *weights.values(), *logs], dtype=torch.float32)
        if self.device.type == "cuda":  # pinned: the copy runs behind the queued work, the host goes on
            host = host.pin_memory()
        packed = host.to(self.device, non_blocking=True)
        return StepDraws.unpack(packed, len(self.g_loss_names), self.conditional)

    def _expand_condition(self, draws: StepDraws | None, batch: int) -> torch.Tensor | None:
        """G's condition input ``(B, 3)`` for this step, or None (pretraining, an unconditioned G)."""
        if draws is None or draws.condition is None:
            return None
        return draws.condition.expand(batch, -1)

    def _modules(self) -> list[torch.nn.Module]:
        modules: list[torch.nn.Module] = [self.generator]
        if self.adversarial:
            modules += [self.d_surface, self.d_texture, self.perceptual]
        return modules

    def _wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.world == 1:
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids)

    def _autocast(self):
        if not self.bf16:
            return nullcontext()
        # No weight-cast cache under a CUDA graph (PyTorch's advice for capturing autocast regions): each cast is
        # then a kernel the graph records, never a tensor kept from one region to the next.
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, cache_enabled=not self.cuda_graph)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    # ---------------------------------------------------------------------------------------------- steps
    def step(self, batch: dict[str, torch.Tensor], faces: bool = False) -> dict[str, torch.Tensor]:
        """One iteration on ``{"photo": (B,3,H,W)[, "cartoon": ...]}`` in [-1, 1]; returns the named losses as
        detached 0-d tensors on the device (reading them is the caller's choice: it waits for the device).
        ``faces``: the batch comes from the face folders (``--face-structure-factor`` applies)."""
        photo = self._prepare(batch["photo"])
        if not self.adversarial:
            losses = self._pretrain_step(photo)
        else:
            cartoon = self._prepare(batch["cartoon"])
            draws = self._draw(faces)
            if self.step_index < getattr(self.args, "d_warmup", 0):  # --d-warmup: the Ds learn, G is not updated
                losses = self._discriminator_update(photo, cartoon, draws)
            elif self.literal:
                losses = self._literal_step(photo, cartoon, draws)
            elif self._captured is not None:
                losses = self._captured(photo, cartoon, draws.packed)
            else:
                losses = self._fast_step(photo, cartoon, draws)
        losses = {name: value.detach() for name, value in losses.items()}
        self._check_finite(losses)
        return losses

    def _captured_body(self, photo: torch.Tensor, cartoon: torch.Tensor, packed: torch.Tensor) -> dict[str, torch.Tensor]:
        """The fast step as :class:`CapturedStep` records it: every input a tensor on the device."""
        draws = StepDraws.unpack(packed, len(self.g_loss_names), self.conditional)
        return self._fast_step(photo, cartoon, draws)

    def _discriminator_update(self, photo: torch.Tensor, cartoon: torch.Tensor, draws: StepDraws) -> dict[str, torch.Tensor]:
        """A D step on a fresh output of the current G (no gradient to G), colour-shifted with ``draws.shift``:
        every ``--d-warmup`` step, and the literal step's third part (with a fresh draw)."""
        with torch.no_grad():
            output = self._filtered_output(photo, draws)
        gray_fake, gray_cartoon = color_shift(output, cartoon.float(), weights=draws.shift)
        return self._discriminator_step(self._surface(cartoon.float()), self._surface(output), gray_cartoon, gray_fake)

    def _pretrain_step(self, photo: torch.Tensor) -> dict[str, torch.Tensor]:
        with self._autocast():
            output = self.g_train(photo, None)
        loss = reconstruction_l1(output, photo)
        self.g_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.g_opt.step()
        return {"reconstruction": loss}

    def _filtered_output(self, photo: torch.Tensor, draws: StepDraws | None) -> torch.Tensor:
        """``guided_filter(x, G(x), r=1, eps=1e-2)``: what every loss sees (the authors' training graph); G under
        autocast (conditioned on ``draws.condition`` when it is), the filter in fp32."""
        with self._autocast():
            raw = self.g_train(photo, self._expand_condition(draws, photo.shape[0]))
        return training_output(photo, raw)

    def _surface(self, x: torch.Tensor) -> torch.Tensor:
        return guided_filter(x, x, SURFACE_RADIUS, SURFACE_EPS)

    def _d_input(self, x: torch.Tensor) -> torch.Tensor:
        """What a discriminator sees: ``x`` through the differentiable augmentation (``--diffaugment``)."""
        return diff_augment(x, self.augment, self.augment_rng)

    def _discriminator_step(self, blur_cartoon, blur_fake, gray_cartoon, gray_fake) -> dict[str, torch.Tensor]:
        batch = blur_cartoon.shape[0]
        surface_input = self._d_input(torch.cat([blur_cartoon, blur_fake.detach()]))
        texture_input = self._d_input(torch.cat([gray_cartoon, gray_fake.detach()]))
        with self._autocast():
            surface_scores = self.d_surface_train(surface_input)
            texture_scores = self.d_texture_train(texture_input)
        d_surface = discriminator_loss(surface_scores[:batch], surface_scores[batch:])
        d_texture = discriminator_loss(texture_scores[:batch], texture_scores[batch:])
        total = d_surface + d_texture
        self.d_opt.zero_grad(set_to_none=True)
        total.backward()
        self.d_opt.step()
        return {"d_surface": d_surface, "d_texture": d_texture}

    def _smoothed_structure(self, photo: torch.Tensor, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The structure target the loss sees (``--structure-smoothing``: see :func:`smooth_structure_target`),
        guided by the photo or by G's output (``--structure-smoothing-guide``)."""
        guide = photo if getattr(self.args, "structure_smoothing_guide", "output") == "photo" else output
        return smooth_structure_target(guide, target, getattr(self.args, "structure_smoothing", 0.0))

    def _set_discriminators_trainable(self, trainable: bool) -> None:
        if self.world == 1:  # under DDP every parameter must take part in every backward
            self.d_surface.requires_grad_(trainable)
            self.d_texture.requires_grad_(trainable)

    def _fast_step(self, photo: torch.Tensor, cartoon: torch.Tensor, draws: StepDraws) -> dict[str, torch.Tensor]:
        output = self._filtered_output(photo, draws)
        pending = self.superpixels.submit(output)  # runs in the workers while we go on
        gray_fake, gray_cartoon = color_shift(output, cartoon.float(), weights=draws.shift)
        with torch.no_grad(), self._autocast():
            vgg_photo = self.perceptual(photo)
        with self._autocast():
            vgg_output = self.perceptual(output)
        blur_fake = self._surface(output)

        def structure_features() -> torch.Tensor:  # asked for last: the workers get the most time
            target = self._smoothed_structure(photo, output, pending.result())  # in fp32, outside autocast
            with torch.no_grad(), self._autocast():
                return self.perceptual(target)

        losses = self._generator_update(self._generator_losses(
            photo, output, blur_fake, gray_fake, (vgg_output, vgg_photo), vgg_output, structure_features),
            draws.loss_weights)
        d_losses = self._discriminator_step(self._surface(cartoon.float()), blur_fake, gray_cartoon, gray_fake)
        return {**losses, **d_losses}

    def _generator_losses(
        self,
        photo: torch.Tensor,
        output: torch.Tensor,
        blur_fake: torch.Tensor,
        gray_fake: torch.Tensor,
        content: tuple[torch.Tensor, torch.Tensor],
        output_features: torch.Tensor,
        structure_features: Callable[[], torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """The six unweighted G losses of one step, the same for both step variants.

        ``content`` is (VGG(output), VGG(photo)); the structure loss compares ``output_features`` with
        ``structure_features()``, called after everything else so that the fast step's superpixel workers overlap.
        """
        self._set_discriminators_trainable(False)
        surface_input, texture_input = self._d_input(blur_fake), self._d_input(gray_fake)
        with self._autocast():
            g_surface = lsgan_loss(self.d_surface_train(surface_input), True)
            g_texture = lsgan_loss(self.d_texture_train(texture_input), True)
        losses = {"g_surface": g_surface, "g_texture": g_texture, "content": feature_l1(*content),
                  "tv": total_variation(output), "colour": colour_loss(output, photo)}
        if "chroma" in self.g_loss_names:
            losses["chroma"] = chroma_variation(output)
        if "surface_prior" in self.g_loss_names:
            losses["surface_prior"] = grey_variation(output)
        if "cast" in self.g_loss_names:
            losses["cast"] = cast_loss(output, photo)
        losses["structure"] = feature_l1(output_features, structure_features())
        return {name: losses[name] for name in self.g_loss_names}  # the order of the step's loss weights

    def _loss_weights(self, names: tuple[str, ...]) -> dict[str, float]:
        """G's weight for each loss in ``names``, this step's loss-conditional and face factors applied (the
        trainer's job, never a loss's); ``g_surface`` and ``g_texture`` count at the surface and texture weights,
        as in :mod:`train.loss_gradients`."""
        w = {**self.weights}
        for name, factor in self._factors.items():  # loss-conditional training scales the three representations
            w[name] *= factor
        w["surface_prior"] *= self._factors.get("surface", 1.0)  # part of the surface loss (not in the paper)
        if self._factors and getattr(self.args, "condition_smoothness", False):  # and, asked, the smoothness priors
            w["tv"] *= self._factors["surface"]
            w["chroma"] *= self._factors["surface"]
        if self._face_step:
            w["structure"] *= getattr(self.args, "face_structure_factor", 1.0)
            w["surface_prior"] *= getattr(self.args, "face_prior_factor", 1.0)
        return {name: w[name.removeprefix("g_")] for name in names}

    def _generator_update(self, losses: dict[str, torch.Tensor], weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """G's total, every loss at its weight (``weights``: ``(len(losses),)`` in ``losses`` order, on the device;
        None: this step's :meth:`_loss_weights`), then a step of G, and the Ds unfrozen. An optional term joins
        by being computed in :meth:`_generator_losses`."""
        stacked = torch.stack([loss.float() for loss in losses.values()])
        if weights is None:
            weights = torch.tensor(list(self._loss_weights(tuple(losses)).values()), device=stacked.device)
        g_total = (stacked * weights).sum()
        losses = {**losses, "g_total": g_total}
        self.g_opt.zero_grad(set_to_none=True)
        g_total.backward()
        self.g_opt.step()
        self._set_discriminators_trainable(True)
        return losses

    def _literal_step(self, photo: torch.Tensor, cartoon: torch.Tensor, draws: StepDraws) -> dict[str, torch.Tensor]:
        # 1. The authors' first sess.run: G's output only, for the superpixel target (inline).
        with torch.no_grad():
            first_output = self._filtered_output(photo, draws)
            superpixels = structure_batch(first_output, self.structure_params)
            structure_target = self._smoothed_structure(photo, first_output, superpixels)
        # 2. The G step: a new forward, VGG once per loss.
        output = self._filtered_output(photo, draws)
        gray_fake, _ = color_shift(output, cartoon, weights=draws.shift)
        vgg_photo = self.perceptual(photo)
        vgg_output_content = self.perceptual(output)
        vgg_output_structure = self.perceptual(output)
        vgg_structure = self.perceptual(structure_target)
        losses = self._generator_update(self._generator_losses(
            photo, output, self._surface(output), gray_fake, (vgg_output_content, vgg_photo), vgg_output_structure,
            lambda: vgg_structure), draws.loss_weights)
        # 3. The D step: a third forward of the updated G, a fresh colour shift.
        d_losses = self._discriminator_update(photo, cartoon, replace(draws, shift=self._draw_shift()))
        return {**losses, **d_losses}

    def _draw_shift(self) -> torch.Tensor:
        """A fresh colour shift ``(3,)`` on the device (the literal step's D part draws its own)."""
        return torch.tensor(sample_weights(self.shift_rng), dtype=torch.float32).to(self.device)

    def _check_finite(self, losses: dict[str, torch.Tensor]) -> None:
        """Note whether this step's losses are finite, without waiting for the device: :meth:`verify_finite`
        (at log and save steps) reads all the notes at once."""
        flags = torch.isfinite(torch.stack([value.float() for value in losses.values()]))  # 0-d losses: 2 kernels
        self._unchecked.append((self.step_index + 1, tuple(losses), flags))

    def verify_finite(self) -> None:
        """Raise :class:`TrainingDiverged` naming the first step and losses that went NaN/inf since the last check."""
        if not self._unchecked:
            return
        flags = torch.cat([f for _, _, f in self._unchecked]).cpu().tolist()  # one wait for the device
        position = 0
        for step, names, step_flags in self._unchecked:
            ok = flags[position : position + len(names)]
            position += len(names)
            bad = [name for name, good in zip(names, ok) if not good]
            if bad:
                self._unchecked = []
                latest = checkpoints.latest_checkpoint(self.run_dir)
                raise TrainingDiverged(
                    f"loss {', '.join(bad)} became NaN/inf at step {step}; nothing was saved from this state. "
                    f"Last good checkpoint: {latest or 'none'}. Try a lower --lr, --bf16 off, or check the data."
                )
        self._unchecked = []

    # ------------------------------------------------------------------------------------ checkpointing
    def parts(self) -> checkpoints.TrainingParts:
        """What a checkpoint of this run saves and restores."""
        parts = checkpoints.TrainingParts(self.generator, {"g_opt": self.g_opt},
                                          generators={"data": self.data_rng, "shift": self.shift_rng,
                                                      "condition": self.condition_rng})
        if self.adversarial:
            parts.optimizers["d_opt"] = self.d_opt
            parts.modules.update(d_surface=self.d_surface, d_texture=self.d_texture)
            parts.generators["augment"] = self.augment_rng
        return parts

    def save(self, losses: dict[str, torch.Tensor] | None = None) -> Path | None:
        self.verify_finite()  # never save a diverged state
        if not self.is_main:
            return None
        metrics = {name: float(value) for name, value in (losses or {}).items()}
        state = {"step": self.step_index, "command": self.args.command, "elapsed_s": self.elapsed(),
                 "metrics": metrics, "options": to_jsonable(self.args)}
        try:
            return checkpoints.save_training(self.run_dir, self.step_index, self.parts(), state, self.args.keep_last)
        except OSError as error:
            raise OSError(f"could not write checkpoint {self.step_index} ({error}); the previous checkpoint is intact") from error

    def resume(self, folder: Path) -> None:
        state = checkpoints.restore_training(folder, self.parts())
        self.step_index = int(state["step"])
        self.elapsed_before = float(state.get("elapsed_s", 0.0))
        log.info("resumed from %s at step %d", folder, self.step_index)

    def elapsed(self) -> float:
        return self.elapsed_before + (time.perf_counter() - self._started)

    # --------------------------------------------------------------------------------------------- fit
    def fit(self) -> Path | None:
        """Run until ``--steps`` (or ``--max-minutes``); returns the last checkpoint folder."""
        args = self.args
        self._started = time.perf_counter()
        if args.resume:
            folder = checkpoints.latest_checkpoint(self.run_dir) if args.resume == "latest" else Path(args.resume)
            if folder is None:
                log.warning("--resume latest: no checkpoint in %s yet, starting at step 0", self.run_dir)
            else:
                self.resume(folder)
        data = load_training_data(args)
        on_device = data.place(self.device)
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_options(args, self.run_dir)
            (self.run_dir / "held_out.txt").write_text("".join(f"{p}\n" for p in data.held_out))
            print(options_table(args))
        run_log = RunLog(self.run_dir, enabled=self.is_main, tensorboard=not args.no_tensorboard)
        run_log.header(data.counts(), self._description(len(data.held_out), on_device))
        samples = data.photos.center_crops(SAMPLE_COUNT, min(args.patch_size, 256)).to(self.device)
        stop = {"requested": False}
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.update(requested=True)) if self.is_main else None
        deadline = None if args.max_minutes is None else time.perf_counter() + 60 * args.max_minutes
        running: dict[str, list[torch.Tensor]] = {}
        last_checkpoint = None
        interval_start = time.perf_counter()
        bar = tqdm(total=args.steps, initial=self.step_index, desc=args.command, unit="step", disable=not self.is_main,
                   dynamic_ncols=True)
        try:
            while self.step_index < args.steps:
                batch = data.batch(self.step_index, args.batch_size, args.patch_size, self.data_rng)
                losses = self.step(batch, faces=data.is_face_step(self.step_index))
                self.step_index += 1
                bar.update(1)
                for name, value in losses.items():
                    running.setdefault(name, []).append(value)
                if self.step_index % args.log_every == 0 or self.step_index == args.steps:
                    self.verify_finite()
                    rate = len(next(iter(running.values()))) / max(time.perf_counter() - interval_start, 1e-9)
                    metrics = {name: torch.stack(values).float().mean().item() for name, values in running.items()}
                    run_log.scalars(self.step_index, self.elapsed(), rate, metrics, bar)
                    running, interval_start = {}, time.perf_counter()
                if self.step_index % args.sample_every == 0:
                    run_log.samples(self.step_index, self.generator, samples)
                out_of_time = deadline is not None and time.perf_counter() > deadline
                if self.step_index % args.save_every == 0 or self.step_index == args.steps or out_of_time or stop["requested"]:
                    last_checkpoint = self.save(losses) or last_checkpoint
                if out_of_time or stop["requested"]:
                    log.info("stopping at step %d (%s)", self.step_index, "time limit" if out_of_time else "SIGTERM")
                    break
            if self.step_index % args.sample_every != 0:
                run_log.samples(self.step_index, self.generator, samples)
        finally:
            bar.close()
            run_log.close()
            if self.adversarial:
                self.superpixels.close()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            if self.world > 1 and dist.is_initialized():
                dist.barrier()
                dist.destroy_process_group()
        return last_checkpoint

    def _description(self, held_out: int, images_on_device: bool) -> str:
        """The header's second half: batch, processes, device, threads, where the data and structure targets live."""
        structure = ""
        if self.adversarial:
            structure = (", structure targets on the device" if self.structure_on == "device" else
                         f", {0 if self.literal else self.args.superpixel_workers} superpixel workers")
        graph = f", one CUDA graph after {self._captured.warmup} eager steps" if self._captured is not None else ""
        path = "literal" if self.literal else f"fast (bf16={'on' if self.bf16 else 'off'}, channels_last{structure}{graph})"
        where = "on the device" if images_on_device and self.device.type != "cpu" else "in host memory"
        perceptual = f", perceptual: {self.perceptual.name}" if self.adversarial else ""
        return (f"held out {held_out}, batch {self.args.batch_size}x{self.args.patch_size}^2 x {self.world} process(es), "
                f"device {self.device}, {torch.get_num_threads()} threads, images {where}, {path}{perceptual}")
