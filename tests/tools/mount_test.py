#!/usr/bin/env python3
"""`coffer mount` with real FUSE mounts of repositories made by restic 0.14.

Covers: every file of the awkward source tree compared with the mount (content hash, stat fields,
xattrs, hard-link inode equality, symlink targets, devices, fifos) plus holes via SEEK_DATA/SEEK_HOLE
and st_blocks; an ext4 image inside the snapshot attached with `losetup -r`, checked with `e2fsck -fn`
and mounted read-only; an image made by `mke2fs -d` reading from the mount; eight threads reading
at random offsets; `restic forget` + `restic prune` while mounted; a corrupted pack (EIO for the
affected reads only); kill -9 of the daemon (ENOTCONN, then a remount after `fusermount3 -u`); new
snapshots appearing without a remount; `mount -t coffer` and an fstab line through the real mount(8)
and the mount.coffer helper; --lock; foreground mode with SIGTERM; the password never in
/proc/<pid>/cmdline or /proc/<pid>/environ of the coffer-mount process (daemon and foreground); the
exit codes for a missing, busy or dead mount point, a wrong password, a missing repository, a
malformed location (reported before any password is read) and a missing coffer-mount binary.

Needs root and /dev/fuse (skipped otherwise). Every mount and loop device is removed in tearDown,
with timeouts, even when a test fails.
Run: COFFER_BIN=build/coffer python3 tests/tools/mount_test.py
"""

import ctypes
import errno
import hashlib
import mmap
import os
import re
import random
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import e2e_support as E  # noqa: E402

F = None
HAVE_FUSE = E.IS_ROOT and os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None
HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools", "mount.coffer")
HOST = "mounthost"
TIMEOUT = 120


def mounts_under(root: str, fuse=None) -> list:
    """Mount points at or below `root` in mount order; fuse=True/False keeps only FUSE/other ones."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")
            fstype = fields[fields.index("-") + 1]
            if fuse is not None and fstype.startswith("fuse") != fuse:
                continue
            if point == root or point.startswith(root.rstrip("/") + "/"):
                out.append(point)
    return out


def is_mounted(path: str) -> bool:
    return os.path.realpath(path) in mounts_under(os.path.realpath(path))


def short_id(snap_id: str) -> str:
    return snap_id[:8]


def wait_until(cond, timeout: float = 15.0, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def unmount(path: str) -> None:
    """Unmounts `path` (plain, then lazy) and waits until it is gone."""
    for argv in (["fusermount3", "-u", path], ["umount", path], ["umount", "-l", path]):
        if not is_mounted(path):
            return
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        wait_until(lambda: not is_mounted(path), timeout=5)


def daemon_pids(mountpoint: str) -> list:
    """Pids of coffer-mount (or `coffer mount`) processes serving `mountpoint`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        daemon = os.path.basename(args[0]) == b"coffer-mount"
        if (daemon or b"mount" in args and b"coffer" in args[0]) and os.fsencode(mountpoint) in args:
            pids.append(int(entry))
    return pids


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_direct(fd: int, size: int, offset: int = 0) -> bytes:
    """pread through O_DIRECT `fd`: bypasses the page cache, so the daemon serves every byte."""
    buf = mmap.mmap(-1, max(4096, (size + 4095) // 4096 * 4096))  # page-aligned
    try:
        n = os.preadv(fd, [buf], offset)
        return bytes(buf[:min(n, size)])
    finally:
        buf.close()


def data_ranges(path: str) -> list:
    """[(start, end)] of the data regions SEEK_DATA/SEEK_HOLE report."""
    out = []
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        off = 0
        while off < size:
            try:
                start = os.lseek(fd, off, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            out.append((start, end))
            off = end
    finally:
        os.close(fd)
    return out



def resident_pages(fd, size):
    """Which pages of the open file `fd` (of `size` bytes) are in the page cache (mincore)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap failed")
    try:
        pages = (size + 4095) // 4096
        vec = ctypes.create_string_buffer(pages)
        if libc.mincore(addr, size, vec) != 0:
            raise OSError(ctypes.get_errno(), "mincore failed")
        return [b & 1 == 1 for b in vec.raw[:pages]]
    finally:
        libc.munmap(addr, size)

class Fixture:
    def __init__(self):
        self.ws = E.Workspace("mount")
        self.data = self.ws.path("data")
        self.src = E.build_source_tree(self.data)
        self._make_disk_image()
        self.src_scan = E.scan_tree(self.src)
        self.repo = E.ResticRepo(self.ws, "repo").init()
        self.s1 = self.repo.backup(["src"], HOST, ["first"], cwd=self.data)

    def _make_disk_image(self):
        """An ext4 image (64 MiB, mostly holes) made with `mke2fs -d` from a small tree."""
        self.img_src = os.path.join(self.data, "imgsrc")
        rnd = random.Random(5)
        os.makedirs(os.path.join(self.img_src, "dir", "deeper"))
        for i in range(30):
            with open(os.path.join(self.img_src, "dir", "f%02d" % i), "wb") as f:
                f.write(rnd.randbytes(rnd.randrange(1, 300_000)))
        with open(os.path.join(self.img_src, "dir", "deeper", "big"), "wb") as f:
            f.write(rnd.randbytes(5 * E.MiB))
        os.symlink("dir/f01", os.path.join(self.img_src, "link"))
        self.image = os.path.join(self.src, "disk.img")
        res = E.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", self.img_src, self.image, "64M"])
        assert res.rc == 0, res.describe()
        self.img_scan = E.scan_tree(self.img_src)


def setUpModule():
    global F
    if HAVE_FUSE:
        F = Fixture()


def tearDownModule():
    if F is not None:
        F.ws.cleanup()


@unittest.skipUnless(HAVE_FUSE, "needs root, /dev/fuse and fusermount3")
class MountBase(unittest.TestCase):
    def setUp(self):
        self.mountpoints = []
        self.loops = []
        self.cleanups_after = []

    def tearDown(self):
        # File systems on loop devices first, then the loop devices, then the FUSE mounts.
        for point in reversed(mounts_under(F.ws.root, fuse=False)):
            unmount(point)
        for dev in reversed(self.loops):
            subprocess.run(["losetup", "-d", dev], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=30)
        for point in reversed(mounts_under(F.ws.root)):
            unmount(point)
        for mp in self.mountpoints:
            for pid in daemon_pids(mp):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for fn in self.cleanups_after:
            fn()
        leftover = mounts_under(F.ws.root)
        self.assertEqual(leftover, [], "mounts left behind")

    def mountpoint(self) -> str:
        mp = F.ws.fresh("mnt")
        os.makedirs(mp)
        self.mountpoints.append(mp)
        return mp

    def mount(self, repo, *extra, mp=None, pwfile=None) -> str:
        mp = mp or self.mountpoint()
        res = repo.coffer("mount", mp, "--daemon", *extra, pwfile=pwfile, timeout=TIMEOUT)
        self.assertEqual(res.rc, 0, res.describe())
        self.assertTrue(is_mounted(mp), "not mounted after --daemon returned")
        return mp

    def snap_dir(self, mp, snap_id) -> str:
        return os.path.join(mp, "ids", short_id(snap_id))

    def losetup(self, path) -> str:
        res = E.run(["losetup", "-r", "--show", "-f", path], timeout=60)
        self.assertEqual(res.rc, 0, res.describe())
        dev = res.out.decode().strip()
        self.loops.append(dev)
        return dev


class TreeTest(MountBase):
    def test_every_file_matches_the_source(self):
        mp = self.mount(F.repo)
        self.assertEqual(sorted(os.listdir(mp)), ["hosts", "ids", "snapshots", "tags"])
        got = E.scan_tree(os.path.join(self.snap_dir(mp, F.s1), "src"))
        # restic 0.14 stores link targets as JSON strings: invalid UTF-8 is lost before the mount.
        lossy = {b"links/sym_bad": {"target": b"target\xef\xbf\xbd\xef\xbf\xbd-not-utf8"}}
        diffs = E.compare_scans(F.src_scan, got, overrides=lossy)
        self.assertEqual(diffs, [], E.fmt_diffs(diffs))
        # Hard links: one inode, the stored link count.
        a = os.lstat(os.path.join(self.snap_dir(mp, F.s1), "src/links/hard_a"))
        c = os.lstat(os.path.join(self.snap_dir(mp, F.s1), "src/links/sub/hard_c"))
        self.assertEqual((a.st_ino, a.st_nlink), (c.st_ino, 3))
        with open("/proc/self/mountinfo") as f:
            line = next(ln for ln in f if " %s " % mp in ln)
        self.assertIn(" fuse.coffer coffer:%s " % F.repo.path, line)
        self.assertIn(" ro,", line)
        self.assertIn("default_permissions", line)
        dev = os.stat(mp).st_dev
        with open("/sys/class/bdi/%d:%d/read_ahead_kb" % (os.major(dev), os.minor(dev))) as f:
            self.assertEqual(f.read().strip(), "1024", "read-ahead not raised")

    def test_layout_and_latest_links(self):
        mp = self.mount(F.repo)
        names = sorted(os.listdir(os.path.join(mp, "snapshots")))
        self.assertEqual(len(names), 2)
        self.assertEqual(os.readlink(os.path.join(mp, "snapshots", "latest")), names[0])
        self.assertEqual(os.listdir(os.path.join(mp, "hosts")), [HOST])
        self.assertEqual(os.listdir(os.path.join(mp, "tags")), ["first"])
        self.assertEqual(sorted(os.listdir(os.path.join(mp, "tags", "first"))), [names[0], "latest"])
        same = [os.path.join(mp, p, "src", "hello.txt")
                for p in ("snapshots/latest", "ids/" + short_id(F.s1), "hosts/%s/latest" % HOST)]
        inos = {os.stat(p).st_ino for p in same}
        self.assertEqual(len(inos), 1, "one file, one inode in every view")
        st = os.stat(os.path.join(mp, "snapshots", "latest"))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o555)
        with self.assertRaises(OSError) as cm:
            open(os.path.join(mp, "snapshots", "latest", "src", "new"), "wb")
        self.assertEqual(cm.exception.errno, errno.EROFS)

    def test_holes_are_reported_and_read_as_zeros(self):
        mp = self.mount(F.repo)
        path = os.path.join(self.snap_dir(mp, F.s1), "src", "sparse.img")
        size = os.stat(path).st_size
        ranges = data_ranges(path)
        for off, n in E.SPARSE_BLOCKS:
            self.assertTrue(any(s <= off and off + n <= e for s, e in ranges),
                            "data at %d not reported: %r" % (off, ranges))
        in_data = sum(e - s for s, e in ranges)
        self.assertLess(in_data, size // 4, "most of the file must be holes: %r" % ranges)
        st = os.stat(path)
        self.assertEqual(st.st_blocks * 512, (in_data + 511) // 512 * 512)
        with open(path, "rb") as f:  # every hole reads as zeros
            prev = 0
            for s, e in ranges + [(size, size)]:
                f.seek(prev)
                hole = f.read(s - prev)
                self.assertEqual(hole.count(0), len(hole))
                prev = e
        big = os.stat(os.path.join(self.snap_dir(mp, F.s1), "src", "big.bin"))
        self.assertEqual(data_ranges(os.path.join(self.snap_dir(mp, F.s1), "src", "big.bin")),
                         [(0, big.st_size)])
        self.assertGreaterEqual(big.st_blocks * 512, big.st_size)
        copy = F.ws.fresh("sparse-copy")
        res = E.run(["cp", "--sparse=always", path, copy])
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(sha256(copy), F.src_scan[b"sparse.img"]["sha256"])

    def test_eight_threads_random_reads(self):
        mp = self.mount(F.repo, "--cache-mem", "8M")
        files = ["big.bin", "sparse.img", "disk.img"]
        want = {}
        for name in files:
            with open(os.path.join(F.src, name), "rb") as f:
                want[name] = f.read()
        errors = []

        def reader(seed):
            rnd = random.Random(seed)
            fds = {n: os.open(os.path.join(self.snap_dir(mp, F.s1), "src", n), os.O_RDONLY) for n in files}
            try:
                for _ in range(150):
                    name = rnd.choice(files)
                    data = want[name]
                    off = rnd.randrange(0, len(data) + 10)
                    n = rnd.choice([1, 512, 4096, 65536, 1 << 20, rnd.randrange(1, 3 << 20)])
                    got = os.pread(fds[name], n, off)
                    if got != data[off:off + n]:
                        errors.append("%s at %d+%d: %d bytes differ" % (name, off, n, len(got)))
            except Exception as e:  # noqa: BLE001 - reported by the main thread
                errors.append(repr(e))
            finally:
                for fd in fds.values():
                    os.close(fd)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        self.assertFalse(any(t.is_alive() for t in threads), "a reader hung")
        self.assertEqual(errors, [])


    def test_a_random_read_puts_its_whole_chunk_in_the_page_cache(self):
        """A 4 KiB read with readahead off fetches and verifies its whole chunk; the daemon hands
        the chunk's whole pages to the kernel's page cache (FUSE_NOTIFY_STORE), so they become
        resident without being read, pages of other chunks do not, and everything reads right."""
        mp = self.mount(F.repo, "--no-cache")
        path = os.path.join(self.snap_dir(mp, F.s1), "src", "big.bin")
        locs = F.repo.blob_locations()
        sizes = [locs[b].get("uncompressed_length") or locs[b]["length"] - 32
                 for b in F.repo.node(F.s1, "/src/big.bin")["content"]]
        self.assertGreaterEqual(len(sizes), 3, "big.bin must have three chunks")
        start, end = sizes[0], sizes[0] + sizes[1]
        with open(os.path.join(F.src, "big.bin"), "rb") as f:
            want = f.read()
        page = 4096
        first, last = (start + page - 1) // page, end // page  # whole pages of chunk 2
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no kernel readahead
            mid = (first + last) // 2 * page
            self.assertEqual(os.pread(fd, page, mid), want[mid:mid + page])
            deadline = time.monotonic() + 30
            while True:
                resident = resident_pages(fd, len(want))
                missing = [p for p in range(first, last) if not resident[p]]
                if not missing or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            self.assertEqual(missing, [], "pages of the chunk that a read fetched are not cached")
            outside = [p for p in range(0, first - 1) if resident[p]]
            outside += [p for p in range(last + 1, len(resident)) if resident[p]]
            self.assertEqual(outside, [], "pages of chunks nobody read are cached")
            # The page chunks 1 and 2 share is whole once both have been read.
            if start % page:
                shared = start // page
                self.assertFalse(resident[shared], "a page with bytes of an unread chunk is cached")
                # On a second descriptor: its own stream, so this read is random too, however
                # near the first one it lies.
                m1 = sizes[0] // 2 // page * page
                fd1 = os.open(path, os.O_RDONLY)
                try:
                    os.posix_fadvise(fd1, 0, 0, os.POSIX_FADV_RANDOM)
                    self.assertEqual(os.pread(fd1, page, m1), want[m1:m1 + page])
                finally:
                    os.close(fd1)
                self.assertTrue(wait_until(lambda: resident_pages(fd, len(want))[shared], 30),
                                "the page two read chunks share is not cached")
            got = b"".join(os.pread(fd, 1 << 20, off) for off in range(0, len(want), 1 << 20))
            self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(want).hexdigest())
        finally:
            os.close(fd)

    def run_foreground(self, mp, extra_env, body, *args, repo=None, global_args=()) -> bytes:
        """Runs `coffer -v [global_args] mount mp *args` on `repo` (default F.repo) in the
        foreground, calls body() once mounted, unmounts and returns the daemon's stderr (its
        statistics at unmount)."""
        repo = repo or F.repo
        env = dict(repo.env, COFFER_CACHE_DIR=F.ws.fresh("fg-cache"), **extra_env)
        proc = subprocess.Popen([E.COFFER_BIN, "-v", *global_args, "-r", repo.path, "--password-file",
                                 F.ws.pwfile, "mount", mp, *args], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            self.assertTrue(wait_until(lambda: is_mounted(mp), timeout=30), "not mounted")
            body()
            res = E.run(["fusermount3", "-u", mp], timeout=30)
            self.assertEqual(res.rc, 0, res.describe())
            _, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        self.assertEqual(proc.returncode, 0, err)
        return err

    def test_random_chunks_are_cached_in_ram_when_the_kernel_refuses_stores(self):
        """Where FUSE_NOTIFY_STORE is refused (COFFER_DEBUG_REFUSE_STORE makes every store fail
        as on a kernel without it), the daemon goes back to keeping random readers' chunks in
        RAM: after the refusal, two reads in one chunk cost one fetch, not two."""
        mp = self.mountpoint()
        path = os.path.join(self.snap_dir(mp, F.s1), "src", "big.bin")
        locs = F.repo.blob_locations()
        sizes = [locs[b].get("uncompressed_length") or locs[b]["length"] - 32
                 for b in F.repo.node(F.s1, "/src/big.bin")["content"]]
        self.assertGreaterEqual(len(sizes), 3, "big.bin must have three chunks")
        with open(os.path.join(F.src, "big.bin"), "rb") as f:
            want = f.read()
        page = 4096

        def random_read(off):
            fd = os.open(path, os.O_RDONLY)  # a descriptor of its own: a random read
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
                self.assertEqual(os.pread(fd, page, off), want[off:off + page])
            finally:
                os.close(fd)

        def body():
            random_read(sizes[0] // 2 // page * page)  # chunk 1: fetched; its store is refused
            time.sleep(1)  # the refusal happens on the fill thread, after the reply
            base = (sizes[0] + page - 1) // page * page  # chunk 2, after the refusal
            for i in range(3):
                random_read(base + (i + 1) * 4 * page)

        err = self.run_foreground(mp, {"COFFER_DEBUG_REFUSE_STORE": "1"}, body)
        self.assertIn(b"the kernel refused a store", err)
        m = re.search(rb"mount: (\d+) reads of chunks, (\d+) from RAM, (\d+) fetched", err)
        self.assertIsNotNone(m, err)
        gets, ram, fetched = (int(x) for x in m.groups())
        self.assertEqual(fetched, 2, err)  # chunk 1 once, chunk 2 once
        self.assertGreaterEqual(ram, 2, err)  # the later reads of chunk 2

    def test_a_slow_sequential_reader_gets_each_chunk_fetched_once(self):
        """A reader slower than the backend (a local repository made to count as remote, no disk
        cache, a small --cache-mem): the chunks fetched ahead wait in RAM until it reaches them.
        Before, reading a chunk made it newer than those fetched ahead of it, so they were the
        ones evicted, and each was fetched a second time when the reader got there."""
        base = F.ws.path("slow-src")
        os.makedirs(base)
        data = random.Random(11).randbytes(40 * E.MiB)
        with open(os.path.join(base, "slow.bin"), "wb") as f:
            f.write(data)
        repo = E.ResticRepo(F.ws, "slow-repo").init()
        sid = repo.backup(["slow.bin"], HOST, cwd=base)
        chunks = len(repo.node(sid, "/slow.bin")["content"])
        mp = self.mountpoint()
        got = []

        def body():
            with open(os.path.join(self.snap_dir(mp, sid), "slow.bin"), "rb", buffering=0) as f:
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_SEQUENTIAL)
                while block := f.read(E.MiB):
                    got.append(block)
                    time.sleep(0.03)

        err = self.run_foreground(mp, {"COFFER_DEBUG_LATENCY_MS": "2"}, body, "--cache-mem", "24M",
                                  repo=repo, global_args=("--no-cache",))
        self.assertEqual(hashlib.sha256(b"".join(got)).digest(), hashlib.sha256(data).digest())
        m = re.search(rb"mount: (\d+) reads of chunks, (\d+) from RAM, (\d+) fetched", err)
        self.assertIsNotNone(m, err)
        # Each chunk once. Up to two more are tolerated: on a loaded machine the kernel may drop
        # read-ahead pages before the reader gets to them and ask again for a chunk already
        # read, which the cache evicts first by design (a CI run saw 28 for 27). The bug this
        # guards against fetched most chunks twice (54 for 30).
        self.assertGreaterEqual(int(m.group(3)), chunks, err)
        self.assertLessEqual(int(m.group(3)), chunks + 2, err)

    def test_the_disk_chunk_cache_serves_a_remount_without_the_packs(self):
        """The on-disk chunk cache (used for repositories that are not local; the latency knob
        makes this one count as remote) survives an unmount: after the packs are moved away, a
        new mount still reads big.bin whole and right, from the cache alone."""
        repo = F.repo.copy("disk-cache")
        cache = F.ws.fresh("disk-cache-dir")
        env = {"COFFER_DEBUG_LATENCY_MS": "1"}
        args = ("--cache-dir", cache, "mount")
        mp = self.mountpoint()
        path = os.path.join(self.snap_dir(mp, F.s1), "src", "big.bin")
        res = repo.coffer(*args, mp, "--daemon", "--cache-size", "256M", env=env, timeout=TIMEOUT)
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(sha256(path), F.src_scan[b"big.bin"]["sha256"])
        res = E.run(["fusermount3", "-u", mp], timeout=30)
        self.assertEqual(res.rc, 0, res.describe())
        stored = [os.path.join(d, n) for d, _, ns in os.walk(cache) for n in ns if "/chunks/" in d]
        self.assertGreaterEqual(len(stored), 3, "the chunks of big.bin are not on disk")
        packs = {repo.blob_locations()[b]["pack"] for b in repo.node(F.s1, "/src/big.bin")["content"]}
        away = F.ws.fresh("packs-away")
        os.makedirs(away)
        for p in packs:
            shutil.move(repo.pack_path(p), os.path.join(away, p))
        res = repo.coffer(*args, mp, "--daemon", "--cache-size", "256M", env=env, timeout=TIMEOUT)
        self.assertEqual(res.rc, 0, res.describe())
        self.assertEqual(sha256(path), F.src_scan[b"big.bin"]["sha256"])

    def test_random_readers_that_close_at_once(self):
        """Readers that open, read 4 KiB at a random place with readahead off, and close at once:
        the kernel may release a file as soon as its READ is answered, while the daemon still
        hands the chunk to the page cache. No crash, right bytes, the mount stays up."""
        mp = self.mount(F.repo, "--no-cache", "--cache-mem", "8M")
        path = os.path.join(self.snap_dir(mp, F.s1), "src", "big.bin")
        with open(os.path.join(F.src, "big.bin"), "rb") as f:
            want = f.read()
        errors = []

        def reader(seed):
            rnd = random.Random(seed)
            try:
                for _ in range(300):
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
                        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                        off = rnd.randrange(0, len(want)) // 4096 * 4096
                        if os.pread(fd, 4096, off) != want[off:off + 4096]:
                            errors.append("bytes differ at %d" % off)
                    finally:
                        os.close(fd)
            except Exception as e:  # noqa: BLE001 - reported by the main thread
                errors.append(repr(e))

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        self.assertFalse(any(t.is_alive() for t in threads), "a reader hung")
        self.assertEqual(errors, [])
        self.assertEqual(sha256(path), hashlib.sha256(want).hexdigest())

    def test_slow_backend_reads_right_with_and_without_prefetch(self):
        """A backend that waits on every request (COFFER_DEBUG_LATENCY_MS), read sequentially with
        prefetching on and with one request at a time: the same bytes either way, no disk cache."""
        with open(os.path.join(F.src, "big.bin"), "rb") as f:
            want = hashlib.sha256(f.read()).hexdigest()
        for extra in ([], ["--prefetch", "0", "--fetch-threads", "1"], ["--prefetch", "256K"]):
            mp = self.mountpoint()
            res = F.repo.coffer("--no-cache", "mount", mp, "--daemon", *extra,
                                env={"COFFER_DEBUG_LATENCY_MS": "5"}, timeout=TIMEOUT)
            self.assertEqual(res.rc, 0, res.describe())
            self.assertEqual(sha256(os.path.join(self.snap_dir(mp, F.s1), "src", "big.bin")), want,
                             "options %s" % extra)
            unmount(mp)

    def test_bad_prefetch_and_latency_settings_are_refused(self):
        mp = self.mountpoint()
        res = F.repo.coffer("mount", mp, "--prefetch", "lots", timeout=TIMEOUT)
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(b"invalid size", res.err)
        res = F.repo.coffer("mount", mp, "--fetch-threads", "0", timeout=TIMEOUT)
        self.assertNotEqual(res.rc, 0, res.describe())
        res = F.repo.coffer("snapshots", env={"COFFER_DEBUG_LATENCY_MS": "soon"}, timeout=TIMEOUT)
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(b"COFFER_DEBUG_LATENCY_MS", res.err)
        self.assertFalse(is_mounted(mp))


class LoopTest(MountBase):
    def test_ext4_image_through_losetup(self):
        mp = self.mount(F.repo)
        image = os.path.join(self.snap_dir(mp, F.s1), "src", "disk.img")
        self.assertEqual(sha256(image), sha256(F.image))
        dev = self.losetup(image)
        res = E.run(["e2fsck", "-fn", dev], timeout=300)
        self.assertEqual(res.rc, 0, res.describe())
        inner = self.mountpoint()
        res = E.run(["mount", "-o", "ro", dev, inner], timeout=60)
        self.assertEqual(res.rc, 0, res.describe())
        got = E.scan_tree(inner)
        got.pop(b"lost+found", None)
        diffs = E.compare_scans(F.img_scan, got, fields=("type", "size", "sha256", "target"),
                                skip=(b".",), check_links=False)
        self.assertEqual(diffs, [], E.fmt_diffs(diffs))

    def test_mke2fs_reads_a_tree_from_the_mount(self):
        mp = self.mount(F.repo)
        out = F.ws.fresh("from-mount.img")
        src = os.path.join(self.snap_dir(mp, F.s1), "src", "text")
        res = E.run(["mke2fs", "-q", "-F", "-t", "ext4", "-d", src, out, "16M"], timeout=300)
        self.assertEqual(res.rc, 0, res.describe())
        res = E.run(["e2fsck", "-fn", out], timeout=300)
        self.assertEqual(res.rc, 0, res.describe())
        dev = self.losetup(out)
        inner = self.mountpoint()
        res = E.run(["mount", "-o", "ro", dev, inner], timeout=60)
        self.assertEqual(res.rc, 0, res.describe())
        got = E.scan_tree(inner)
        got.pop(b"lost+found", None)
        want = E.subscan(F.src_scan, b"text")
        diffs = E.compare_scans(want, got, fields=("type", "mode", "size", "sha256"), skip=(b".",))
        self.assertEqual(diffs, [], E.fmt_diffs(diffs))


class RepoChangeTest(MountBase):
    def small_repo(self, name):
        """A repository with snapshots A and B of p/: shared/s1.bin and shared2/s2.bin in both,
        old.bin only in A, new.bin only in B. The 1 MiB files of A share one data pack and A's
        trees share one tree pack, so forgetting A and pruning with --max-unused 0 repacks data
        and trees that B still uses."""
        base = F.ws.path(name + "-src")
        src = os.path.join(base, "p")
        rnd = random.Random(name)
        files = {"shared/s1.bin": rnd.randbytes(E.MiB), "shared2/s2.bin": rnd.randbytes(E.MiB),
                 "old.bin": rnd.randbytes(E.MiB)}
        for n, d in files.items():
            os.makedirs(os.path.dirname(os.path.join(src, n)), exist_ok=True)
            with open(os.path.join(src, n), "wb") as f:
                f.write(d)
        repo = E.ResticRepo(F.ws, name).init()
        a = repo.backup(["p"], HOST, ["a"], cwd=base)
        os.unlink(os.path.join(src, "old.bin"))
        files["new.bin"] = rnd.randbytes(E.MiB)
        with open(os.path.join(src, "new.bin"), "wb") as f:
            f.write(files["new.bin"])
        b = repo.backup(["p"], HOST, ["b"], cwd=base)
        return repo, a, b, files

    def test_prune_while_mounted(self):
        repo, a, b, files = self.small_repo("prune-repo")
        mp = self.mount(repo, "--cache-mem", "1", "--no-cache")
        p = os.path.join(self.snap_dir(mp, b), "p")
        s1 = repo.node(b, "/p/shared/s1.bin")["content"][0]
        s2 = repo.node(b, "/p/shared2/s2.bin")["content"][0]
        shared2_tree = repo.node(b, "/p/shared2")["subtree"]
        before = repo.blob_locations()
        fd = os.open(os.path.join(p, "shared", "s1.bin"), os.O_RDONLY | os.O_DIRECT)
        try:  # opened and read before the prune; read again after it
            self.assertEqual(read_direct(fd, 4096), files["shared/s1.bin"][:4096])
            repo.restic("forget", a)
            repo.restic("prune", "--max-unused", "0")
            repo.forget_memo()
            after = repo.blob_locations()
            for blob in (s1, s2, shared2_tree):
                self.assertNotEqual(before[blob]["pack"], after[blob]["pack"], "prune did not move " + blob)
                self.assertFalse(os.path.exists(repo.pack_path(before[blob]["pack"])))
            self.assertEqual(read_direct(fd, 2 * E.MiB), files["shared/s1.bin"])
        finally:
            os.close(fd)
        # A directory first listed after the prune (its tree moved) and files first read then.
        self.assertEqual(os.listdir(os.path.join(p, "shared2")), ["s2.bin"])
        for name in ("shared2/s2.bin", "new.bin"):
            fd = os.open(os.path.join(p, name), os.O_RDONLY | os.O_DIRECT)
            try:
                self.assertEqual(read_direct(fd, 2 * E.MiB), files[name], name)
            finally:
                os.close(fd)

    def test_new_snapshots_appear_without_remount(self):
        repo, a, b, files = self.small_repo("refresh-repo")
        mp = self.mount(repo, "--refresh", "0.5")
        self.assertEqual(len(os.listdir(os.path.join(mp, "ids"))), 2)
        base = F.ws.path("refresh-repo-src")
        with open(os.path.join(base, "p", "later.txt"), "wb") as f:
            f.write(b"written after the mount\n")
        c = repo.backup(["p"], HOST, ["c"], cwd=base)
        self.assertTrue(wait_until(lambda: short_id(c) in os.listdir(os.path.join(mp, "ids")), timeout=10),
                        "the new snapshot did not appear")
        with open(os.path.join(self.snap_dir(mp, c), "p", "later.txt"), "rb") as f:
            self.assertEqual(f.read(), b"written after the mount\n")
        self.assertTrue(wait_until(lambda: os.readlink(os.path.join(mp, "tags", "c", "latest")) != "",
                                   timeout=5))
        self.assertIn("c", os.listdir(os.path.join(mp, "tags")))

    def test_corrupted_pack_fails_only_the_affected_reads(self):
        repo = F.repo.copy("corrupt-repo")
        node = repo.node(F.s1, "/src/big.bin")
        locs = repo.blob_locations()
        victim = node["content"][0]
        loc = locs[victim]
        with open(repo.pack_path(loc["pack"]), "r+b") as f:
            f.seek(loc["offset"] + loc["length"] // 2)
            b = f.read(1)
            f.seek(loc["offset"] + loc["length"] // 2)
            f.write(bytes([b[0] ^ 0x40]))
        mp = self.mount(repo, "--no-cache")
        path = os.path.join(self.snap_dir(mp, F.s1), "src", "big.bin")
        with open(path, "rb", buffering=0) as f:
            with self.assertRaises(OSError) as cm:
                f.read()
            self.assertEqual(cm.exception.errno, errno.EIO)
            first = locs[victim].get("uncompressed_length") or locs[victim]["length"] - 32
            with open(os.path.join(F.src, "big.bin"), "rb") as src:
                want = src.read()
            second = (first + 4095) // 4096 * 4096  # whole pages: none may touch the first chunk
            self.assertGreater(len(want), second + 8192, "big.bin must have a second chunk")
            self.assertEqual(os.pread(f.fileno(), 8192, second), want[second:second + 8192])
        with open(os.path.join(self.snap_dir(mp, F.s1), "src", "hello.txt"), "rb") as f:
            self.assertEqual(f.read(), b"hello world\n")
        diffs = E.compare_scans(E.subscan(F.src_scan, b"text"),
                                E.scan_tree(os.path.join(self.snap_dir(mp, F.s1), "src", "text")))
        self.assertEqual(diffs, [], E.fmt_diffs(diffs))  # other files read fine

    def test_lock_is_held_while_mounted(self):
        repo = F.repo.copy("lock-repo")
        locks = os.path.join(repo.path, "locks")
        self.assertEqual(os.listdir(locks), [])
        mp = self.mount(repo)
        self.assertEqual(os.listdir(locks), [], "no lock without --lock")
        unmount(mp)
        self.mount(repo, "--lock", mp=mp)
        self.assertEqual(len(os.listdir(locks)), 1)
        res = repo.restic("prune", check=False)
        self.assertNotEqual(res.rc, 0, "prune must not run while the lock is held")
        self.assertIn(b"locked", res.err)
        unmount(mp)
        self.assertTrue(wait_until(lambda: os.listdir(locks) == [], timeout=10), "lock not removed")


class ProcessTest(MountBase):
    def test_kill_9_gives_enotconn_and_a_remount_works(self):
        mp = self.mount(F.repo)
        path = os.path.join(self.snap_dir(mp, F.s1), "src", "big.bin")
        inodes = {p: os.lstat(os.path.join(self.snap_dir(mp, F.s1), p)).st_ino
                  for p in ("src/big.bin", "src/links/hard_b", "src/deep/a", "src/special/fifo")}
        fd = os.open(path, os.O_RDONLY)
        try:
            pids = daemon_pids(mp)
            self.assertEqual(len(pids), 1, pids)
            os.kill(pids[0], signal.SIGKILL)
            wait_until(lambda: not os.path.exists("/proc/%d" % pids[0]), timeout=10)
            with self.assertRaises(OSError) as cm:
                os.pread(fd, 4096, 0)
            self.assertEqual(cm.exception.errno, errno.ENOTCONN)
        finally:
            os.close(fd)
        with self.assertRaises(OSError) as cm:
            os.stat(path)
        self.assertEqual(cm.exception.errno, errno.ENOTCONN)
        res = F.repo.coffer("mount", mp, "--daemon", timeout=TIMEOUT)
        self.assertEqual(res.rc, 1, res.describe())
        self.assertIn(b"fusermount3 -u", res.err)
        res = E.run(["fusermount3", "-u", mp], timeout=30)
        self.assertEqual(res.rc, 0, res.describe())
        self.mount(F.repo, mp=mp)
        self.assertEqual(sha256(path), F.src_scan[b"big.bin"]["sha256"])
        for p, ino in inodes.items():  # inode numbers survive a remount
            self.assertEqual(os.lstat(os.path.join(self.snap_dir(mp, F.s1), p)).st_ino, ino, p)

    def test_foreground_mount_ends_cleanly_on_sigterm(self):
        mp = self.mountpoint()
        env = dict(F.repo.env, COFFER_CACHE_DIR=F.ws.path("coffer-cache", "fg"))
        proc = subprocess.Popen([E.COFFER_BIN, "-r", F.repo.path, "--password-file", F.ws.pwfile,
                                 "mount", mp], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            self.assertTrue(wait_until(lambda: is_mounted(mp), timeout=30), "not mounted")
            with open(os.path.join(self.snap_dir(mp, F.s1), "src", "hello.txt"), "rb") as f:
                self.assertEqual(f.read(), b"hello world\n")
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        self.assertEqual(proc.returncode, 0, err)
        self.assertFalse(is_mounted(mp))
        E.check_sane(E.CmdResult(["coffer", "mount"], proc.returncode, out, err))

    def assert_password_hidden(self, pid: int) -> None:
        """coffer-mount `pid` has the password in neither argv nor environment, and has closed
        the pipe it arrived in."""
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            args = f.read().split(b"\0")
        with open("/proc/%d/environ" % pid, "rb") as f:
            environ = f.read()
        self.assertEqual(os.path.basename(args[0]), b"coffer-mount", args)
        self.assertFalse(E.PASSWORD.encode() in b"\0".join(args), "the password is in argv")
        self.assertFalse(E.PASSWORD.encode() in environ, "the password is in the environment")
        names = [kv.split(b"=", 1)[0] for kv in environ.split(b"\0") if kv]
        self.assertEqual([n for n in names if n.startswith((b"COFFER_PASSWORD", b"RESTIC_PASSWORD"))], [])
        fd = args[args.index(b"--password-fd") + 1].decode()
        try:
            self.assertFalse(os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("pipe:"),
                             "the password pipe is still open")
        except FileNotFoundError:
            pass

    def test_password_never_in_cmdline_or_environ(self):
        # The password comes from the environment of `coffer mount`: the case where an exec
        # that passed the environment on would leak it.
        env = {"COFFER_PASSWORD": E.PASSWORD, "RESTIC_PASSWORD": E.PASSWORD,
               "RESTIC_PASSWORD_COMMAND": "echo " + E.PASSWORD, "COFFER_REPOSITORY": F.repo.path}
        mp = self.mountpoint()
        res = F.repo.coffer("mount", mp, "--daemon", repo_args=False, env=env, timeout=TIMEOUT)
        self.assertEqual(res.rc, 0, res.describe())
        pids = daemon_pids(mp)
        self.assertEqual(len(pids), 1, pids)
        self.assert_password_hidden(pids[0])
        with open(os.path.join(self.snap_dir(mp, F.s1), "src", "hello.txt"), "rb") as f:
            self.assertEqual(f.read(), b"hello world\n")
        unmount(mp)
        # Foreground: `coffer mount` becomes coffer-mount (same pid), so SIGTERM reaches it.
        proc = subprocess.Popen([E.COFFER_BIN, "mount", mp], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(F.repo.env, COFFER_CACHE_DIR=F.ws.path("coffer-cache", "fg"), **env))
        try:
            self.assertTrue(wait_until(lambda: is_mounted(mp), timeout=30), "not mounted")
            self.assert_password_hidden(proc.pid)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
        self.assertEqual(proc.returncode, 0, err)
        E.check_sane(E.CmdResult(["coffer", "mount"], proc.returncode, out, err))

    def test_allow_other_keeps_snapshot_permissions(self):
        def as_nobody(*argv):
            return E.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv], timeout=60)

        mode = stat.S_IMODE(os.stat(F.ws.root).st_mode)
        os.chmod(F.ws.root, 0o711)  # let nobody reach the mount point
        self.cleanups_after.append(lambda: os.chmod(F.ws.root, mode))
        mp = self.mount(F.repo)
        src = os.path.join(self.snap_dir(mp, F.s1), "src")
        self.assertNotEqual(as_nobody("cat", os.path.join(src, "hello.txt")).rc, 0,
                            "other users must not enter without --allow-other")
        unmount(mp)
        self.mount(F.repo, "--allow-other", mp=mp)
        res = as_nobody("cat", os.path.join(src, "hello.txt"))
        self.assertEqual((res.rc, res.out), (0, b"hello world\n"), res.describe())
        res = as_nobody("cat", os.path.join(src, "modes", "private"))  # mode 0600, owned by root
        self.assertNotEqual(res.rc, 0, res.describe())
        self.assertIn(b"Permission denied", res.err)

    def test_mount_helper_and_fstab(self):
        helper_dir = F.ws.fresh("helper")
        os.makedirs(helper_dir)
        shutil.copy(HELPER, os.path.join(helper_dir, "mount.coffer"))
        os.symlink(E.COFFER_BIN, os.path.join(helper_dir, "coffer"))
        link = "/sbin/mount.coffer"
        if os.path.lexists(link):
            self.skipTest("%s exists already; not replacing it" % link)
        os.symlink(os.path.join(helper_dir, "mount.coffer"), link)
        self.cleanups_after.append(lambda: os.path.lexists(link) and os.unlink(link))
        env = dict(F.repo.env, XDG_CACHE_HOME=F.ws.path("helper-cache"))
        mp = self.mountpoint()
        res = E.run(["mount", "-t", "coffer", F.repo.path, mp, "-o",
                     "password-file=%s,allow_other,nofail,_netdev,x-foo=1,refresh=30" % F.ws.pwfile],
                    env=env, timeout=TIMEOUT)
        self.assertEqual(res.rc, 0, res.describe())
        self.assertTrue(is_mounted(mp))
        with open("/proc/self/mountinfo") as f:
            self.assertIn("allow_other", next(ln for ln in f if " %s " % mp in ln))
        self.assertEqual(sha256(os.path.join(self.snap_dir(mp, F.s1), "src", "big.bin")),
                         F.src_scan[b"big.bin"]["sha256"])
        res = E.run(["umount", mp], timeout=60)
        self.assertEqual(res.rc, 0, res.describe())
        self.assertFalse(is_mounted(mp))
        fstab = F.ws.write("fstab", "%s %s coffer password-file=%s,nofail,_netdev 0 0"
                           % (F.repo.path, mp, F.ws.pwfile))
        res = E.run(["mount", "-T", fstab, mp], env=env, timeout=TIMEOUT)
        self.assertEqual(res.rc, 0, res.describe())
        self.assertTrue(os.path.exists(os.path.join(self.snap_dir(mp, F.s1), "src", "hello.txt")))
        res = E.run(["mount", "-t", "coffer", F.repo.path, self.mountpoint(), "-o",
                     "password-file=%s" % F.ws.wrong_pwfile], env=env, timeout=TIMEOUT)
        self.assertEqual(res.rc, 12, res.describe())


class BadInputTest(MountBase):
    def assert_fails(self, res, rc, text):
        self.assertEqual(res.rc, rc, res.describe())
        self.assertIn(text, res.err)
        self.assertEqual(len([ln for ln in res.err.split(b"\n") if ln.strip()]), 1, res.describe())

    def test_missing_mount_point(self):
        res = F.repo.coffer("mount", F.ws.path("no-such-dir"), "--daemon")
        self.assert_fails(res, 1, b"does not exist")

    def test_busy_mount_point(self):
        mp = self.mount(F.repo)
        res = F.repo.coffer("mount", mp, "--daemon", timeout=TIMEOUT)
        self.assert_fails(res, 1, b"busy")
        self.assertEqual(mounts_under(mp), [mp])

    def test_wrong_password(self):
        for mode in (["--daemon"], []):
            mp = self.mountpoint()
            res = F.repo.coffer("mount", mp, *mode, pwfile=F.ws.wrong_pwfile, timeout=TIMEOUT)
            self.assert_fails(res, 12, b"")
            self.assertFalse(is_mounted(mp))

    def test_missing_repository(self):
        mp = self.mountpoint()
        missing = E.ResticRepo(F.ws, "does-not-exist")
        res = missing.coffer("mount", mp, "--daemon", timeout=TIMEOUT)
        self.assert_fails(res, 10, b"")
        self.assertFalse(is_mounted(mp))

    def test_bad_location_is_reported_before_the_password(self):
        res = E.run([E.COFFER_BIN, "-r", "s3:bucket/x", "mount", self.mountpoint(), "--daemon"],
                    env=F.repo.env, input=b"", timeout=TIMEOUT)
        E.check_sane(res)
        self.assert_fails(res, 1, b"unsupported repository location scheme")

    def test_missing_coffer_mount_binary(self):
        lonely = F.ws.fresh("lonely")
        os.makedirs(lonely)
        shutil.copy(E.COFFER_BIN, os.path.join(lonely, "coffer"))
        res = E.run([os.path.join(lonely, "coffer"), "-r", F.repo.path, "--password-file", F.ws.pwfile,
                     "mount", self.mountpoint(), "--daemon"], env=F.repo.env, timeout=TIMEOUT)
        E.check_sane(res)
        self.assert_fails(res, 1, os.fsencode(os.path.join(lonely, "coffer-mount")))

    def test_not_a_directory(self):
        res = F.repo.coffer("mount", F.ws.pwfile, "--daemon")
        self.assert_fails(res, 1, b"not a directory")


if __name__ == "__main__":
    E.run_tests()
