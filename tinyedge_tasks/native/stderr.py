"""Native code (TFLM, the TFLite converter, TensorFlow) writes to file descriptor 2 directly: collect it."""
from __future__ import annotations

import contextlib
import os
import tempfile


@contextlib.contextmanager
def captured_stderr():
    """Collect what C/C++ code writes to fd 2; yields a list that holds those lines on exit.

    TFLM prints every failed allocation (the arena search fails on purpose many times) and TensorFlow its
    start-up and converter chatter; a caller that fails quotes the lines, one that succeeds drops them."""
    lines: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            lines += [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
