"""Where ``ablate bench`` results live: ``<results>/bench/<UTC time>-<device>.json`` (rows,
settings and environment) with a ``.csv`` of the rows beside it; :func:`load_bench` reads them
all back, keeping the newest measurement of each case."""

from __future__ import annotations

import dataclasses
import itertools
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ablate.bench.settings import BenchSettings
from ablate.experiment.experiment import BENCH_NAME as BENCH_DIR  # the one spelling of the reserved name
from ablate.runtime.provenance import environment
from ablate.store.folder import write_json_atomic

# What makes two rows measurements of the same case (the newer one wins in load_bench).
KEY = ("slug", "device_name", "mode", "precision", "batch_size", "fuse", "channels_last", "compile")


def bench_dir(results_root: str | Path) -> Path:
    """``<results>/bench``: where ``ablate bench`` writes and the report reads."""
    return Path(results_root) / BENCH_DIR


def save_bench(
    rows: list[dict[str, Any]], device: torch.device, settings: BenchSettings, results_root: str | Path
) -> tuple[Path, Path]:
    """Write ``<results>/bench/<UTC time>-<device>.json`` (rows, settings, environment) and the
    rows as a ``.csv`` beside it; returns both paths."""
    import pandas as pd

    created = datetime.now(timezone.utc)
    folder = bench_dir(results_root)
    stem = f"{created.strftime('%Y%m%dT%H%M%S')}-{device.type}"
    for n in itertools.count(1):
        if not (folder / f"{stem}.json").exists():
            break
        stem = f"{created.strftime('%Y%m%dT%H%M%S')}-{device.type}-{n}"
    env = environment(device)
    payload = {
        "kind": "ablate-bench",
        "created": created.isoformat(timespec="microseconds"),  # orders files written in the same second
        "env": env,
        "settings": dataclasses.asdict(settings),
        "rows": [{**r, "device_name": env["device_name"], "torch": env["torch"]} for r in rows],
    }
    json_path = folder / f"{stem}.json"
    write_json_atomic(json_path, payload)
    frame = pd.DataFrame(payload["rows"])
    if "step_times_ms" in frame:
        frame["step_times_ms"] = frame["step_times_ms"].map(lambda v: ";".join(f"{t:.3f}" for t in v) if v else "")
    frame.insert(0, "created", payload["created"])
    csv_path = folder / f"{stem}.csv"
    frame.to_csv(csv_path, index=False)
    return json_path, csv_path


def load_bench(results_root: str | Path) -> Any:
    """Every row of every bench file under ``<results>/bench``, as a pandas DataFrame with the
    file's ``created`` time; only the newest measurement of each case is kept. Empty frame if none."""
    import pandas as pd

    records = []
    folder = bench_dir(results_root)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(payload, dict) or payload.get("kind") != "ablate-bench":
            continue
        for row in payload.get("rows", []):
            records.append({**row, "created": payload.get("created", ""), "file": path.name})
    frame = pd.DataFrame(records)
    if frame.empty:
        return frame
    # Rows from before ``--fuse`` measured one model: K = 1, one member's images/s = all of them.
    frame["fuse"] = frame["fuse"].fillna(1).astype(int) if "fuse" in frame else 1
    # (A file of failed cases only has no images/s at all.)
    everyone = frame["images_per_s"] if "images_per_s" in frame else pd.Series(float("nan"), index=frame.index)
    if "member_images_per_s" not in frame:
        frame["member_images_per_s"] = everyone
    frame["member_images_per_s"] = frame["member_images_per_s"].fillna(everyone / frame["fuse"])
    frame = frame.sort_values(["created", "file"], kind="stable")
    return frame.drop_duplicates(subset=[k for k in KEY if k in frame], keep="last").reset_index(drop=True)
