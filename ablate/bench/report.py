"""The ``ablate bench`` page of the reports: ``<out>/bench/README.md`` (one markdown table per
device and mode, newest measurement of each case) and ``throughput.png`` (images/s per variant)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ablate.bench.settings import MODES
from ablate.bench.storage import BENCH_DIR, load_bench
from ablate.report.text import md_table  # the experiment reports' table format


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}"


def _plot(frame: Any, path: Path) -> Path:
    """Images/s per variant (bars), one panel per mode, hue = precision x batch, per device."""
    import seaborn as sns
    from matplotlib.figure import Figure

    ok = frame[frame["status"] == "ok"].copy()
    ok["setting"] = ok["precision"] + ", batch " + ok["batch_size"].astype(str)
    if (ok["fuse"] > 1).any():  # images/s of all members of K fused seeds
        ok["setting"] = ok["setting"] + ", K=" + ok["fuse"].astype(str)
    if frame["device_name"].nunique() > 1:  # name the device only when there is a choice
        ok["setting"] = (
            ok["device_name"].str.replace(r"\s*\(.*\)$", "", regex=True).str.slice(0, 24) + ": " + ok["setting"]
        )
    modes = [m for m in MODES if m in set(ok["mode"])] or ["train"]
    slugs = list(dict.fromkeys(frame["slug"]))
    height = max(3.0, 0.32 * len(slugs) * max(1, ok["setting"].nunique()) ** 0.5 + 1.5)
    with sns.axes_style("whitegrid"):
        fig = Figure(figsize=(6.0 * len(modes), height), layout="constrained")
        axes = fig.subplots(1, len(modes), squeeze=False)[0]
        for ax, mode in zip(axes, modes):
            part = ok[ok["mode"] == mode]
            if part.empty:
                ax.text(0.5, 0.5, f"no successful {mode} cases", ha="center", va="center", transform=ax.transAxes)
            else:
                sns.barplot(data=part, y="slug", x="images_per_s", hue="setting", order=slugs, ax=ax, orient="h")
                # Below the axes, so it never covers a bar.
                ax.legend(
                    fontsize=8, title=None, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False
                )
            ax.set_title(f"{mode}: images/s (median of repeats)")
            ax.set_xlabel("images / s")
            ax.set_ylabel("")
            ax.tick_params(axis="y", labelsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, format="png", metadata={"Software": None})
    return path


def write_bench_report(results_root: Path, out_root: Path) -> Path | None:
    """Write ``<out_root>/bench/README.md`` (a table per device and mode) and ``throughput.png``
    from the files under ``<results_root>/bench``; returns the README's path, or None when there
    is nothing to report."""
    frame = load_bench(results_root)
    if frame.empty:
        return None
    out = Path(out_root) / BENCH_DIR
    out.mkdir(parents=True, exist_ok=True)
    _plot(frame, out / "throughput.png")

    lines = [
        "# Speed benchmark (`ablate bench`)",
        "",
        "Steady-state speed per variant: synthetic batch already on the device, untimed warm-up steps, then",
        "repeated stretches of steps between device-synchronized clock reads; the step time is the median",
        "stretch's. `train` = forward + loss + backward + fused optimizer step (the function `ablate run` trains",
        "with); `infer` = forward under `torch.inference_mode`. FLOPs count convolutions and linear layers only",
        "(2 per multiply-add; `train` = forward + backward). Peak memory: CUDA allocator peak, or on the CPU the",
        "process's peak resident set during the case (`peak_memory_kind` in the result files says which;",
        "`host_max_rss` where the platform cannot reset the peak). K: seeds fused into one model (`--fuse`);",
        "images/s counts every member's images, per member one member's. Newest measurement of each case shown.",
        "",
        "![images per second](throughput.png)",
        "",
    ]
    frame = frame.assign(mode_order=frame["mode"].map({m: i for i, m in enumerate(MODES)}))
    frame = frame.sort_values(["device_name", "mode_order", "precision", "batch_size"], kind="stable")
    for (device_name, mode), part in frame.groupby(["device_name", "mode"], sort=False):
        torch_versions = ", ".join(sorted(part["torch"].dropna().astype(str).unique())) if "torch" in part else "?"
        lines += [
            f"## {device_name} · {mode}",
            "",
            f"torch {torch_versions}; measured {part['created'].max()[:19]} UTC.",
            "",
        ]
        headers = [
            "variant",
            "precision",
            "batch",
            "K",
            "images/s",
            "per member",
            "step ms",
            "peak MB",
            "params",
            "GFLOP/img",
            "TFLOP/s",
            "status",
        ]
        align = ["l", "l", "r", "r", "r", "r", "r", "r", "r", "r", "r", "l"]
        rows = []
        for r in part.to_dict("records"):
            flops = r.get("flops_train") if mode == "train" else r.get("flops_forward")
            status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('error') or ''}"
            rows.append(
                [
                    f"`{r['slug']}`",
                    str(r["precision"]),
                    str(r["batch_size"]),
                    str(r["fuse"]),
                    _fmt(r.get("images_per_s")),
                    _fmt(r.get("member_images_per_s")),
                    _fmt(r.get("step_time_ms"), 2),
                    _fmt(r.get("peak_memory_mb")),
                    _fmt(r.get("params")),
                    _fmt(flops / 1e9 if isinstance(flops, (int, float)) and not math.isnan(flops) else None, 3),
                    _fmt(r.get("achieved_tflops"), 2),
                    status,
                ]
            )
        lines += [md_table(headers, rows, align), ""]
    path = out / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
