"""doit experiments: every configuration the cache has seen, side by side, built from the cache alone.

A configuration is one calibrate action: its metrics are its calibration.json (a cache object), and its
manifest keys are the config slices of the actions upstream of it, found by following each input digest to
the action whose output had that digest. Nothing is trained or converted to make the table.
"""
from __future__ import annotations

import json

from ..report import charts
from ..errors import TinyedgeError
from ..engine.hashing import digest_json
from .trials import variants


def _flatten(value, prefix: str = "") -> dict:
    """{"train": {"epochs": 4}} -> {"train.epochs": 4}: config slices of different depths become comparable."""
    if not (isinstance(value, dict) and value):
        return {prefix: value}
    flat = {}
    for key, sub in value.items():
        flat.update(_flatten(sub, f"{prefix}.{key}" if prefix else key))
    return flat


def configurations(store) -> list[dict]:
    """One entry per distinct configuration: {key, config (flat manifest keys), metrics, seconds, fits, origin}.

    `fits` is True when codegen accepted it for the board, False when a sweep or tune run saw it stopped by the
    budget, None when unknown; `origin` names the sweep variants and tune trials that gave it."""
    records = store.records()  # oldest first, so a later producer of the same bytes wins
    producer = {meta["digest"]: record for _, record in records for meta in record["outputs"].values()}
    generated = {digest for _, record in records if record["stage"] == "codegen"
                 for digest in record["inputs"].values()}
    noted: dict[str, list[dict]] = {}
    for entry in variants.recorded(store.root):
        noted.setdefault(entry["calibration"], []).append(entry)
    found = {}
    for key, record in records:
        if record["stage"] != "calibrate" or "calibration.json" not in record["outputs"]:
            continue
        config, seconds, pending, seen = {}, 0.0, [record], set()
        while pending:
            action = pending.pop()
            if id(action) in seen:
                continue
            seen.add(id(action))
            config.update(_flatten(action["config"]))
            seconds += action.get("seconds", 0.0)
            pending += [producer[d] for d in action["inputs"].values() if d in producer]
        stored = store.read(record["outputs"]["calibration.json"]["digest"])
        if stored is None:
            continue  # its object was pruned from the cache: the configuration is gone
        metrics = json.loads(stored)
        digest = record["outputs"]["calibration.json"]["digest"]
        notes = noted.get(digest, [])
        fits = True if digest in generated else False if any(n["fits"] is False for n in notes) else None
        origin = sorted({f"{n['kind']} {n['name']}" for n in notes})
        found[digest_json(config)] = {"key": key, "config": config, "metrics": metrics, "seconds": seconds,
                                      "fits": fits, "origin": origin}
    return list(found.values())


def pareto(points: list[tuple[float, int, int]]) -> list[bool]:
    """(accuracy up, model bytes down, arena down): True where no other point is at least as good in all three
    and better in one."""
    def dominates(a, b):
        return a[0] >= b[0] and a[1] <= b[1] and a[2] <= b[2] and a != b
    return [not any(dominates(other, point) for other in points) for point in points]


LABEL_ALL_UP_TO = 12  # beyond this many points only the Pareto front is numbered: the table has the rest


def _chart(rows: list[dict], front: list[bool]) -> bytes:
    fig, axes = charts.figure(2)
    for axis, metric, label in zip(axes, ("model_bytes", "arena_bytes"), ("int8 model bytes", "TFLM arena bytes")):
        charts.pareto_points(axis, [(r["metrics"][metric], r["metrics"]["quantized_test_accuracy"]) for r in rows],
                             front, [r["fits"] for r in rows],
                             [str(i) if best or len(rows) <= LABEL_ALL_UP_TO else None
                              for i, best in enumerate(front, 1)])
        ordered = sorted((r["metrics"][metric], r["metrics"]["quantized_test_accuracy"])
                         for r, best in zip(rows, front) if best)
        axis.plot(*zip(*ordered), color="#d62728", alpha=0.5, label="Pareto front (*)")
        axis.margins(0.15)
        charts.x_axis(axis, [r["metrics"][metric] for r in rows], label)
        axis.set_ylabel("int8 test accuracy (TFLM)")
        axis.legend(loc="best")
    return charts.png(fig)


def _origin(names: list[str]) -> str:
    """'sweep a, tune s-0003 (+2)': which sweep variants and tune trials gave a configuration."""
    return ", ".join(names[:2]) + (f" (+{len(names) - 2})" if len(names) > 2 else "")


def run(project, options, args) -> None:
    rows = configurations(project.store)
    if not rows:
        raise TinyedgeError(f"{project.store.root}: the cache holds no calibrated configuration yet; "
                            "run doit (and again after each change of the manifest) to fill it")
    keys = sorted({k for row in rows for k in row["config"]})
    differing = [k for k in keys if len({json.dumps(row["config"].get(k)) for row in rows}) > 1]
    candidates = [r for r in rows if r["fits"] is not False]  # the front is of what can run on the board
    figures = [(r["metrics"]["quantized_test_accuracy"], r["metrics"]["model_bytes"], r["metrics"]["arena_bytes"])
               for r in candidates]
    best_of = dict(zip(map(id, candidates), pareto(figures)))
    front = [best_of.get(id(r), False) for r in rows]
    headers = ["#"] + differing + ["int8 acc", "float acc", "model B", "arena B", "fits", "Pareto", "compute s", "key",
                                   "from"]
    table = [[index] + [json.dumps(row["config"].get(k)) for k in differing]
             + [row["metrics"]["quantized_test_accuracy"], row["metrics"]["float_test_accuracy"],
                row["metrics"]["model_bytes"], row["metrics"]["arena_bytes"],
                {True: "yes", False: "no", None: "?"}[row["fits"]], "*" if best else "",
                round(row["seconds"], 1), row["key"][:12], _origin(row["origin"])]
             for index, (row, best) in enumerate(zip(rows, front), 1)]
    print(f"{len(rows)} configurations in {project.relative(project.store.root)}; keys that differ: "
          f"{', '.join(differing) or 'none'}")
    print(charts.text_table(headers, table))

    folder = project.build / "experiments"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "experiments.png").write_bytes(_chart(rows, front))
    (folder / "experiments.md").write_text(
        "# Experiments\n\nOne row per configuration in the cache; * marks the Pareto front of those that fit the "
        "board (accuracy up, model bytes and arena down; hollow points in the chart do not fit); `from` names the "
        "sweep variants and tune trials that gave it.\n\n"
        f"{charts.markdown_table(headers, table)}\n\n![chart](experiments.png)\n")
    (folder / "experiments.json").write_text(json.dumps(
        [{**row, "pareto": best} for row, best in zip(rows, front)], indent=1, sort_keys=True))
    print(f"table and chart: {project.relative(folder)}/experiments.md, experiments.png")
