"""The workload of cow-views.sh: `write ROOT N` creates N files of 1-8 KiB
(create + write + close) in 100 directories under ROOT/out and prints the
seconds it took; `read ROOT` reads every file under ROOT/out twice and
prints the seconds of the second (warm) pass. Files are opened unbuffered,
as a C program opens them: Python's buffered open() asks each file whether
it is a terminal, an ioctl FUSE forwards to the daemon (one more round
trip per file on a FUSE mount, none on overlayfs or native)."""
import os
import random
import sys
import time


def write(root, n):
    rnd = random.Random(1)
    data = os.urandom(8192)
    out = os.path.join(root, "out")
    started = time.perf_counter()
    os.mkdir(out)
    for d in range(100):
        os.mkdir(os.path.join(out, "d%02d" % d))
    for i in range(n):
        with open(os.path.join(out, "d%02d" % (i % 100), "f%05d" % i), "wb", buffering=0) as f:
            f.write(data[: rnd.randint(1024, 8192)])
    return time.perf_counter() - started


def read_all(root):
    total = 0
    for dirpath, _, files in os.walk(os.path.join(root, "out")):
        for name in files:
            with open(os.path.join(dirpath, name), "rb", buffering=0) as f:
                total += len(f.read())
    return total


def read(root):
    read_all(root)
    started = time.perf_counter()
    read_all(root)
    return time.perf_counter() - started


if __name__ == "__main__":
    if sys.argv[1] == "write":
        print("%.3f" % write(sys.argv[2], int(sys.argv[3])))
    else:
        print("%.3f" % read(sys.argv[2]))
