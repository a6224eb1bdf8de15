"""The benchmarks' CPU meter (``benchmarks.voice.cpu``) on real processes: a parent and the child it starts."""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks.voice.cpu import children_cpu_secs, process_cpu_secs, tree, tree_cpu_by_command, tree_usage

# A parent that starts a child burning ~0.4 s of CPU, waits for it to finish its work, then waits to be told to end.
# The child's marker is split in the parent's source, so only the child's command line holds it.
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import sys, time\\nt = time.process_time()\\n"
    "while time.process_time() - t < 0.4: pass\\nprint('burnt', flush=True)\\nsys.stdin.read()",
    "cpu-meter-" + "child"],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
print(child.pid, flush=True)
print(child.stdout.readline().strip(), flush=True)
sys.stdin.read()
child.stdin.close()
child.wait()
"""


def test_the_meter_counts_a_process_tree_and_picks_a_worker_out_by_its_command_line() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None and parent.stdin is not None
    try:
        child = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "burnt"
        assert tree(parent.pid) == [parent.pid, child]
        assert set(children_cpu_secs(parent.pid)) == {child}
        child_cpu = process_cpu_secs(child)
        assert child_cpu is not None and child_cpu >= 0.4
        total, rss = tree_usage(parent.pid)
        assert total >= child_cpu and rss > 0
        assert tree_cpu_by_command(parent.pid, "cpu-meter-child") == child_cpu
        assert tree_cpu_by_command(parent.pid, "no-such-worker") == 0.0
    finally:
        parent.stdin.close()
        parent.wait(timeout=30)
    assert process_cpu_secs(parent.pid) is None  # gone
    assert tree_usage(os.getpid())[0] > 0
