"""Background processes of the stack: started detached with a log each, waited for, stopped by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class StackError(RuntimeError):
    """The stack could not start, or one of its services failed; the message says which and why."""


@dataclass(frozen=True)
class Service:
    """One long-running process of the stack.

    Attributes:
        name: Its name in ``stack.json``, its log ``logs/<name>.log`` and messages.
        argv: The command.
        env: Its whole environment.
        ready: Returns True once the service answers; called until it does.
    """

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    ready: Callable[[], bool]

    def start(self, logs: Path, cwd: Path) -> int:
        """Starts the process in a session of its own (so it outlives the command and its whole
        group stops together) and returns its PID."""
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{self.name}.log", "ab") as log:
            process = subprocess.Popen(list(self.argv), env=dict(self.env), cwd=cwd, stdin=subprocess.DEVNULL,
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return process.pid

    def wait_ready(self, pid: int, logs: Path, timeout: float) -> None:
        """Waits until ``ready`` answers.

        Raises:
            StackError: the process exited, or did not answer in ``timeout`` seconds (with the end of its log).
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not is_running(pid):
                raise StackError(f"{self.name} exited at start; its log ends:\n{log_tail(logs / f'{self.name}.log')}")
            if self.ready():
                return
            time.sleep(0.5)
        raise StackError(f"{self.name} did not answer within {timeout:g} s; its log ends:\n"
                         f"{log_tail(logs / f'{self.name}.log')}")


def is_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie child of ours counts as gone)."""
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    except ChildProcessError:
        pass  # not our child: ask the kernel below
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_alive(pgid: int) -> bool:
    """Whether any process of the process group ``pgid`` lives (reaping our own exited leader)."""
    is_running(pgid)  # reaps the leader if it is our exited child
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_process_groups(pgids: Sequence[int], timeout: float = 20.0) -> list[int]:
    """Stops every process of the sessions ``pgids`` lead, all at once (SIGTERM, then SIGKILL
    after ``timeout`` seconds), children that outlived their leader included.

    Returns:
        The groups that were running.
    """
    running = [pgid for pgid in pgids if group_alive(pgid)]
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        for pgid in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and any(group_alive(pgid) for pgid in running):
            time.sleep(0.2)
        if not any(group_alive(pgid) for pgid in running):
            break
    return running


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log, or a note that there is none."""
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
