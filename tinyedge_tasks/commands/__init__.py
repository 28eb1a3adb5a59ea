"""Every command, in one package: the tasks that always run (side effects on a board, views of the cache,
submissions, sweeps and tuning), one module each with run(project, options, args), their rows below; the trials
that sweep and tune build (trials/); and the bodies of the `tinyedge` console script (schema, cache_prune), whose
argument parsing is cli.py.

Importing this package defines rows only: `doit list` imports no command module.
"""
from __future__ import annotations

from ..artifacts import DATA, REPORT_PAGE, Calibration, ProjectIndex
from ..rows import Command

PORT_PARAM = {"name": "port", "long": "port", "type": str, "default": "",
              "help": "serial port (else $TINYEDGE_PORT, firmware.port, or the only one found)"}
WORKERS_PARAM = {"name": "workers", "long": "workers", "type": int, "default": 0,
                 "help": "variants built at once (default: the number of cores)"}

COMMANDS: tuple[Command, ...] = (
    Command("experiments", "Tabulate every configuration the cache holds, with the keys that differ and a "
            "Pareto chart; nothing is retrained."),
    Command("submission", "Zip the manifest, boards, tool lock, digests, report, int8 model and firmware.",
            needs=(REPORT_PAGE, Calibration.ARTIFACT),
            params=({"name": "with_data", "long": "with-data", "type": bool, "default": False,
                     "help": "also include the data set (by default only its digest)"},)),
    Command("verify-submission", "Rebuild a submission zip in a fresh folder, in a sandbox; exit non-zero if any "
            "artifact differs.", pos_arg=True,
            params=({"name": "trust", "long": "trust", "type": bool, "default": False,
                     "help": "allow a submission that runs its own Python (module:function, a model with code)"},
                    {"name": "no_sandbox", "long": "no-sandbox", "type": bool, "default": False,
                     "help": "rebuild without bubblewrap (only for submissions you trust)"})),
    Command("sweep", "Build every combination of some manifest values (-S key=v1,v2, or the sweep: section), each "
            "variant in its own folder from the one cache, in parallel; a table of the results.",
            params=({"name": "set", "short": "S", "long": "set", "type": bool, "default": False,
                     "help": "-S KEY=V1,V2: a dotted manifest key and its values (repeat for more keys)"},
                    WORKERS_PARAM)),
    Command("tune", "Search the tune: space with Optuna (needs the `tune` extra): the manifest's objectives, the "
            "board's budget as a constraint, the preflight rejecting what cannot fit before it trains.",
            params=(WORKERS_PARAM,
                    {"name": "storage", "long": "storage", "type": str, "default": "",
                     "help": "Optuna storage URL (postgresql://...), else tune.storage, else cache/tune.sqlite3; "
                             "write --storage=URL when the URL holds a '=' (doit takes name=value as a variable)"},
                    {"name": "trials", "long": "trials", "type": int, "default": 0,
                     "help": "trials the study should hold (default tune.trials); finished ones are kept"},
                    {"name": "apply", "long": "apply", "type": int, "default": -1,
                     "help": "write trial N's values into tinyedge.yaml (comments and order kept) and stop"})),
    Command("flash", "Build the firmware and upload it to the board (or run it, for an emulated board).",
            needs=(ProjectIndex.ARTIFACT,), params=(PORT_PARAM,)),
    Command("monitor", "Show the board's serial output (top classes, inference time) at its serial speed.",
            needs=(ProjectIndex.ARTIFACT,), params=(PORT_PARAM,)),
    Command("validate", "Run the test split on the board (or the emulated one) over the serial protocol: outputs "
            "compared with calibrate's byte for byte, cycles per inference and per layer -> validate/validate.json.",
            needs=(ProjectIndex.ARTIFACT, Calibration.ARTIFACT, DATA),
            params=(PORT_PARAM,
                    {"name": "samples", "long": "samples", "type": int, "default": 0,
                     "help": "validate the first N test samples (default: all)"},
                    {"name": "timeout", "long": "timeout", "type": float, "default": 10.0,
                     "help": "seconds to wait for the board's INFO, and for each RESULT"},
                    {"name": "verbose", "long": "verbose", "type": bool, "default": False,
                     "help": "show the firmware's console text"})),
    Command("capture", "Save the board's camera frames (as its firmware sees them) as PNG into the data set "
            "folder's class sub-folder; never overwrites, Ctrl-C keeps the frames so far.",
            params=(PORT_PARAM,
                    {"name": "label", "long": "label", "type": str, "default": "",
                     "help": "the class: the data set folder's sub-folder to save into"},
                    {"name": "count", "short": "n", "long": "count", "type": int, "default": 1,
                     "help": "frames to capture"},
                    {"name": "timeout", "long": "timeout", "type": float, "default": 10.0,
                     "help": "seconds to wait for the board's INFO, and for each FRAME"})),
)
