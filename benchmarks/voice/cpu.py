"""CPU time and memory of a server process and its worker processes, from /proc (Linux)."""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    """``/proc/<pid>/stat``'s fields after the command name (its parentheses may hold spaces)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_cpu_secs(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads); None when it is gone."""
    try:
        fields = _stat(pid)
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def children_cpu_secs(pid: int) -> dict[int, float]:
    """CPU seconds of each running child of ``pid`` (the recogniser and synthesiser worker processes)."""
    found: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / TICK
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and all its running descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(_stat(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, []))
    return out


def tree_cpu_by_command(pid: int, needle: str) -> float:
    """CPU seconds of the processes under ``pid`` whose command line holds ``needle`` (e.g. one worker kind)."""
    cpu = 0.0
    for proc in tree(pid):
        try:
            if needle.encode() in Path(f"/proc/{proc}/cmdline").read_bytes():
                fields = _stat(proc)
                cpu += (int(fields[11]) + int(fields[12])) / TICK
        except (OSError, IndexError, ValueError):
            continue
    return cpu


def tree_usage(pid: int) -> tuple[float, float]:
    """CPU seconds and resident memory (MiB) of ``pid`` and its running descendants."""
    cpu, rss = 0.0, 0.0
    for proc in tree(pid):
        try:
            fields = _stat(proc)
            cpu += (int(fields[11]) + int(fields[12])) / TICK
            status = Path(f"/proc/{proc}/status").read_text()
            rss += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")) / 1024
        except (OSError, StopIteration, IndexError, ValueError):
            continue
    return cpu, rss
