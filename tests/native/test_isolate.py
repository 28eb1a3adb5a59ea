"""Native code in a child process: Ctrl-C while a child starts is held until it has started, then raised."""
from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest

from tinyedge_tasks.native import isolate


def test_ctrl_c_while_a_child_starts_is_held_then_raised():
    """NumPy's threads are there to take the process-wide SIGINT (as TensorFlow's do in doit): the hold must
    work whichever thread the kernel hands it to."""
    np.ones((256, 256)) @ np.ones((256, 256))
    assert threading.active_count() >= 1
    inside = []
    with pytest.raises(KeyboardInterrupt):
        with isolate._ctrl_c_held():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(200):  # bytecodes and GIL switches in which an unheld Ctrl-C would be raised
                threading.Event().wait(0.001)
            inside.append("finished")
        threading.Event().wait(10)  # raised here at the latest: on leaving the hold
    assert inside == ["finished"]


def test_a_child_started_after_a_held_ctrl_c_still_runs():
    """The hold leaves nothing behind: the next call starts its child and returns its result."""
    assert isolate.call("os:getpid", what="a child") != os.getpid()
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])
