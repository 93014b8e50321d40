"""Clean shutdown of `kpiwatch run`: a run stopped by SIGTERM (a scheduler, `kill`) or SIGINT
(Ctrl-C) leaves no child process behind — no `dbt build` still writing to the warehouse after
the run has let go of it.

SIGTERM is the interrupt Dagster already handles (SIGINT: the step in progress is interrupted
and dagster-dbt forwards it to dbt): Dagster maps it so while the graph runs, the handler here
does around it. Whatever child is still alive when the run returns is terminated, then killed."""
from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Iterator


def descendants(pid: int) -> list[int]:
    """Process ids of every descendant of `pid` (children first), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended while we looked
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(text.split(" ", 1)[0]))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has ended; its parent reaps it


def stop_children(grace_seconds: float = 5.0) -> list[int]:
    """Terminate every descendant of this process, killing what is still alive after
    `grace_seconds`; returns the ids that were stopped."""
    pids = [p for p in descendants(os.getpid()) if p != _resource_tracker()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    ends = time.monotonic() + grace_seconds
    while time.monotonic() < ends and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return pids


def _resource_tracker() -> int | None:
    """multiprocessing's resource tracker: it ends with this process and, stopped before it,
    prints a traceback for what it was still tracking."""
    try:
        from multiprocessing import resource_tracker

        return resource_tracker._resource_tracker._pid
    except (ImportError, AttributeError):
        return None


@contextlib.contextmanager
def stoppable() -> Iterator[list[int]]:
    """While the block runs, SIGTERM interrupts it as SIGINT does (the signals received are
    appended to the yielded list); when it ends, however it ends, no child process is left."""
    received: list[int] = []
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, _frame):
        received.append(signum)
        os.kill(os.getpid(), signal.SIGINT)  # Dagster's own interrupt: the step stops, dbt is told

    signal.signal(signal.SIGTERM, on_term)
    try:
        yield received
    except KeyboardInterrupt:
        if not received:
            received.append(signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_children()
