"""Unpaired image folders, decoded once into memory, sampled as random patches by a seeded generator.

Sampling draws every random choice (image, crop, flip) from one ``torch.Generator`` on the CPU whose state is
saved in checkpoints, so a resumed run sees exactly the batches the uninterrupted run would have seen. The
decoded images are uint8 tensors; :meth:`TrainingData.place` moves them to the training device when they fit,
after which a batch is cut, flipped and converted there: no image crosses from the host during training.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cartoon.image import ImageError, find_images, load_image, resize_to, scale_to_fit, to_tensor

log = logging.getLogger(__name__)

def list_images(root: Path) -> list[Path]:
    """Image files under ``root`` (:data:`cartoon.image.IMAGE_SUFFIXES`), sorted (stable across machines)."""
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    return find_images(root)


def split_held_out(paths: list[Path], count: int) -> tuple[list[Path], list[Path]]:
    """A deterministic split: the ``count`` files whose name hashes lowest are held out."""
    if count <= 0:
        return paths, []
    ranked = sorted(paths, key=lambda p: hashlib.sha1(p.name.encode()).hexdigest())
    held = set(ranked[:count])
    return [p for p in paths if p not in held], [p for p in paths if p in held]


@dataclass
class ImageFolder:
    """Decoded images of one folder, each downscaled so its short side is <= ``max_side`` and >= ``patch``.

    ``images`` are ``(H, W, 3)`` uint8 tensors, on the CPU until :meth:`to` moves them.
    """

    name: str
    images: list[torch.Tensor]
    paths: list[Path]

    @classmethod
    def load(cls, name: str, paths: list[Path], patch: int, max_side: int) -> "ImageFolder":
        images, kept = [], []
        for path in paths:
            try:
                img = scale_to_fit(load_image(path), short_side=max(max_side, patch))
            except ImageError as error:
                log.warning("skipping %s: %s", path, error)
                continue
            if min(img.shape[:2]) < patch:  # enlarge small images to fit one patch
                factor = patch / min(img.shape[:2])
                img = resize_to(img, max(patch, round(img.shape[0] * factor)), max(patch, round(img.shape[1] * factor)))
            images.append(torch.from_numpy(np.ascontiguousarray(img)))
            kept.append(path)
        if not images:
            raise ValueError(f"{name}: no readable images among {len(paths)} files")
        return cls(name, images, kept)

    @property
    def nbytes(self) -> int:
        return sum(img.numel() for img in self.images)

    def to(self, device: torch.device) -> "ImageFolder":
        """Move the decoded images to ``device`` (in place); returns self."""
        self.images = [img.to(device) for img in self.images]
        return self

    def sample(self, batch: int, patch: int, generator: torch.Generator) -> torch.Tensor:
        """``(batch, 3, patch, patch)`` float in ``[-1, 1]`` on the images' device: random images, crops and
        horizontal flips. The random draws come from ``generator`` on the CPU (no device synchronisation)."""
        picks = torch.randint(len(self.images), (batch,), generator=generator).tolist()
        crops = []
        for index in picks:
            img = self.images[index]
            top = int(torch.randint(img.shape[0] - patch + 1, (1,), generator=generator))
            left = int(torch.randint(img.shape[1] - patch + 1, (1,), generator=generator))
            crop = img[top : top + patch, left : left + patch]
            if bool(torch.randint(2, (1,), generator=generator)):
                crop = crop.flip(1)
            crops.append(crop)
        return to_tensor(torch.stack(crops))

    def center_crops(self, count: int, patch: int) -> torch.Tensor:
        """Fixed samples for the sample grid: the centre crops of the first ``count`` images."""
        crops = []
        for img in self.images[:count]:
            top, left = (img.shape[0] - patch) // 2, (img.shape[1] - patch) // 2
            crops.append(img[top : top + patch, left : left + patch])
        return to_tensor(torch.stack(crops))


@dataclass
class TrainingData:
    """Scenery folders plus optional face folders used every ``face_every``-th step (authors: 1 in 5)."""

    photos: ImageFolder
    cartoons: ImageFolder | None
    photo_faces: ImageFolder | None
    cartoon_faces: ImageFolder | None
    face_every: int
    held_out: list[Path]

    def folders(self) -> dict[str, ImageFolder]:
        """The folders in use, by name."""
        folders = {"photos": self.photos, "cartoons": self.cartoons, "photo_faces": self.photo_faces,
                   "cartoon_faces": self.cartoon_faces}
        return {name: folder for name, folder in folders.items() if folder is not None}

    def counts(self) -> dict[str, int]:
        """Images per folder in use, by name."""
        return {name: len(folder.images) for name, folder in self.folders().items()}

    def place(self, device: torch.device, share_of_free: float = 0.25) -> bool:
        """Move every folder's images to ``device`` if they take at most ``share_of_free`` of its free memory
        (always on the CPU); returns whether they moved. Batches are then cut on the device."""
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            needed = sum(folder.nbytes for folder in self.folders().values())
            if needed > share_of_free * free:
                log.info("training images (%.1f GB) stay on the host: more than %.0f%% of the GPU's free memory",
                         needed / 1e9, 100 * share_of_free)
                return False
        for folder in self.folders().values():
            folder.to(device)
        return True

    def is_face_step(self, step: int) -> bool:
        """Whether step ``step`` draws from the face folders (every ``face_every``-th, when there are any)."""
        return self.photo_faces is not None and step % self.face_every == 0

    def batch(self, step: int, size: int, patch: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        faces = self.is_face_step(step)
        photos = self.photo_faces if faces else self.photos
        cartoons = (self.cartoon_faces or self.cartoons) if faces else self.cartoons
        out = {"photo": photos.sample(size, patch, generator)}
        if cartoons is not None:
            out["cartoon"] = cartoons.sample(size, patch, generator)
        return out


def load_training_data(args) -> TrainingData:
    """The folders named by the options, with the held-out photos removed."""
    patch, side = args.patch_size, args.max_image_side
    train_paths, held_out = split_held_out(list_images(args.photos), args.held_out)

    def folder(name: str, root: Path | None) -> ImageFolder | None:
        return None if root is None else ImageFolder.load(name, list_images(root), patch, side)

    return TrainingData(
        photos=ImageFolder.load("photos", train_paths, patch, side),
        cartoons=folder("cartoons", getattr(args, "cartoons", None)),
        photo_faces=folder("photo faces", args.photo_faces),
        cartoon_faces=folder("cartoon faces", getattr(args, "cartoon_faces", None)),
        face_every=args.face_every,
        held_out=held_out,
    )
