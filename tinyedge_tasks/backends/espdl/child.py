"""esp-ppq work in a child process: torch and esp-ppq are native code that can abort, and the .espdl bytes are
identical across runs only with a fixed PYTHONHASHSEED (esp-ppq walks str-keyed sets), which must be set before
the interpreter starts: a forked child keeps its parent's seed, so the child is a fresh `python -m`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from ...errors import TinyedgeError

HASH_SEED = "0"
JOB_MODULE = "tinyedge_tasks.backends.espdl.ppq"


def error_path(job_path: Path) -> Path:
    """Where the child writes the message of a TinyedgeError it raised."""
    return job_path.with_suffix(".error")


def run_child(job: dict, job_path: Path, what: str, timeout: float = 3600) -> None:
    """`python -m ...ppq job.json` with PYTHONHASHSEED fixed; a TinyedgeError raised in the child is raised here,
    a crash becomes a message naming `what` (the stage and file), the signal or exit code and the last lines."""
    job_path.parent.mkdir(parents=True, exist_ok=True)
    job_path.write_text(json.dumps(job, indent=1))
    error_path(job_path).unlink(missing_ok=True)
    env = {**os.environ, "PYTHONHASHSEED": HASH_SEED, "PYTHONPATH": os.pathsep.join(sys.path),
           "CUDA_VISIBLE_DEVICES": ""}
    try:
        done = subprocess.run([sys.executable, "-m", JOB_MODULE, str(job_path)], env=env, capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TinyedgeError(f"{what}: esp-ppq took longer than {timeout:.0f} s; lower compression.calibrate.samples "
                            "or use a smaller test split") from None
    if done.returncode == 0:
        return
    if error_path(job_path).is_file():
        raise TinyedgeError(error_path(job_path).read_text())
    lines = (done.stderr or done.stdout).strip().splitlines()
    if done.returncode < 0:
        how = f"was killed by {signal.Signals(-done.returncode).name}"
    else:
        how = f"failed with exit code {done.returncode}"
    tail = "\n    ".join(lines[-12:]) or "(no output)"
    raise TinyedgeError(f"{what}: the esp-ppq child process {how}; its last lines:\n    {tail}\n"
                        f"rerun it alone with `PYTHONHASHSEED={HASH_SEED} python -m {JOB_MODULE} {job_path}`")
