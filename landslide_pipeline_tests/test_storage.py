import contextlib
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from landslide_pipeline import storage
from landslide_pipeline.storage import TargetLockedError, atomic_directory, atomic_file, sweep_stale


def test_directory_replaced_only_on_success(tmp_path):
    target = tmp_path / "out"
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("first")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as staging:
            (staging / "a.txt").write_text("half")
            raise RuntimeError("boom")
    assert (target / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_file_written_atomically(tmp_path):
    target = tmp_path / "meta.json"
    with pytest.raises(RuntimeError):
        with atomic_file(target) as tmp:
            tmp.write_text("{")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_file(target) as tmp:
        assert tmp.suffix == ".json"
        tmp.write_text("{}")
    assert target.read_text() == "{}"


def test_survey_ids_cannot_escape_the_data_folder(tmp_path):
    from landslide_pipeline.layout import DataLayout, InvalidSurveyIdError

    layout = DataLayout(tmp_path)
    for bad in ["../etc", "a/b", "..", ".hidden", "a\\b", ""]:
        with pytest.raises(InvalidSurveyIdError):
            layout.raw_survey(bad)
    assert layout.raw_survey("mine_2024-05.v2") == tmp_path / "raw" / "mine_2024-05.v2"


# --- one writer per target, durability, permissions, leftovers of killed writers ---------------------------

FILES_PER_WRITE = 12

# A writer process: writes `rounds` complete versions of the target, each FILES_PER_WRITE files holding one token,
# and fails if the other writer is writing at the same time (the `writing` marker exists); with "renames", swaps
# them in as on a file system without an atomic exchange.
WRITER = """
import os, sys, time
from pathlib import Path
from landslide_pipeline import storage
from landslide_pipeline.storage import atomic_directory
target, writer, rounds, files = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if sys.argv[5] == "renames":
    storage._exchange = lambda a, b: False
for n in range(rounds):
    with atomic_directory(target) as staging:
        os.close(os.open(target.parent / "writing", os.O_CREAT | os.O_EXCL))
        for i in range(files):
            (staging / f"{i}.txt").write_text(f"{writer}-{n}")
            time.sleep(0.0005)
        os.unlink(target.parent / "writing")
"""

# A writer that stages part of its output, says where, then waits to be killed.
KILLED_WRITER = """
import sys, time
from pathlib import Path
from landslide_pipeline.storage import atomic_directory
with atomic_directory(Path(sys.argv[1])) as staging:
    (staging / "a.txt").write_text("half")
    print(staging, flush=True)
    time.sleep(60)
"""


def python(code: str, *args: object, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=Path(__file__).parents[1], **kwargs)


def tokens(target: Path) -> set[str]:
    """The tokens in the files of one version of ``target`` (files removed meanwhile are skipped)."""
    found = set()
    folder = os.open(target, os.O_RDONLY)  # one version: the path may name the next one while we read
    try:
        for name in os.listdir(folder):
            try:
                with open(os.open(name, os.O_RDONLY, dir_fd=folder)) as file:
                    found.add(file.read())
            except FileNotFoundError:  # the old version being removed after a swap
                pass
    finally:
        os.close(folder)
    return found


@pytest.mark.parametrize("swap", ["exchange", "renames"])
def test_concurrent_writers_of_one_target_never_mix_fail_or_leave_it_missing(tmp_path, swap):
    target = tmp_path / "out"
    with atomic_directory(target) as staging:
        for i in range(FILES_PER_WRITE):
            (staging / f"{i}.txt").write_text("first-0")
    writers = [python(WRITER, target, name, 25, FILES_PER_WRITE, swap, stderr=subprocess.PIPE) for name in "ab"]
    listings = 0
    while any(w.poll() is None for w in writers):
        if swap == "exchange":
            assert target.is_dir(), "a reader found the target missing"
        with contextlib.suppress(FileNotFoundError):  # between the two renames
            assert len(tokens(target)) <= 1, "a reader found two writers' files in one target"
        listings += 1
    errors = [w.stderr.read().decode() for w in writers]
    assert [w.returncode for w in writers] == [0, 0], errors
    assert listings > 10
    assert sorted(os.listdir(target)) == sorted(f"{i}.txt" for i in range(FILES_PER_WRITE))
    assert tokens(target) in ({"a-24"}, {"b-24"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging, trash or lock file left


@pytest.mark.parametrize("cleanup", ["next write", "sweep_stale"])
def test_a_killed_writer_leaves_the_target_and_its_leftovers_are_swept(tmp_path, cleanup):
    target = tmp_path / "out"
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("first")
    child = python(KILLED_WRITER, target, stdout=subprocess.PIPE, text=True)
    try:
        leftover = Path(child.stdout.readline().strip())
        assert leftover.parent == tmp_path and (leftover / "a.txt").read_text() == "half"
        with pytest.raises(TargetLockedError, match=f"{target} is being written by another run"):
            with atomic_directory(target, timeout=0.2):
                pass
        assert sweep_stale(tmp_path) == [] and leftover.is_dir()  # a live writer's staging folder stays
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert (target / "a.txt").read_text() == "first" and leftover.is_dir()
    if cleanup == "sweep_stale":
        assert sweep_stale(tmp_path) == [leftover]
    else:
        with atomic_directory(target, timeout=5) as staging:
            (staging / "a.txt").write_text("second")
        assert (target / "a.txt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_writer_killed_between_the_two_renames_gets_its_old_target_back(tmp_path):
    trash = tmp_path / ".out.old-abc123_x"
    (trash / "out").mkdir(parents=True)
    (trash / "out" / "a.txt").write_text("old")
    (tmp_path / ".out.tmp-def456_y").mkdir()
    (tmp_path / ".out.lock").touch()  # left by the killed writer
    (tmp_path / ".keep.tmp").touch()  # not a leftover
    removed = sweep_stale(tmp_path)
    assert sorted(p.name for p in removed) == [".out.old-abc123_x", ".out.tmp-def456_y"]
    assert (tmp_path / "out" / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".keep.tmp", "out"]


def test_without_an_atomic_exchange_a_failed_swap_puts_the_old_target_back(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "_exchange", lambda a, b: False)  # e.g. NFS: two renames
    target = tmp_path / "out"
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("first")
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("second")
    assert (target / "a.txt").read_text() == "second"
    rename = os.rename

    def failing_rename(src, dst):
        if Path(dst) == target and ".tmp-" in Path(src).name:
            raise OSError(5, "I/O error")
        rename(src, dst)

    monkeypatch.setattr(storage.os, "rename", failing_rename)
    with pytest.raises(OSError, match="I/O error"):
        with atomic_directory(target) as staging:
            (staging / "a.txt").write_text("third")
    assert (target / "a.txt").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_file_target_is_locked_too(tmp_path):
    target = tmp_path / "meta.json"
    with storage.target_lock(target):
        with pytest.raises(TargetLockedError, match="meta.json is being written by another run"):
            with atomic_file(target, timeout=0.1):
                pass
    with atomic_file(target, timeout=0) as tmp:
        tmp.write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]


@pytest.mark.parametrize(("umask", "folder_mode", "file_mode"), [(0o022, 0o755, 0o644), (0o027, 0o750, 0o640)])
def test_outputs_get_the_permissions_of_the_umask(tmp_path, umask, folder_mode, file_mode):
    previous = os.umask(umask)
    try:
        assert storage.current_umask() == umask
        with atomic_directory(tmp_path / "out") as staging:
            (staging / "sub").mkdir()
            (staging / "sub" / "a.txt").write_text("a")
        with atomic_file(tmp_path / "meta.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(previous)
    mode = lambda path: stat.S_IMODE(path.stat().st_mode)  # noqa: E731
    assert [mode(tmp_path / "out"), mode(tmp_path / "out" / "sub")] == [folder_mode, folder_mode]
    assert [mode(tmp_path / "out" / "sub" / "a.txt"), mode(tmp_path / "meta.json")] == [file_mode, file_mode]


def test_staged_files_and_folders_are_fsynced_before_the_swap(tmp_path, monkeypatch):
    synced: list[str] = []
    fsync = storage._fsync

    def recording_fsync(path):
        synced.append(os.path.basename(path))
        fsync(path)

    monkeypatch.setattr(storage, "_fsync", recording_fsync)
    with atomic_directory(tmp_path / "out") as staging:
        (staging / "sub").mkdir()
        for i in range(5):
            (staging / "sub" / f"{i}.txt").write_text("a")
        os.symlink("sub/0.txt", staging / "link")
        os.mkfifo(staging / "fifo")  # opening it would block: not fsynced
    assert sorted(synced[:5]) == [f"{i}.txt" for i in range(5)]
    assert synced[5:7] == ["sub", synced[6]] and synced[6].startswith(".out.tmp-")  # deepest folder first
    assert synced[7:] == [tmp_path.name]  # the parent, after the rename
