"""doit validate: the model checked and timed where it runs. The test split's int8 inputs, exactly as calibrate
quantized them, go to the board over the validation protocol (tinyedge_tasks/device); its outputs must equal
calibrate's byte for byte, and its cycle counter times each inference (and each layer, where the runtime can).

The port is resolved as `doit flash` does it (a pyserial URL works too); on an emulated board (the QEMU board files)
the toolchain starts the emulator with its UART on a loopback socket and the same socket:// path is used; for
firmware.backend micropython, `--port unix` runs the package in the MicroPython unix port on a pseudo-terminal. The
firmware must carry the project's model (INFO's model_xxh3 = codegen/project.json's). Writes
build/validate/validate.json (also when outputs differ; then it exits non-zero naming the first difference);
a fault (no device, no answer, a dropped link, a corrupt frame, Ctrl-C) is one line and leaves build/ as it was.
"""
from __future__ import annotations

import contextlib
import time
from datetime import datetime, timezone

from ..artifacts import CALIBRATED_OUTPUTS, DATA, Calibration, Validation
from ..device import frames
from ..engine.cache import write_atomic
from ..errors import TinyedgeError
from .flash import project_index, serial_port

FLOAT_ULPS = 16   # float outputs agree within this many float32 steps (see _compare)


def _reference(project, samples: int):
    """(int8 inputs (N, bytes) quantized by calibrate's code, labels, calibrate's int8 outputs, its record)."""
    import numpy as np
    from ..preprocess import quantize, transform_of
    calibration = Calibration.from_json(project.artifact(Calibration.ARTIFACT).read_text())
    outputs = project.artifact(CALIBRATED_OUTPUTS)
    if not outputs.is_file():
        raise TinyedgeError(f"{project.relative(outputs)} is missing: it "
                            "holds what the board's outputs must be: run `doit` (its calibrate writes it), then "
                            "validate again")
    with np.load(project.artifact(DATA)) as data:
        x_test, y_test = data["x_test"], data["y_test"]
    inputs = quantize(x_test, calibration.input, transform_of(project.manifest.get("dataset.input")))
    count = len(inputs) if samples <= 0 else min(samples, len(inputs))
    return (inputs.reshape(len(inputs), -1)[:count], y_test[:count], np.load(outputs)[:count], calibration)


@contextlib.contextmanager
def _port(project, index, toolchain, options):
    """The URL to talk to: the emulator's on an emulated board (or on --port EMULATED_PORT, the MicroPython unix
    port's pseudo-terminal), else the resolved serial port."""
    port = options.get("port")
    emulated = bool(port) and port == getattr(toolchain, "EMULATED_PORT", None)
    if not emulated and (getattr(toolchain, "NEEDS_PORT", True) or port):
        yield serial_port(project, options)
        return
    firmware = project.artifact(index.ARTIFACT).parent / index.folder
    print(f"  starting {toolchain.EMULATOR.format(board=index.board)}", flush=True)
    with toolchain.emulate(firmware, project.state) as url:
        yield url


def _check(info: dict, index, inputs, port: str) -> None:
    """The firmware carries this project's model, with this input size."""
    if info["model_xxh3"] != index.model_xxh3:
        raise TinyedgeError(f"the board on {port} carries another model (model_xxh3 {info['model_xxh3']}) than this "
                            f"project's (model_xxh3 {index.model_xxh3}, build/codegen/project.json): flash this "
                            "project's firmware (`doit flash`) and run validate again")
    if info["input"]["bytes"] != inputs[0].nbytes:
        raise TinyedgeError(f"the board on {port} takes {info['input']['bytes']} input bytes, the project "
                            f"{inputs[0].nbytes}: flash this project's firmware (`doit flash`)")


def _stream(link, inputs, reference):
    """One INFER per sample, with progress; the results, and a dropped link named by the sample it reached."""
    from ..device.link import LinkDropped
    results, differing, start = [], 0, time.monotonic()
    step = max(1, len(inputs) // 10)
    for i, sample in enumerate(inputs):
        try:
            result = link.infer(i, sample.tobytes())
        except LinkDropped as exc:
            raise TinyedgeError(f"{exc} at sample {i} of {len(inputs)} ({i} validated); nothing was written: "
                                "check the cable and the board's power, then run validate again") from None
        differing += not _agrees(result.output, reference[i])
        results.append(result)
        if (i + 1) % step == 0 or i + 1 == len(inputs):
            rate = (i + 1) / max(time.monotonic() - start, 1e-9)
            print(f"  validate: {i + 1}/{len(inputs)} samples, {differing} differing, {rate:.1f} samples/s",
                  flush=True)
    return results, time.monotonic() - start


def _spread(values, per_second: float) -> dict:
    import numpy as np
    stats = {"min": float(np.min(values)), "median": float(np.median(values)),
             "p95": float(np.percentile(values, 95)), "max": float(np.max(values))}
    return {"cycles": {k: round(v) for k, v in stats.items()},
            "ms": {k: round(v / per_second * 1e3, 4) for k, v in stats.items()}}


def _ulps(a, b):
    """Distance in float32 steps (units in the last place) between a and b: 0 for the same value, NaN with NaN."""
    import numpy as np

    def ordered(x):   # float32 bits -> integers in the order of the values they encode
        bits = x.view(np.int32).astype(np.int64)
        return np.where(bits < 0, np.int64(-2 ** 31) - bits, bits)
    both_nan = np.isnan(a) & np.isnan(b)
    distance = np.abs(ordered(a) - ordered(b))
    return np.where(both_nan, 0, np.where(np.isnan(a) | np.isnan(b), np.iinfo(np.int64).max, distance))


def _compare(outputs, reference):
    """(identical rows, agreeing rows, agreeing values, the rule): integers agree bit for bit; float32 outputs (an
    ESP-DL Softmax) within FLOAT_ULPS steps of calibrate's, since the board's expf may differ from the correctly
    rounded one by an ulp, while one step of an integer logit moves a probability by thousands of them."""
    import numpy as np
    identical = np.all(outputs.view(np.uint8).reshape(len(outputs), -1) ==
                       reference.view(np.uint8).reshape(len(reference), -1), axis=1)
    if reference.dtype.kind != "f":
        return identical, identical, outputs == reference, "bit for bit"
    close = _ulps(outputs, reference) <= FLOAT_ULPS
    return identical, np.all(close, axis=1), close, f"float32 within {FLOAT_ULPS} ulps"


def _agrees(output: bytes, expected) -> bool:
    """One sample's output bytes against calibrate's row, by _compare's rule."""
    import numpy as np
    if len(output) != expected.nbytes:
        return False
    return bool(_compare(np.frombuffer(output, expected.dtype)[None], expected[None])[1][0])


def _record(info, index, port, results, seconds, reference, labels, calibration) -> dict:
    """validate.json: what the board computed against calibrate, and how long it took."""
    import numpy as np
    outputs = np.stack([np.frombuffer(r.output, dtype=reference.dtype) if len(r.output) == reference[0].nbytes
                        else np.zeros(0, reference.dtype) for r in results])
    if outputs.shape != reference.shape:
        raise TinyedgeError(f"the board on {port} sent {len(results[0].output)} output bytes per sample, calibrate "
                            f"has {reference[0].nbytes} ({reference.shape[1]} {reference.dtype}): flash this "
                            "project's firmware (`doit flash`)")
    identical, same, close, rule = _compare(outputs, reference)
    first = int(np.argmin(same)) if not same.all() else None
    wide = np.float64 if reference.dtype.kind == "f" else np.int64
    cycles = np.array([r.cycles for r in results], dtype=np.float64)
    layers = np.array([r.layer_cycles for r in results], dtype=np.float64)
    framing = frames.HEADER.size + 4   # sync, version, type, length; CRC-32
    sent = framing + 4 + int(info["input"]["bytes"])                       # INFER: index, input
    got = framing + 16 + 8 * layers.shape[1] + reference[0].nbytes         # RESULT: index, cycles, L, layers, output
    return {
        "board": index.board, "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "port": port,
        "firmware": {key: info[key] for key in ("model_xxh3", "backend", "board", "cycle_counter", "clock_hz",
                                                "cycles_per_second")},
        "samples": len(results), "comparison": rule, "identical_outputs": int(identical.sum()),
        "agreeing_outputs": int(same.sum()),
        "largest_difference": np.nanmax(np.abs(outputs.astype(wide) - reference.astype(wide)), initial=0).item(),
        "first_difference": None if first is None else {
            "sample": first, "output": int(np.argmin(close[first]))},
        "argmax_agreement": float(np.mean(np.argmax(outputs, 1) == np.argmax(reference, 1))),
        "accuracy": float(np.mean(np.argmax(outputs, 1) == labels)),
        "calibrate_accuracy": float(np.mean(np.argmax(reference, 1) == labels)),
        "calibrate_runtime": calibration.runtime or "TFLM runtime",
        "latency": _spread(cycles, info["cycles_per_second"]),
        "layers": [{"op": op, "cycles": round(float(np.median(layers[:, i])))}
                   for i, op in enumerate(info["layers"][:layers.shape[1]])],
        "arena_bytes": info["arena_bytes"], "arena_used": info["arena_used"],
        "link": {"seconds": round(seconds, 3), "samples_per_second": round(len(results) / seconds, 2),
                 "bytes_to_device_per_sample": sent, "bytes_from_device_per_sample": got},
    }


def _write(project, record: dict) -> None:
    """build/validate/validate.json, placed whole (a temporary file renamed)."""
    write_atomic(project.artifact(Validation.ARTIFACT), Validation(record).to_json().encode())


def run(project, options, args) -> None:
    from ..device.link import Link
    index, toolchain = project_index(project)
    inputs, labels, reference, calibration = _reference(project, int(options.get("samples") or 0))
    echo = (lambda text: print(text, end="", flush=True)) if options.get("verbose") else None
    with _port(project, index, toolchain, options) as port:
        with Link(port, index.serial_speed, float(options.get("timeout") or 10), echo) as link:
            info = link.hello()
            _check(info, index, inputs, port)
            print(f"  {port}: {info['backend']} firmware on {info['board']}, model {info['model_xxh3']}; "
                  f"sending {len(inputs)} test samples", flush=True)
            results, seconds = _stream(link, inputs, reference)
    record = _record(info, index, port, results, seconds, reference, labels, calibration)
    _write(project, record)
    latency = record["latency"]
    print(f"  {record['agreeing_outputs']}/{record['samples']} outputs agree with calibrate's ({record['comparison']}; "
          f"{record['identical_outputs']} identical), accuracy on "
          f"the board {record['accuracy']:.4f}; latency median {latency['cycles']['median']:,} cycles "
          f"({latency['ms']['median']:.2f} ms), {record['link']['samples_per_second']} samples/s; "
          f"{project.relative(project.artifact(Validation.ARTIFACT))} (the report shows it after `doit report`)",
          flush=True)
    if record["first_difference"] is not None:
        where = record["first_difference"]
        raise TinyedgeError(f"the board's outputs differ from calibrate's: first at sample {where['sample']}, output "
                            f"{where['output']} ({record['samples'] - record['agreeing_outputs']} samples differ, "
                            f"largest difference {record['largest_difference']})")
