"""The white-box representation explorer: a Gradio Blocks app (and a Hugging Face Space).

Upload a photo and see it beside its surface, structure and texture representations, the white-box mix of
the three, and the generator's cartoon. Handlers are thin adapters over :mod:`cartoon`; all image maths
lives there. ``python app.py`` serves on 127.0.0.1:7860; see :func:`server_address` for how a Space (or a user)
chooses another address and port.
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import inspect
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

ZERO_GPU = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")
"""True on a ZeroGPU Space (the variable its runtime sets). Only there is ``spaces.GPU`` used: on a CPU Space the
``spaces`` package may be importable too, and must change nothing."""
if ZERO_GPU:  # imported before torch, as the spaces package asks
    import spaces  # type: ignore[import-not-found]  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402

from cartoon.checkpoint import REPO_ENV, REVISION_ENV, CheckpointError  # noqa: E402
from cartoon.explorer import CONTROL_NAMES, DEFAULT_VALUES, Explorer, ViewParams  # noqa: E402
from cartoon.image import ImageError, load_image, scale_to_fit  # noqa: E402
from cartoon.inference import DEFAULT_MAX_SIDE, Cartoonizer  # noqa: E402
from cartoon.representations import weights_from_seed  # noqa: E402
from cartoon.representations.texture import WEIGHT_RANGES  # noqa: E402
from cartoon.video import VideoResult, cartoonize_video  # noqa: E402

log = logging.getLogger("app")

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "assets" / "examples"
MAX_UPLOAD_MB = 20
MAX_MEGAPIXELS = 25
VIDEO_MAX_SECONDS = float(os.environ.get("CARTOON_VIDEO_MAX_SECONDS", "30"))
VIDEO_MAX_MB = int(os.environ.get("CARTOON_VIDEO_MAX_MB", "100"))
"""Limits of the Video tab (environment variables: a GPU Space can afford longer clips)."""
QUEUE_SIZE = 32
ALGORITHM_CHOICES = [("Felzenszwalb (paper)", "felzenszwalb"), ("SLIC (authors' training code)", "slic")]

# On a ZeroGPU Space only the generator call holds a GPU; everywhere else the decorator is the identity.
on_gpu: Callable[[Callable], Callable] = spaces.GPU if ZERO_GPU else (lambda fn: fn)
RUNTIME = "ZeroGPU" if ZERO_GPU else None

EXPLORER = Explorer()
try:
    _LIBC = ctypes.CDLL("libc.so.6")
except OSError:  # not glibc (macOS, Windows, musl): nothing to trim
    _LIBC = None


@functools.cache
def get_cartoonizer() -> Cartoonizer:
    """The generator (--model, else Hub repo -> Hub cache -> bundled assets/model), loaded once on first use."""
    return Cartoonizer.from_pretrained(max_side=DEFAULT_MAX_SIDE)


def model_status() -> str:
    """One line for the page: which model, where it runs."""
    try:
        cartoonizer = get_cartoonizer()
    except CheckpointError as error:
        log.warning("%s", error)
        return ("**Model:** none available: the views work, the cartoon does not. "
                "Train one with `python -m train` or set `CARTOON_MODEL_REPO`.")
    where = RUNTIME or cartoonizer.describe().rsplit(" on ", 1)[-1]
    return f"**Model:** {cartoonizer.source.describe()} · runs on **{where}**"


# --------------------------------------------------------------------------------------------- handlers


def user_errors(fn: Callable) -> Callable:
    """Turn the library's input errors into messages for the person at the browser."""

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        try:
            return fn(*args)
        except gr.Error:
            raise
        except (ImageError, ValueError, KeyError) as error:
            raise gr.Error(str(error).strip("'\""), print_exception=False) from None
        except CheckpointError as error:
            raise gr.Error(f"No cartoon model is available: {error}", print_exception=False) from None
        except MemoryError:
            raise gr.Error("That image needs more memory than this server has; try a smaller one.") from None

    return wrapper


def _allowed_roots() -> list[Path]:
    roots = [EXAMPLES_DIR, Path(os.environ.get("GRADIO_TEMP_DIR", Path(tempfile.gettempdir()) / "gradio"))]
    return [root.resolve() for root in roots]


def photo_path(payload: Any) -> Path:
    """The server-side file of an uploaded image payload, refusing anything outside the upload/example folders."""
    if payload is None:
        raise ImageError("Upload a photo first.")
    path = payload.get("path") if isinstance(payload, dict) else getattr(payload, "path", payload)
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ImageError("Upload a photo first.")
    resolved = Path(path).resolve()
    if not any(resolved.is_relative_to(root) for root in _allowed_roots()):
        raise ImageError("That file is not an upload of this app.")
    return resolved


def load_upload(payload: Any) -> np.ndarray:
    """Decode an upload within the app's size and pixel caps (uint8 RGB, upright)."""
    path = photo_path(payload)
    check_size(path, MAX_UPLOAD_MB, "photos")
    return load_image(path, max_pixels=MAX_MEGAPIXELS * 1_000_000)


def check_size(path: Path, limit_mb: float, kind: str) -> None:
    """Refuse a file over ``limit_mb`` (the server's upload cap is the larger of the photo and video limits)."""
    size = path.stat().st_size if path.is_file() else 0
    if size > limit_mb * 1_000_000:
        raise ImageError(f"{path.name} is {size / 1e6:.0f} MB; the limit for {kind} is {limit_mb:g} MB.")


def register(payload: Any) -> str:
    """Decode an upload and register its preview; returns the explorer key."""
    return EXPLORER.add(load_upload(payload))


def view_params(values: tuple[Any, ...]) -> ViewParams:
    """The controls' values, in :data:`CONTROL_NAMES` order, parsed and checked by the library."""
    if len(values) != len(CONTROL_NAMES):
        raise ValueError(f"expected {len(CONTROL_NAMES)} parameters ({', '.join(CONTROL_NAMES)}), got {len(values)}")
    return ViewParams.from_values(dict(zip(CONTROL_NAMES, values)))


def with_control_signature(fn: Callable) -> Callable:
    """Give ``fn(photo, *values)`` the signature ``fn(photo, surface_weight=1.0, ..., blue=0.114)``: Gradio builds
    the API's parameter names and defaults from it, so clients may pass any control by name."""
    parameters = [inspect.Parameter("photo", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    parameters += [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=DEFAULT_VALUES[name])
                   for name in CONTROL_NAMES]
    fn.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    return fn


def _key_for(payload: Any, key: str | None) -> str:
    return key if EXPLORER.has(key) else register(payload)


def _all_views(key: str, params: ViewParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    views = EXPLORER.views(key, params.surface, params.structure, params.shift)
    return (*views, EXPLORER.mix(key, params.weights, params.surface, params.structure, params.shift))


@with_control_signature
@user_errors
def representations(payload: Any, *values: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Public API: the surface, structure, texture and mix views of a photo (preview size, long side <= 512)."""
    params = view_params(values)
    return _all_views(register(payload), params)


@user_errors
def on_photo(payload: Any, *values: Any) -> tuple:
    """UI: a new photo -> its key and all views (the cartoon view is cleared until the preview cartoon is ready)."""
    if payload is None:
        return (None,) * 6
    params = view_params(values)
    key = register(payload)
    return (key, *_all_views(key, params), None)


def view_updater(view: str) -> Callable:
    """UI: one control group moved -> recompute that view (from cache where possible) and the mix."""

    @user_errors
    def update(payload: Any, key: str | None, *values: Any) -> tuple[np.ndarray, np.ndarray] | np.ndarray | None:
        if payload is None:
            return (None, None) if view != "mix" else None
        key = _key_for(payload, key)
        params = view_params(values)
        mix = EXPLORER.mix(key, params.weights, params.surface, params.structure, params.shift)
        if view == "surface":
            return EXPLORER.surface(key, params.surface), mix
        if view == "structure":
            return EXPLORER.structure(key, params.structure), mix
        if view == "texture":
            return EXPLORER.texture(key, params.shift), mix
        return mix

    update.__name__ = f"update_{view}"
    return update


@on_gpu
def run_generator(img: np.ndarray, weights: tuple[float, float, float] | None = None) -> np.ndarray:
    """The only call that needs an accelerator (wrapped by ``spaces.GPU`` on ZeroGPU)."""
    try:
        return get_cartoonizer()(img, weights=weights)
    finally:
        release_memory()


WEIGHT_FLOOR = 0.25
"""A conditioned model learnt weights from 1/4x to 4x the recipe's: a slider at 0 asks for the smallest."""


def steering(ws: Any, wst: Any, wt: Any) -> tuple[float, float, float] | None:
    """The weight sliders as the generator's weights, when the model is conditioned (None otherwise: a plain
    model, given with --model, ignores the page's sliders, which then drive the white-box mix only)."""
    try:
        if not get_cartoonizer().conditioned:
            return None
    except CheckpointError:
        return None
    params = ViewParams.from_values({"surface_weight": ws, "structure_weight": wst, "texture_weight": wt})
    return tuple(max(WEIGHT_FLOOR, w) for w in params.weights)  # type: ignore[return-value]


def release_memory() -> None:
    """Hand freed heap back to the OS after a generator call: glibc keeps it per thread arena otherwise, and
    a server with many worker threads then never returns to its baseline memory."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


@user_errors
def cartoon_preview(payload: Any, key: str | None, ws: Any = 1, wst: Any = 1, wt: Any = 1) -> tuple:
    """UI: the cartoon of the preview (long side <= 512) at the sliders' weights, and the before/after pair."""
    if payload is None:
        return None, None
    photo = EXPLORER.photo(_key_for(payload, key))
    try:
        get_cartoonizer()
    except CheckpointError:
        return None, None  # the status line already says there is no model; the views still work
    cartoon = run_generator(photo, steering(ws, wst, wt))
    return cartoon, (photo, cartoon)


@user_errors
def restyle(payload: Any, key: str | None, ws: Any, wst: Any, wt: Any) -> tuple:
    """UI: a weight slider moved: a conditioned model re-renders the preview cartoon; a plain one changes nothing."""
    if payload is None or steering(ws, wst, wt) is None:
        return gr.skip(), gr.skip()
    return cartoon_preview(payload, key, ws, wst, wt)


@user_errors
def cartoonize(payload: Any, surface_weight: Any = 1.0, structure_weight: Any = 1.0, texture_weight: Any = 1.0) -> np.ndarray:
    """Public API: the cartoon at full size (short side scaled down to at most 720 px); a loss-conditional model
    (the bundled one) takes the three weights (multiples of the recipe's, 1/16 to 16)."""
    weights = (float(surface_weight), float(structure_weight), float(texture_weight))
    return run_generator(full_size(payload), weights)


@user_errors
def render_full_size(payload: Any, ws: Any = 1, wst: Any = 1, wt: Any = 1) -> tuple:
    """UI: the cartoon at full size, and the before/after pair at that size (one decode, one generator call)."""
    if payload is None:
        raise ImageError("Upload a photo first.")
    photo = full_size(payload)
    cartoon = run_generator(photo, steering(ws, wst, wt))
    return cartoon, (photo, cartoon)


def weights_note() -> str:
    """The text under the weight sliders: what they do with the loaded model."""
    try:
        conditioned = get_cartoonizer().conditioned
    except CheckpointError:
        conditioned = False
    if not conditioned:
        return ("These weights drive the white-box mix. The loaded generator was trained with fixed weights, so they "
                "do not change its cartoon.")
    return ("These weights drive the white-box mix **and steer the generator** (trained loss-conditionally: one model "
            "for every mix from ¼× to 4×). More **surface** (λ₁, the surface GAN loss on guided-filtered output, with a "
            "brightness smoothness prior this project adds to it): smoother areas (a small effect on the bundled model). More "
            "**structure** (λ₃, the VGG loss to the superpixel image): flatter, more sharply divided regions. More "
            "**texture** (λ₂, the GAN loss on colour-shifted grey): stronger lines and detail. The cartoon re-renders "
            "when you release a slider.")


def full_size(payload: Any) -> np.ndarray:
    """An upload at the size the full render uses (short side at most 720 px)."""
    return scale_to_fit(load_upload(payload), short_side=DEFAULT_MAX_SIDE)


@on_gpu
def run_video(source: Path, target: Path, stabilize: bool, progress: Callable[[int, int], None]) -> VideoResult:
    """The video frame loop (wrapped by ``spaces.GPU`` on ZeroGPU): decode, cartoonize in batches, encode."""
    cartoonizer = get_cartoonizer()
    try:
        return cartoonize_video(source, target, cartoonizer.cartoonize_frames, max_side=DEFAULT_MAX_SIDE,
                                stabilize=stabilize, max_seconds=VIDEO_MAX_SECONDS,
                                max_pixels=MAX_MEGAPIXELS * 1_000_000, progress=progress)
    finally:
        release_memory()


@user_errors
def cartoonize_clip(video: Any, stabilize: Any = True, progress: gr.Progress = gr.Progress()) -> str:
    """Public API: a clip's cartoon as an H.264 MP4 (same timing and sound, short side <= 720 px)."""
    if video is None:
        raise ImageError("Upload a video first.")
    source = photo_path(video)  # a path (preprocessed Video) or a payload: the same folder check
    check_size(source, VIDEO_MAX_MB, "videos")
    folder = Path(tempfile.mkdtemp(prefix="cartoon-video-", dir=_allowed_roots()[1]))
    target = folder / f"{source.stem}-cartoon.mp4"
    progress(0, desc="Reading the clip")
    result = run_video(source, target, bool(stabilize),
                       lambda done, total: progress((done, total), desc="Cartoonizing frames", unit="frames"))
    log.info("video %s: %d frames at %.1f frames/s", source.name, result.frames, result.frames_per_second)
    return str(result.path)


def reseed(seed: Any) -> tuple[float, float, float, int]:
    """UI: a new random draw of colour-shift weights from the authors' ranges."""
    seed = int(seed or 0) + 1
    weights = weights_from_seed(seed)
    return round(weights.red, 3), round(weights.green, 3), round(weights.blue, 3), seed


# ----------------------------------------------------------------------------------------------- layout

INTRO = """
# White-box Cartoonizer
Upload a photo to see the three **white-box representations** a cartoon is learned from
(Wang & Yu, *Learning to Cartoonize Using White-box Cartoon Representations*, CVPR 2020), their mix, and the
generator's cartoon. Views update when you release a slider.
"""

TEACHING = {
    "photo": """**The photo**, shown at preview size (long side 512 px). Everything on this row is computed from it.""",
    "surface": """**Surface** (paper §3.2): the smooth colour areas of a cartoon, without brush strokes or fine texture.
*Formula:* an edge-preserving **guided filter** of the photo by itself — in each (2r+1)² window the output is a
linear function of the input, `a·x + b`, with `a = cov / (var + eps)`: flat where the window varies little
(var ≪ eps), kept where it has an edge. Radius r and eps set how much is flattened (paper: r = 5, eps = 0.2).
*In training:* the surface discriminator **D_s** compares the filtered output with filtered cartoons
(surface loss, weight λ₁).""",
    "structure": """**Structure** (paper §3.3): the flat, sharp-edged regions of cel animation.
*Formula:* **superpixels** (Felzenszwalb's graph segmentation, or SLIC), optionally merged selective-search
style to a target count, each filled with an **adaptive colour**: its mean if the region's colour std σ < 20,
its median if σ ≥ 40, the average of both in between (0–255 scale).
*In training:* the **structure loss** (λ₃) asks the output to have the same VGG features as its own
superpixel version.""",
    "texture": """**Texture** (paper §3.4): lines and high-frequency detail, without colour or brightness.
*Formula:* a **random colour shift** to one channel, `(w_r R + w_g G + w_b B) / (w_r + w_g + w_b)`, with weights
drawn around the luma weights (R 0.199–0.399, G 0.487–0.687, B 0.014–0.214). Reseed draws new ones.
*In training:* the texture discriminator **D_t** compares shifted outputs with shifted cartoons (λ₂).""",
    "cartoon": """**Cartoon**: the generator's output, `G(x)`, then a light guided filter (r = 1, eps = 5e-3) guided by
the photo. The generator is trained with all three losses plus content (VGG) and total-variation terms; it
is *not* the mix on the right. *Full size* renders with the short side up to 720 px.""",
    "mix": """**White-box mix**: a teaching picture, the weighted average of the three views,
`(w_s·surface + w_st·structure + w_t·texture) / (w_s + w_st + w_t)` (the photo when all are 0). Raising a
weight shows what that representation contributes — as raising λ in training pushes the cartoon towards it
(paper Fig. 8: more surface → smoother, more texture → more detail, more structure → blockier).""",
}

VIDEO_HELP = """Cartoonize a clip: every frame goes through the generator, the sound is kept, the timing too.
Clips up to **{seconds:g} s** and **{mb} MB** (MP4, MOV, WebM, …); the cartoon's short side is at most 720 px.
*Stabilise* blends each frame with the previous one moved along the optical flow, where the flow fits, which
calms the flicker of flat areas. On this server's CPU expect a few frames per second."""

CSS = """
.view-image img { object-fit: contain; }
#status { font-size: 0.95em; }
footer { display: none !important; }
"""


CONTROL_SPECS: dict[str, dict[str, Any]] = {
    "surface_weight": dict(minimum=0, maximum=2, step=0.05, label="Surface weight (× paper's λ₁)"),
    "structure_weight": dict(minimum=0, maximum=2, step=0.05, label="Structure weight (× paper's λ₃)"),
    "texture_weight": dict(minimum=0, maximum=2, step=0.05, label="Texture weight (× paper's λ₂)"),
    "radius": dict(minimum=0, maximum=30, step=1, label="Radius r (pixels)"),
    "eps": dict(minimum=0.001, maximum=1.0, step=0.001, label="eps (on [-1, 1] values)"),
    "algorithm": dict(choices=ALGORITHM_CHOICES, label="Segmentation"),
    "scale": dict(minimum=0.5, maximum=200, step=0.5, label="Felzenszwalb scale (higher: larger regions)"),
    "sigma": dict(minimum=0, maximum=3, step=0.05, label="Smoothing sigma"),
    "min_size": dict(minimum=5, maximum=1000, step=5, label="Felzenszwalb min region size (pixels)"),
    "n_segments": dict(minimum=10, maximum=1000, step=10, label="SLIC segments"),
    "merge_to": dict(minimum=0, maximum=1000, step=10, label="Merge down to N regions (0: off)"),
    "red": dict(minimum=WEIGHT_RANGES.red[0], maximum=WEIGHT_RANGES.red[1], step=0.001, label="Red weight"),
    "green": dict(minimum=WEIGHT_RANGES.green[0], maximum=WEIGHT_RANGES.green[1], step=0.001, label="Green weight"),
    "blue": dict(minimum=WEIGHT_RANGES.blue[0], maximum=WEIGHT_RANGES.blue[1], step=0.001, label="Blue weight"),
}
"""How each control of :data:`cartoon.explorer.CONTROL_NAMES` looks on the page (its default and its checks come
from the library). Slider ranges are what the page offers; the library decides what is valid."""
assert tuple(CONTROL_SPECS) == CONTROL_NAMES, "every explorer control needs exactly one widget, in the same order"


def control(name: str) -> gr.Slider | gr.Radio:
    """The widget of one explorer control, with the library's default; ``elem_id`` is ``control-<name>``."""
    spec = {**CONTROL_SPECS[name], "value": DEFAULT_VALUES[name], "elem_id": f"control-{name}"}
    return gr.Radio(**spec) if "choices" in spec else gr.Slider(**spec)


def _view(label: str, key: str, **kwargs: Any) -> gr.Image:
    with gr.Column(min_width=180):
        image = gr.Image(label=label, format="png", buttons=["download", "fullscreen"], height=260,
                         elem_classes=["view-image"], **kwargs)
        with gr.Accordion("What is this?", open=False, elem_id=f"about-{key}"):
            gr.Markdown(TEACHING[key])
    return image


def build_demo() -> gr.Blocks:
    """Build the layout, then wire the events. Importing this module starts no server and loads no weights."""
    controls: dict[str, gr.Slider | gr.Radio] = {}

    def place(*names: str) -> None:
        for name in names:
            controls[name] = control(name)

    with gr.Blocks(title="White-box Cartoonizer") as demo:
        gr.Markdown(INTRO)
        status = gr.Markdown("**Model:** loading…", elem_id="status")
        key_state = gr.State(None)

        with gr.Tabs():
            with gr.Tab("Photo", id="photo"):
                with gr.Row(equal_height=True):
                    photo = _view("Photo", "photo", type="filepath", image_mode=None, sources=["upload", "webcam", "clipboard"],
                                  elem_id="photo")
                    surface_view = _view("Surface", "surface", interactive=False, elem_id="surface")
                    structure_view = _view("Structure", "structure", interactive=False, elem_id="structure")
                    texture_view = _view("Texture", "texture", interactive=False, elem_id="texture")
                    cartoon_view = _view("Cartoon", "cartoon", interactive=False, elem_id="cartoon")

                examples = sorted(str(p) for p in EXAMPLES_DIR.glob("*.jpg"))
                gr.Examples(examples=examples, inputs=[photo], label="Example photos (credits: assets/examples/CREDITS.md)",
                            examples_per_page=10)

                with gr.Row():
                    with gr.Column(scale=2):
                        with gr.Group():
                            gr.Markdown("### Representation weights")
                            place("surface_weight", "structure_weight", "texture_weight")
                            weights_text = gr.Markdown("These weights drive the white-box mix.", elem_id="weights-note")
                        render = gr.Button("Render cartoon at full size (short side ≤ 720 px)", variant="primary", elem_id="render")
                    with gr.Column(scale=3, min_width=240):
                        mix_view = _view("White-box mix", "mix", interactive=False, elem_id="mix")
                    with gr.Column(scale=3, min_width=240):
                        before_after = gr.ImageSlider(label="Before / after", format="png", buttons=["download", "fullscreen"],
                                                      interactive=False, elem_id="before-after")

                with gr.Row():
                    with gr.Column():
                        with gr.Accordion("Surface: guided filter", open=True):
                            place("radius", "eps")
                    with gr.Column():
                        with gr.Accordion("Structure: superpixels", open=True):
                            place("algorithm", "scale", "sigma", "min_size", "n_segments", "merge_to")
                    with gr.Column():
                        with gr.Accordion("Texture: random colour shift", open=True):
                            place("red", "green", "blue")
                            seed = gr.Number(value=0, precision=0, label="Seed", interactive=False, elem_id="seed")
                            reseed_button = gr.Button("Reseed colour shift", elem_id="reseed")

                gr.Markdown(f"Photos up to **{MAX_UPLOAD_MB} MB** and **{MAX_MEGAPIXELS} megapixels** (JPEG, PNG, WebP, …). "
                            f"Views are computed at preview size (long side 512 px). Nothing you upload is kept.")
            with gr.Tab("Video", id="video"):
                gr.Markdown(VIDEO_HELP.format(seconds=VIDEO_MAX_SECONDS, mb=VIDEO_MAX_MB))
                with gr.Row(equal_height=True):
                    clip = gr.Video(label="Clip", sources=["upload"], elem_id="video-in")
                    clip_cartoon = gr.Video(label="Cartoon", interactive=False, elem_id="video-out")
                stabilize = gr.Checkbox(value=True, label="Stabilise (smooth flat areas along the optical flow)",
                                        elem_id="video-stabilize")
                render_clip = gr.Button("Cartoonize video", variant="primary", elem_id="video-render")

        # ------------------------------------------------------------------------------------- events
        all_params = [controls[name] for name in CONTROL_NAMES]
        private = {"api_visibility": "private", "preprocess": False, "show_progress": "minimal"}

        demo.load(model_status, outputs=status, api_name="model_status")
        demo.load(weights_note, outputs=weights_text, api_visibility="private")
        weight_controls = [controls["surface_weight"], controls["structure_weight"], controls["texture_weight"]]
        photo.change(
            on_photo, [photo, *all_params], [key_state, surface_view, structure_view, texture_view, mix_view, cartoon_view],
            api_visibility="private", preprocess=False, trigger_mode="always_last",
        ).then(cartoon_preview, [photo, key_state, *weight_controls], [cartoon_view, before_after],
               api_visibility="private", preprocess=False, trigger_mode="always_last")

        groups = {"surface": (("radius", "eps"), [surface_view, mix_view]),
                  "structure": (("algorithm", "scale", "sigma", "min_size", "n_segments", "merge_to"), [structure_view, mix_view]),
                  "texture": (("red", "green", "blue"), [texture_view, mix_view]),
                  "mix": (("surface_weight", "structure_weight", "texture_weight"), [mix_view])}
        assert sorted(name for names, _ in groups.values() for name in names) == sorted(CONTROL_NAMES)
        for view, (names, outputs) in groups.items():
            handler = view_updater(view)
            for name in names:
                widget = controls[name]
                event = widget.change if isinstance(widget, gr.Radio) else widget.release
                wired = event(handler, [photo, key_state, *all_params], outputs, trigger_mode="always_last", **private)
                if view == "mix":  # a conditioned generator follows the weights too
                    wired.then(restyle, [photo, key_state, *weight_controls], [cartoon_view, before_after],
                               **private)
        reseed_button.click(reseed, seed, [controls["red"], controls["green"], controls["blue"], seed],
                            api_visibility="private").then(
            view_updater("texture"), [photo, key_state, *all_params], [texture_view, mix_view], **private)
        render.click(render_full_size, [photo, *weight_controls], [cartoon_view, before_after],
                     api_visibility="private", preprocess=False)
        render_clip.click(cartoonize_clip, [clip, stabilize], [clip_cartoon], api_name="cartoonize_video", concurrency_limit=1)

        # Public API (gradio_client): named endpoints on hidden components. Photos arrive unprocessed (preprocess
        # off) so that every file goes through the app's own decoder and path check.
        api_photo = gr.Image(type="filepath", visible=False, image_mode=None)
        api_views = [gr.Image(format="png", visible=False) for _ in range(4)]
        api_cartoon = gr.Image(format="png", visible=False)
        gr.Button(visible=False).click(representations, [api_photo, *all_params], api_views, api_name="representations",
                                       preprocess=False)
        api_weights = [gr.Number(value=1.0, visible=False) for _ in range(3)]
        gr.Button(visible=False).click(cartoonize, [api_photo, *api_weights], [api_cartoon],
                                       api_name="cartoonize", preprocess=False)
    return demo


demo = build_demo()


DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 7860
ADDRESS_HELP = ("Address and port, first found wins: --host/--port; CARTOON_HOST/CARTOON_PORT; Gradio's "
                "GRADIO_SERVER_NAME/GRADIO_SERVER_PORT (what a Hugging Face Space sets: 0.0.0.0 and its port); "
                f"else {DEFAULT_HOST}:{DEFAULT_PORT}, reachable from this machine only.")


def server_address(host: str | None = None, port: int | str | None = None,
                   environ: dict[str, str] | os._Environ = os.environ) -> tuple[str, int]:
    """Where to listen: ``host``/``port`` (the command line), then ``CARTOON_HOST``/``CARTOON_PORT``, then Gradio's
    ``GRADIO_SERVER_NAME``/``GRADIO_SERVER_PORT`` (a Space's), then 127.0.0.1:7860. Each is resolved on its own.

    Raises:
        ValueError: a port that is not a whole number in [1, 65535] (the message names where it came from).
    """
    def first(value: object, *names: str) -> tuple[object, str]:
        if value not in (None, ""):
            return value, "the command line"
        for name in names:
            if environ.get(name):
                return environ[name], name
        return None, "the default"

    chosen_host, _ = first(host, "CARTOON_HOST", "GRADIO_SERVER_NAME")
    chosen_port, origin = first(port, "CARTOON_PORT", "GRADIO_SERVER_PORT")
    if chosen_port is None:
        return str(chosen_host or DEFAULT_HOST), DEFAULT_PORT
    try:
        number = int(str(chosen_port))
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise ValueError(f"port from {origin} must be a whole number in [1, 65535], got {chosen_port!r}")
    return str(chosen_host or DEFAULT_HOST), number


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the white-box representation explorer.", epilog=ADDRESS_HELP)
    parser.add_argument("--host", default=None, help=f"address to bind (default: see below; locally {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=None, help=f"port to bind (default: see below; locally {DEFAULT_PORT})")
    parser.add_argument("--model", default=None, help=f"checkpoint folder or Hub repo id (default: ${REPO_ENV}, "
                                                      "then the bundled assets/model)")
    parser.add_argument("--revision", default=None, help=f"Hub revision of --model (default: ${REVISION_ENV}, then main)")
    args = parser.parse_args(argv)
    if args.model:  # read where every model lookup reads it (cartoon.checkpoint.resolve_generator)
        os.environ[REPO_ENV] = args.model
    if args.revision:
        os.environ[REVISION_ENV] = args.revision
    try:
        host, port = server_address(args.host, args.port)
    except ValueError as error:
        parser.error(str(error))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    log.info("%s", model_status().replace("**", ""))
    log.info("serving on %s:%d", host, port)
    launch(demo, server_name=host, server_port=port)


def launch(blocks: gr.Blocks, **kwargs: Any) -> Any:
    """Launch with the app's limits: bounded queue, capped uploads, only the examples folder served."""
    blocks.queue(max_size=QUEUE_SIZE, default_concurrency_limit=2)
    return blocks.launch(
        max_file_size=f"{max(MAX_UPLOAD_MB, VIDEO_MAX_MB)}mb",
        allowed_paths=[str(EXAMPLES_DIR)],
        theme=gr.themes.Soft(),
        css=CSS,
        show_error=True,
        **kwargs,
    )


if __name__ == "__main__":
    main()
