#!/usr/bin/env python3
# write-size.py PATH WRITE_SIZE: makes a 512 MiB file at PATH with writes of WRITE_SIZE bytes, fsyncs it,
# then times 100k random 8 KiB pread+pwrite pairs (as PostgreSQL's redo does) and prints their system
# time. Shows what the extraction's write size costs the server later (docs/performance.md,
# thirteenth session). The file is removed at the end.
import os, sys, random, time, resource
path, wsize = sys.argv[1], int(sys.argv[2])
size = 512 << 20
buf = os.urandom(wsize)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
for off in range(0, size, wsize): os.write(fd, buf)
os.fsync(fd); os.close(fd)
fd = os.open(path, os.O_RDWR)
r = random.Random(1); page = os.urandom(8192)
r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.time()
for i in range(100000):
    off = r.randrange(size // 8192) * 8192
    os.pread(fd, 8192, off); os.pwrite(fd, page, off)
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(f"write size {wsize}: 100k pread+pwrite 8K: wall {time.time()-t0:.2f}s sys {r1.ru_stime-r0.ru_stime:.2f}s user {r1.ru_utime-r0.ru_utime:.2f}s")
os.close(fd); os.unlink(path)
