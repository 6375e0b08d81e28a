#!/usr/bin/env python3
"""What the frame size costs: stored bytes of a tree packed in zstd -3 frames of
a target plain size (files in tree order, as persist packs them), and the bytes
a cold read of a random 5% of the files must fetch when a frame is the smallest
unit of a GET. Optionally with a dictionary trained on the tree.

    pip install zstandard
    bench/analysis/frame_sizes.py [TREE]   # default: the bench's corpus tree
"""
import os
import random
import sys

import zstandard as zstd

ROOT = sys.argv[1] if len(sys.argv) > 1 else "/var/tmp/wsfs-bench-corpus/files-25000"
DICT_BYTES = 112 << 10


def tree_files(root):
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.isfile(path) and not os.path.islink(path):
                files.append(path)
    files.sort(key=lambda p: p.split(os.sep))
    return [open(p, "rb").read() for p in files]


def frames_of(data, target, compressor):
    """(compressed length, files in it) of each frame of `target` plain bytes."""
    frames, buf, members = [], bytearray(), set()
    for i, content in enumerate(data):
        pos = 0
        while True:
            take = content[pos : pos + max(1, target - len(buf))]
            buf += take
            pos += len(take)
            members.add(i)
            if len(buf) >= target:
                frames.append((len(compressor.compress(bytes(buf))), members))
                buf, members = bytearray(), set()
            if pos >= len(content):
                break
    if buf:
        frames.append((len(compressor.compress(bytes(buf))), members))
    return frames


def report(label, frames, sample, extra=0):
    stored = sum(f[0] for f in frames) + extra
    touched = sum(f[0] for f in frames if f[1] & sample) + extra
    print(
        f"{label}: {len(frames)} frames, stored {stored / 2**20:.1f} MiB, "
        f"5% read fetches {touched / 2**20:.1f} MiB = {touched / stored:.2f} of stored",
        flush=True,
    )


def main():
    data = tree_files(ROOT)
    random.seed(1)
    sample = set(random.sample(range(len(data)), len(data) // 20))
    print(f"{ROOT}: {len(data)} files, {sum(map(len, data)) / 2**20:.1f} MiB; sample {len(sample)} files")
    plain = zstd.ZstdCompressor(level=3)
    for target in [1 << 20, 256 << 10, 64 << 10, 16 << 10]:
        report(f"frames of {target >> 10} KiB", frames_of(data, target, plain), sample)
    random.seed(2)
    samples = [d[: 64 << 10] for d in data if d]
    dictionary = zstd.train_dictionary(DICT_BYTES, random.sample(samples, min(len(samples), 8000)))
    with_dict = zstd.ZstdCompressor(level=3, dict_data=dictionary)
    for target in [64 << 10, 16 << 10]:
        frames = frames_of(data, target, with_dict)
        report(f"frames of {target >> 10} KiB + {DICT_BYTES >> 10} KiB dictionary", frames, sample, DICT_BYTES)


if __name__ == "__main__":
    main()
