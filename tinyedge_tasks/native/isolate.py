"""Run native code (TFLM, a compiled model, a simulator) in a child process, so that an abort, a segfault or a
hang becomes a TinyedgeError naming what was being done, and never a dead doit.

Children come from multiprocessing's fork server: a clean interpreter started once (fork+exec, so TensorFlow's
threads in doit are never forked), which imports the `preload` modules once and then forks one child per call
in ~15 ms. A plain fork of doit would be faster but is unsafe once TensorFlow has started its threads; spawn or
a `python -c` subprocess pay the interpreter start and numpy/TFLM imports (~200 ms) on every call.

In the child, `report(line)` sends a progress line the parent prints as it comes, and `step(text, value)`
records what is being tried: a crash message quotes the last step, and `NativeCrash.value` carries it.
"""
from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import pickle
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection, wait
from typing import Any

from ..errors import TinyedgeError

TAIL_LINES = 12  # lines of the child's stdout/stderr quoted in a crash message

_context = multiprocessing.get_context("forkserver")
_channel: Connection | None = None  # set in the child: the pipe back to the parent
_log_path = ""  # set in the child: where its stdout and stderr go


class NativeCrash(TinyedgeError):
    """The child died by a signal, exited without a result or timed out; what it last said and tried."""

    def __init__(self, message: str, *, signal_name: str | None, lines: list[str], step: str | None,
                 value: Any):
        super().__init__(message)
        self.signal_name, self.lines, self.step, self.value = signal_name, lines, step, value

    def __reduce__(self):  # keyword-only fields: pickled by hand, so a child's NativeCrash comes back as one
        return _rebuilt_crash, (str(self), self.signal_name, self.lines, self.step, self.value)


def _rebuilt_crash(message: str, signal_name: str | None, lines: list[str], step: str | None, value: Any):
    return NativeCrash(message, signal_name=signal_name, lines=lines, step=step, value=value)


class ChildTraceback(Exception):
    """The child's traceback, chained to an exception re-raised in the parent."""


def preload(modules: Iterable[str]) -> None:
    """Modules the fork server imports once (numpy, the TFLM runtime); effective before the first call."""
    _context.set_forkserver_preload(["__main__", *modules])


def report(line: str) -> None:
    """Child side: a progress line for the parent's stdout (printed directly when not in a child)."""
    if _channel is None:
        print(line, flush=True)
    else:
        _channel.send(("progress", line))


def step(text: str, value: Any = None) -> None:
    """Child side: what is tried now; quoted if the child dies before the next step."""
    if _channel is not None:
        _channel.send(("step", text, value))


@contextlib.contextmanager
def said():
    """Child side: yields a list that holds the lines written to stdout/stderr in the block on exit; unlike
    capturing them away, they stay in the child's output, so a crash in the block still quotes them."""
    lines: list[str] = []
    start = os.fstat(2).st_size
    try:
        yield lines
    finally:
        with open(_log_path, "rb") as log:
            log.seek(start)
            lines += [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]


def call(target: str, *args: Any, what: str, timeout: float = 600.0,
         progress: Callable[[str], None] | None = None, **kwargs: Any) -> Any:
    """Run `target` ("package.module:function") with picklable arguments in a child; return its result.

    An exception in the child is raised again here (a TinyedgeError as a TinyedgeError with the same message);
    a signal, an exit without a result or the timeout raises NativeCrash naming `what`."""
    reader, writer = _context.Pipe(duplex=False)
    with tempfile.NamedTemporaryFile(prefix="tinyedge-child-", suffix=".log") as log:
        child = _context.Process(target=_child_main, args=(writer, log.name, target, args, kwargs),
                                 name=f"tinyedge: {what}", daemon=True)
        try:
            with _ctrl_c_held():
                child.start()
            writer.close()
            outcome, last = _collect(reader, child, time.monotonic() + timeout, progress or report)
        finally:
            if child.is_alive():
                child.kill()
            if child.pid is not None:
                child.join()
            reader.close()
        with open(log.name, errors="replace") as said_lines:
            lines = [line.rstrip() for line in said_lines if line.strip()][-TAIL_LINES:]
    if outcome and outcome[0] == "ok":
        return outcome[1]
    if outcome and outcome[0] == "raised":
        _, exception, tb = outcome
        raise exception from ChildTraceback(tb)
    raise _crash(what, child.exitcode, timeout if outcome == "timeout" else None, lines, last)


@contextlib.contextmanager
def _ctrl_c_held():
    """Ctrl-C waits until the child has started: a child fed half its arguments would print a pickle traceback
    beside the one-line message. Python runs its SIGINT handler in the main thread whichever thread the kernel
    hands the signal to (NumPy's and TensorFlow's threads take a process-wide SIGINT that the main thread blocks),
    so blocking is not holding: the main thread's handler is swapped for one that remembers, and called after.
    SIGINT is blocked as well, so that the fork server, when it starts here, and every child it forks inherit it
    blocked until the child ignores it (stopping children is the parent's job). The resource tracker, which
    unblocks SIGINT as it starts, is started before."""
    resource_tracker.ensure_running()
    held: list = []
    in_main = threading.current_thread() is threading.main_thread()  # elsewhere no KeyboardInterrupt is raised
    handler = signal.getsignal(signal.SIGINT) if in_main else None
    if callable(handler):
        signal.signal(signal.SIGINT, lambda signum, frame: held.append(frame))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a SIGINT pending on this thread reaches the recorder
        if callable(handler):
            signal.signal(signal.SIGINT, handler)
    if held:
        handler(signal.SIGINT, held[0])


def _collect(reader: Connection, child, deadline: float, progress: Callable[[str], None]):
    """Messages until the child's result or its end: (outcome or None or "timeout", last step)."""
    last = None
    while True:
        left = deadline - time.monotonic()
        ready = wait([reader, child.sentinel], timeout=max(0.0, left))
        if not ready or left < 0:  # a child that keeps talking cannot outlive its deadline
            return "timeout", last
        if reader not in ready and not reader.poll():  # ended and nothing left to read
            return None, last
        try:
            message = reader.recv()
        except EOFError:
            return None, last
        if message[0] == "progress":
            progress(message[1])
        elif message[0] == "step":
            last = message[1:]
        else:
            return message, last


def _crash(what: str, exitcode: int | None, timeout: float | None, lines: list[str], last) -> NativeCrash:
    if timeout is not None:
        how, name = f"did not finish in {timeout:g} s and was stopped", None
    elif exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        how = f"crashed with {name} (signal {-exitcode}) in native code"
    else:
        how, name = f"exited with status {exitcode} without a result", None
    printed = f"; its last output: {' | '.join(lines)}" if lines else "; it printed nothing"
    doing = f"; it was {last[0]}" if last else ""
    return NativeCrash(f"{what}: the child process {how}{doing}{printed}", signal_name=name, lines=lines,
                       step=last and last[0], value=last and last[1])


def _child_main(channel: Connection, log_path: str, target: str, args: tuple, kwargs: dict) -> None:
    """Child: stdout and stderr (file descriptors, so C++ output too) go to the log; run; send the outcome."""
    global _channel, _log_path
    _channel, _log_path = channel, log_path
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it kills the child
    try:
        log = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError:  # the parent was interrupted while this child started
        os._exit(1)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout.reconfigure(line_buffering=True)  # Python's own lines reach the log before a native crash
    sys.stderr.reconfigure(line_buffering=True)
    try:
        module, name = target.split(":")
        result = ("ok", getattr(importlib.import_module(module), name)(*args, **kwargs))
    except Exception as exc:  # noqa: BLE001 - every error goes back to the parent as itself (exit stays exit)
        result = ("raised", _portable(exc), traceback.format_exc())
    channel.send(result)


def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it survives pickling; else a RuntimeError with its type and message."""
    try:
        return pickle.loads(pickle.dumps(exc))
    except Exception:  # noqa: BLE001 - any failure to pickle or rebuild
        return RuntimeError(f"{type(exc).__name__}: {exc}")
