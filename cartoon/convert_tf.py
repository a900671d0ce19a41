"""Convert the paper authors' TensorFlow 1 generator checkpoint into this project's checkpoint format.

    python -m cartoon.convert_tf path/to/model-33999 -o models/authors      # the two files beside each other
    python -m cartoon.convert_tf --url -o models/authors                     # fetch them first (needs a network)

Reads ``PREFIX.index`` and ``PREFIX.data-00000-of-00001`` with NumPy only (no TensorFlow), checks every tensor's
size and CRC-32C, maps slim's names to :class:`cartoon.models.UNetGenerator`'s state dict (HWIO -> OIHW kernels),
and writes ``model.safetensors``, ``config.json`` and a model card (origin and licence) into ``-o DIR``. The
folder then works everywhere a checkpoint does: ``python -m cartoon --model DIR``, ``CARTOON_MODEL_REPO=DIR
python app.py``, or pushed to one's own Hub repository.

The authors' weights are licensed CC BY-NC-SA 4.0 (non-commercial, share alike); this project never ships them.

File format (TensorFlow's "tensor bundle", ``tensorflow/core/util/tensor_bundle/tensor_bundle.{h,cc}``):

* The ``.index`` file is a LevelDB-style sorted string table (``tensorflow/core/lib/io/table_format.txt``,
  after LevelDB's ``doc/table_format.md``): data blocks, a meta-index block, an index block, then a 48-byte
  footer: two block handles (offset and size, each a base-128 varint) padded to 40 bytes and the magic number
  ``0xdb4775248b80fb57`` as a little-endian fixed64. Every block is followed by a 5-byte trailer: a compression
  byte (0: none) and a masked CRC-32C of the block and that byte. A block holds entries ``shared key bytes,
  unshared key bytes, value length`` (varint32 each), the unshared key bytes and the value; its last 4 bytes
  count the restart points listed before them (fixed32 each). Keys are prefix-compressed against the
  previous entry. The index block maps the last key of each data block to that block's handle.
* Each data-block entry maps a tensor name to a serialized ``BundleEntryProto``
  (``tensorflow/core/protobuf/tensor_bundle.proto``): ``dtype`` (1, varint; 1 = float32), ``shape`` (2, a
  ``TensorShapeProto``: repeated ``dim`` (2) with ``size`` (1)), ``shard_id`` (3), ``offset`` (4), ``size`` (5),
  ``crc32c`` (6, fixed32, masked as in LevelDB: ``((c >> 15 | c << 17) + 0xa282ead8) mod 2^32``), ``slices``
  (7, partitioned variables: not supported). The empty key holds the ``BundleHeaderProto`` (``num_shards``,
  ``endianness``: 0 little, ``version``).
* ``.data-00000-of-00001`` holds the tensors' bytes, row-major, little-endian, at each entry's offset.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cartoon.checkpoint import save_generator
from cartoon.models.generator import UNetGenerator

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5
_DTYPES = {1: np.dtype("<f4"), 2: np.dtype("<f8"), 3: np.dtype("<i4"), 9: np.dtype("<i8")}
AUTHORS_URL = "https://github.com/SystemErrorWang/White-box-Cartoonization/raw/master/test_code/saved_models"
AUTHORS_PREFIX = "model-33999"
LICENCE = "CC BY-NC-SA 4.0"


class ConversionError(ValueError):
    """A checkpoint that cannot be converted; the message names the file and what is wrong."""


# ------------------------------------------------------------------------------------------- crc32c


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of LevelDB and TensorFlow. Pure Python: about 0.1 s per MB."""
    crc, table = 0xFFFFFFFF, _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    """Undo LevelDB's CRC masking (``((c >> 15) | (c << 17)) + 0xa282ead8``)."""
    rotated = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rotated >> 17) | (rotated << 15)) & 0xFFFFFFFF


# ------------------------------------------------------------------------------------ varints, protos


def _varint(buffer: bytes, position: int, where: str) -> tuple[int, int]:
    """A base-128 varint at ``position``: (value, next position)."""
    value = shift = 0
    while True:
        if position >= len(buffer) or shift > 63:
            raise ConversionError(f"{where}: a varint runs past its data (truncated or not a TensorFlow index)")
        byte = buffer[position]
        position += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, position


def _proto_fields(buffer: bytes, where: str) -> dict[int, list]:
    """A protobuf message's fields by number: varints as ints, length-delimited as bytes, fixed32/64 as ints."""
    fields: dict[int, list] = {}
    position = 0
    while position < len(buffer):
        tag, position = _varint(buffer, position, where)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, position = _varint(buffer, position, where)
        elif wire == 2:
            length, position = _varint(buffer, position, where)
            value, position = buffer[position : position + length], position + length
            if len(value) != length:
                raise ConversionError(f"{where}: a field runs past its record")
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, position = int.from_bytes(buffer[position : position + width], "little"), position + width
        else:
            raise ConversionError(f"{where}: unsupported protobuf wire type {wire}")
        fields.setdefault(number, []).append(value)
    return fields


@dataclass(frozen=True)
class BundleEntry:
    """Where one tensor lives in the data file, and what it should be."""

    dtype: np.dtype
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int  # unmasked


def _bundle_entry(name: str, value: bytes) -> BundleEntry:
    where = f"index entry {name!r}"
    fields = _proto_fields(value, where)
    if 7 in fields:
        raise ConversionError(f"{where}: a partitioned (sliced) variable; not supported")
    dtype_code = fields.get(1, [0])[0]
    if dtype_code not in _DTYPES:
        raise ConversionError(f"{where}: unsupported dtype code {dtype_code} (expected 1, float32)")
    shape: list[int] = []
    for shape_message in fields.get(2, []):
        for dim in _proto_fields(shape_message, where).get(2, []):
            shape.append(_proto_fields(dim, where).get(1, [0])[0])
    return BundleEntry(_DTYPES[dtype_code], tuple(shape), fields.get(3, [0])[0], fields.get(4, [0])[0],
                       fields.get(5, [0])[0], unmask_crc(fields.get(6, [0])[0]))


# ------------------------------------------------------------------------------------------ the table


def _read_block(data: bytes, offset: int, size: int, where: str) -> bytes:
    end = offset + size
    if end + BLOCK_TRAILER_SIZE > len(data):
        raise ConversionError(f"{where}: a block runs past the end of the file (truncated?)")
    block, compression = data[offset:end], data[end]
    stored = int.from_bytes(data[end + 1 : end + BLOCK_TRAILER_SIZE], "little")
    if crc32c(block + bytes([compression])) != unmask_crc(stored):
        raise ConversionError(f"{where}: block at byte {offset} fails its checksum (damaged file)")
    if compression != 0:
        raise ConversionError(f"{where}: block at byte {offset} is compressed (type {compression}); only uncompressed "
                              "tables (what TensorFlow writes for checkpoints) are supported")
    return block


def _block_entries(block: bytes, where: str) -> list[tuple[bytes, bytes]]:
    """(key, value) pairs of one block, keys expanded from their shared prefixes."""
    if len(block) < 4:
        raise ConversionError(f"{where}: a block too short to hold its restart count")
    restarts = int.from_bytes(block[-4:], "little")
    end = len(block) - 4 - 4 * restarts
    if end < 0:
        raise ConversionError(f"{where}: a block's restart array is larger than the block")
    entries, key, position = [], b"", 0
    while position < end:
        shared, position = _varint(block, position, where)
        unshared, position = _varint(block, position, where)
        length, position = _varint(block, position, where)
        if shared > len(key) or position + unshared + length > end:
            raise ConversionError(f"{where}: a malformed entry at byte {position} of a block")
        key = key[:shared] + block[position : position + unshared]
        position += unshared
        entries.append((key, block[position : position + length]))
        position += length
    return entries


def read_index(path: Path) -> dict[str, BundleEntry]:
    """Every tensor entry of a checkpoint's ``.index`` file, by name (the bundle header is checked, not returned)."""
    if not path.is_file():
        raise ConversionError(f"{path}: missing (a TensorFlow checkpoint is PREFIX.index + PREFIX.data-00000-of-00001)")
    data = path.read_bytes()
    where = str(path)
    if len(data) < FOOTER_SIZE:
        raise ConversionError(f"{where}: {len(data)} bytes, shorter than a table footer (truncated or not an index)")
    footer = data[-FOOTER_SIZE:]
    magic = int.from_bytes(footer[-8:], "little")
    if magic != MAGIC:
        raise ConversionError(f"{where}: wrong magic number {magic:#018x} (expected {MAGIC:#018x}): not a TensorFlow "
                              "checkpoint index, or truncated")
    _, position = _varint(footer, 0, where)  # meta-index handle: offset
    _, position = _varint(footer, position, where)  # meta-index handle: size
    index_offset, position = _varint(footer, position, where)
    index_size, _ = _varint(footer, position, where)
    entries: dict[str, BundleEntry] = {}
    for _, handle in _block_entries(_read_block(data, index_offset, index_size, where), where):
        offset, position = _varint(handle, 0, where)
        size, _ = _varint(handle, position, where)
        for key, value in _block_entries(_read_block(data, offset, size, where), where):
            if key == b"":  # BundleHeaderProto
                header = _proto_fields(value, f"{where} header")
                if header.get(1, [1])[0] != 1:
                    raise ConversionError(f"{where}: {header[1][0]} data shards; only single-shard checkpoints are supported")
                if header.get(2, [0])[0] != 0:
                    raise ConversionError(f"{where}: big-endian checkpoint; not supported")
                continue
            name = key.decode("utf-8", errors="replace")
            entries[name] = _bundle_entry(name, value)
    return entries


def read_checkpoint(prefix: str | Path) -> dict[str, np.ndarray]:
    """All tensors of a single-shard TensorFlow checkpoint, by variable name, each checked for size and CRC-32C."""
    prefix = Path(prefix)
    index = read_index(prefix.with_name(prefix.name + ".index"))
    data_path = prefix.with_name(prefix.name + ".data-00000-of-00001")
    if not data_path.is_file():
        raise ConversionError(f"{data_path}: missing (the index names its tensors; their values live in this file)")
    data = data_path.read_bytes()
    tensors = {}
    for name, entry in index.items():
        expected = entry.dtype.itemsize * int(np.prod(entry.shape, dtype=np.int64))
        if entry.size != expected:
            raise ConversionError(f"{name}: the index says {entry.size} bytes for shape {entry.shape}, which needs {expected}")
        if entry.offset + entry.size > len(data):
            raise ConversionError(f"{data_path}: {len(data)} bytes, but {name} ends at byte {entry.offset + entry.size} "
                                  "(truncated?)")
        raw = data[entry.offset : entry.offset + entry.size]
        if crc32c(raw) != entry.crc32c:
            raise ConversionError(f"{data_path}: {name} fails its checksum (damaged file)")
        tensors[name] = np.frombuffer(raw, dtype=entry.dtype).reshape(entry.shape).astype(np.float32)
    return tensors


# ----------------------------------------------------------------------------------------- the mapping


def slim_names(num_blocks: int) -> dict[str, str]:
    """Our generator's module names -> the authors' slim scopes, in forward order (``test_code/network.py``)."""
    names = ["conv_in", "down1", "conv1", "down2", "conv2", "conv3", "up1", "up1_out", "up2", "conv_out"]
    mapping = {ours: "generator/Conv" if index == 0 else f"generator/Conv_{index}" for index, ours in enumerate(names)}
    for block in range(num_blocks):
        for conv in ("conv1", "conv2"):
            mapping[f"blocks.{block}.{conv}"] = f"generator/block_{block}/{conv}"
    return mapping


def to_generator(tensors: dict[str, np.ndarray], source: str = "checkpoint") -> UNetGenerator:
    """Build a :class:`UNetGenerator` from the authors' tensors (width and block count read from them).

    Raises:
        ConversionError: a missing or unexpected tensor, or a shape that does not fit the architecture.
    """
    first = tensors.get("generator/Conv/weights")
    if first is None:
        raise ConversionError(f"{source}: no tensor generator/Conv/weights: not the authors' generator "
                              f"(found {sorted(tensors)[:5]}...)")
    if first.ndim != 4 or first.shape[:3] != (7, 7, 3):
        raise ConversionError(f"{source}: generator/Conv/weights has shape {first.shape}, expected (7, 7, 3, channels)")
    channels = int(first.shape[3])
    num_blocks = len({name.split("/")[1] for name in tensors if name.startswith("generator/block_")})
    mapping = slim_names(num_blocks)
    model = UNetGenerator(channels=channels, num_blocks=num_blocks)
    state = {}
    for ours, theirs in mapping.items():
        for suffix, param in (("weights", "weight"), ("biases", "bias")):
            name = f"{theirs}/{suffix}"
            if name not in tensors:
                raise ConversionError(f"{source}: tensor {name} is missing")
            value = tensors[name]
            if suffix == "weights":
                value = value.transpose(3, 2, 0, 1)  # HWIO -> OIHW
            target = model.get_parameter(f"{ours}.{param}")
            if value.shape != tuple(target.shape):
                raise ConversionError(f"{source}: {name} has shape {tensors[name].shape}, which does not fit "
                                      f"{ours}.{param} {tuple(target.shape)} of a generator with channels={channels}")
            state[f"{ours}.{param}"] = torch.from_numpy(np.ascontiguousarray(value))
    unused = sorted(set(tensors) - {f"{theirs}/{suffix}" for theirs in mapping.values() for suffix in ("weights", "biases")})
    generator_unused = [name for name in unused if name.startswith("generator/")]
    if generator_unused:
        raise ConversionError(f"{source}: unexpected generator tensors {generator_unused[:4]}: a different architecture")
    model.load_state_dict(state, strict=True)
    return model.eval()


MODEL_CARD = """---
library_name: cartoon
license: cc-by-nc-sa-4.0
tags: [image-to-image, cartoonization, white-box-cartoonization]
---

# White-box cartoonizer: the paper authors' generator

Converted from the TensorFlow checkpoint `{name}` of Xinrui Wang and Jinze Yu, *Learning to Cartoonize Using
White-box Cartoon Representations* (CVPR 2020), repository SystemErrorWang/White-box-Cartoonization
(`test_code/saved_models/`), by `python -m cartoon.convert_tf` of this project: the same weights, read without
TensorFlow, kernels transposed from HWIO to OIHW. Nothing was trained or changed here.

| | |
|---|---|
| architecture | U-Net, channels {channels}, residual blocks {num_blocks} ({parameters:,} parameters) |
| source files | `{name}.index` (sha256 {index_sha}), `{name}.data-00000-of-00001` (sha256 {data_sha}) |
| tensors | {count}, each checked against its CRC-32C |

## Licence

The authors release these weights under **{licence}** (Creative Commons Attribution-NonCommercial-ShareAlike 4.0):
non-commercial use only, credit the authors, and share derivatives under the same licence. This converted copy is
a derivative and carries the same terms. Do not use it in a commercial product or service.
"""


def convert(prefix: str | Path, output: str | Path) -> Path:
    """Convert ``PREFIX.{index,data-00000-of-00001}`` into a checkpoint folder; returns it. Nothing is written
    unless the whole checkpoint reads, checks and fits."""
    import hashlib

    prefix, output = Path(prefix), Path(output)
    tensors = read_checkpoint(prefix)
    model = to_generator(tensors, str(prefix))
    output.mkdir(parents=True, exist_ok=True)
    save_generator(model, output)
    digest = {suffix: hashlib.sha256(prefix.with_name(prefix.name + suffix).read_bytes()).hexdigest()[:16]
              for suffix in (".index", ".data-00000-of-00001")}
    (output / "README.md").write_text(MODEL_CARD.format(
        name=prefix.name, parameters=sum(p.numel() for p in model.parameters()), count=len(tensors),
        index_sha=digest[".index"], data_sha=digest[".data-00000-of-00001"], licence=LICENCE, **model.config))
    (output / "conversion.json").write_text(json.dumps({"source": prefix.name, "licence": LICENCE, **digest}, indent=2) + "\n")
    return output


def fetch(base_url: str, name: str, folder: Path, timeout_s: float = 60.0) -> Path:
    """Download ``name.index`` and ``name.data-00000-of-00001`` from ``base_url`` into ``folder``; returns the prefix."""
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in (".index", ".data-00000-of-00001"):
        url = f"{base_url.rstrip('/')}/{name}{suffix}"
        print(f"fetching {url}", file=sys.stderr)
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            (folder / f"{name}{suffix}").write_bytes(response.read())
    return folder / name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cartoon.convert_tf", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=f"The authors' weights are {LICENCE}: non-commercial use only.")
    parser.add_argument("prefix", nargs="?", default=None,
                        help="checkpoint prefix, e.g. path/model-33999 (the .index and .data files beside it)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="checkpoint folder to write")
    parser.add_argument("--url", nargs="?", const=AUTHORS_URL, default=None,
                        help=f"first download PREFIX's two files (default name {AUTHORS_PREFIX}) from this address "
                             f"(default: the authors' repository); needs a network")
    args = parser.parse_args(argv)
    if args.prefix is None and args.url is None:
        parser.error("give a checkpoint PREFIX, or --url to download the authors' one")
    try:
        if args.url is not None:
            with tempfile.TemporaryDirectory() as folder:
                prefix = fetch(args.url, Path(args.prefix or AUTHORS_PREFIX).name, Path(folder))
                out = convert(prefix, args.output)
        else:
            out = convert(args.prefix, args.output)
    except ConversionError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"converted to {out} (licence {LICENCE}: non-commercial use only)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
