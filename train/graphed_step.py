"""The adversarial step as one CUDA graph (``--cuda-graph``, on by default wherever it can be; issue 14).

On one H100 the fast step launches some 2,150 kernels (G, two spectral-norm discriminators, VGG three times, the
guided filters, torch SLIC, the losses, both backward passes and two fused Adam steps): 71 ms of host time for
44 ms of device work, so the host bounds it. A CUDA graph records those launches once and replays them with
one. What the step body may therefore not do (the trainer's fast step keeps to it, ``tests/train`` checks it on
the CPU): read a device value on the host, build a tensor from host values, or draw from a host generator;
everything that varies from step to step arrives as a tensor argument. A device generator the body draws from
(DiffAugment's) is registered with the graph, which advances it on each replay.

The first ``warmup`` calls run eagerly on a side stream (cuDNN and cuBLAS pick their algorithms, the optimisers
create their moments); the next one copies its inputs into static buffers, records the body, and replays it;
later calls copy and replay. A failed capture logs why and leaves the step eager (``on_failure`` repairs what the
half-run body left behind).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

log = logging.getLogger("train")

StepBody = Callable[..., dict[str, torch.Tensor]]


CUDA_GRAPH_CHOICES = ("auto", "off", "on")


def resolve_cuda_graph(choice: str, device: torch.device, literal: bool, world: int, structure_on: str) -> bool:
    """Whether the adversarial step is replayed as one CUDA graph (``--cuda-graph``), for the trainer and the CLI.

    ``auto`` is on wherever it can be: CUDA, the fast step, one process and the structure targets on the device
    (``structure_on`` as :func:`train.superpixels.resolve_structure_path` resolved it). On one H200 at 256² x 16 the graph ran
    29 steps/s where the eager step ran 17 (README, Performance). ``on`` where it cannot be is an error."""
    if choice not in CUDA_GRAPH_CHOICES:
        raise ValueError(f"--cuda-graph must be one of {CUDA_GRAPH_CHOICES}, got {choice!r}")
    possible = device.type == "cuda" and not literal and world == 1 and structure_on == "device"
    if choice == "on" and not possible:
        raise ValueError("--cuda-graph on needs CUDA, the fast step (no --literal), the structure targets on the device "
                         "and one process")
    return choice != "off" and possible


class CapturedStep:
    """``step(*inputs) -> {name: 0-d tensor}``: ``body`` run eagerly ``warmup`` times, then replayed as a CUDA graph.

    Args:
        body: the step; its tensor inputs keep their shapes, dtypes, devices and memory formats from call to call.
        generators: the device generators ``body`` draws from (registered with the graph).
        warmup: eager calls before the capture (the PyTorch guide's minimum is a few; each is a real step).
        on_failure: called after a failed capture, before the step falls back to eager calls.

    The returned losses are copies (one kernel): the graph's own outputs change at the next replay.
    """

    def __init__(self, body: StepBody, generators: Sequence[torch.Generator] = (), warmup: int = 3,
                 on_failure: Callable[[], None] | None = None) -> None:
        self.body = body
        self.generators = tuple(generators)
        self.warmup = warmup
        self.on_failure = on_failure
        self.calls = 0
        self.failed: str | None = None
        self._graph: torch.cuda.CUDAGraph | None = None
        self._inputs: tuple[torch.Tensor, ...] = ()
        self._names: tuple[str, ...] = ()
        self._outputs: torch.Tensor | None = None

    @property
    def captured(self) -> bool:
        return self._graph is not None

    def __call__(self, *inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self._graph is not None:
            return self._replay(inputs)
        if self.failed is not None:
            return self.body(*inputs)
        if self.calls <= self.warmup:
            return self._eager_on_side_stream(inputs)
        try:
            self._capture(inputs)
        except Exception as error:  # noqa: BLE001 - any capture failure leaves a working eager step
            self.failed = f"{type(error).__name__}: {error}"
            self._graph, self._inputs, self._outputs = None, (), None
            torch.cuda.synchronize()
            log.warning("CUDA graph capture failed, the step stays eager: %s", self.failed)
            if self.on_failure is not None:
                self.on_failure()
            return self.body(*inputs)
        return self._replay(inputs)

    def _eager_on_side_stream(self, inputs: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            losses = self.body(*inputs)
        torch.cuda.current_stream().wait_stream(side)
        return losses

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> None:
        self._inputs = tuple(x.clone(memory_format=torch.preserve_format) for x in inputs)
        graph = torch.cuda.CUDAGraph()
        for generator in self.generators:
            graph.register_generator_state(generator)
        torch.cuda.synchronize()
        with torch.cuda.graph(graph):
            losses = self.body(*self._inputs)
            self._names = tuple(losses)
            self._outputs = torch.stack([value.detach().float() for value in losses.values()])
        self._graph = graph
        log.info("captured the step as a CUDA graph (%d losses)", len(self._names))

    def _replay(self, inputs: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        for static, value in zip(self._inputs, inputs):
            static.copy_(value, non_blocking=True)
        self._graph.replay()
        values = self._outputs.clone()
        return dict(zip(self._names, values.unbind()))


class HostTraffic(TorchDispatchMode):
    """Records, while active, what a CUDA graph could not replay: device values read on the host (``.item()``,
    ``bool()``, ``float()``, ``.tolist()``, ``.numpy()``, ``.cpu()``), tensors built from host values
    (``torch.tensor``), and the ops whose CUDA kernels wait for the device to size their output (``nonzero``,
    indexing by a boolean mask, ``unique``, ``bincount``, ...: on the CPU they wait for nothing, so only their names
    tell), by op name and the line of this repo's code that asked. Runs on any device, the CPU included, so that
    tests can hold the step body to it without a GPU.

    Example:
        >>> with HostTraffic() as traffic:
        ...     _ = torch.ones(2).sum().item()
        >>> [op for op, _ in traffic.events]
        ['_local_scalar_dense']
    """

    READS = ("tolist", "numpy", "cpu", "item", "__bool__", "__float__", "__int__")
    DISPATCHED = {"_local_scalar_dense", "lift_fresh", "lift_fresh_copy"}
    SIZED_BY_DATA = {"nonzero", "nonzero_static", "masked_select", "_unique", "_unique2", "unique_dim",
                     "unique_consecutive", "bincount", "histc", "argwhere"}
    """Ops whose output size depends on the values: on CUDA they copy a count to the host and wait for it."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[tuple[str, str]] = []
        self._patched: dict[str, Callable] = {}

    def __enter__(self) -> "HostTraffic":
        for name in self.READS:  # on the CPU these read memory without an op the mode would see
            original = getattr(torch.Tensor, name)
            self._patched[name] = original
            setattr(torch.Tensor, name, self._recording(name, original))
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        for name, original in self._patched.items():
            setattr(torch.Tensor, name, original)
        self._patched = {}
        return super().__exit__(*exc)

    def _recording(self, name: str, original: Callable) -> Callable:
        def method(tensor, *args, **kwargs):
            self.events.append((name, caller()))
            with _disable_current_modes():
                return original(tensor, *args, **kwargs)
        return method

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in self.DISPATCHED or name in self.SIZED_BY_DATA or _waits_on_cuda(name, args, kwargs or {}):
            self.events.append((name, caller()))
        return func(*args, **(kwargs or {}))


def _waits_on_cuda(name: str, args: tuple, kwargs: dict) -> bool:
    """Indexing by a boolean mask (a ``nonzero`` inside the kernel) and ``repeat_interleave`` by a tensor of repeats
    without ``output_size``: their CUDA forms wait for the device."""
    if name in ("index", "index_put", "index_put_", "_index_put_impl_"):
        return any(isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8) for index in args[1])
    if name == "repeat_interleave":
        repeats = args[1] if len(args) > 1 else (args[0] if len(args) == 1 else kwargs.get("repeats"))
        return isinstance(repeats, torch.Tensor) and kwargs.get("output_size") is None
    return False


@contextmanager
def outside(traffic: HostTraffic) -> Iterator[None]:
    """Pause a :class:`HostTraffic` (for code that is graph-safe on CUDA by other means, such as a capturable
    optimiser's step, whose CPU form counts steps on the host)."""
    patched = dict(traffic._patched)
    for name, original in patched.items():
        setattr(torch.Tensor, name, original)
    try:
        with _disable_current_modes():
            yield
    finally:
        for name in patched:
            setattr(torch.Tensor, name, traffic._recording(name, patched[name]))


def caller() -> str:
    """``file:line`` of the innermost frame in this repository's code (cartoon/, train/), else the innermost."""
    import traceback

    return project_frame(traceback.extract_stack()[:-2])


def project_frame(frames: Sequence) -> str:
    """:func:`caller` for a list of ``traceback.FrameSummary`` (outermost first)."""
    for frame in reversed(frames):
        if ("/cartoon/" in frame.filename or "/train/" in frame.filename) and "graphed_step" not in frame.filename:
            return f"{frame.filename.rsplit('/', 2)[-2]}/{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
