"""benchmarks/results/summary.md from the results JSONs alone (no benchmark runs): `python -m benchmarks.summary`.

Speed figures from two CPUs are not comparable, and "AMD EPYC" alone names both AVX2-only and AVX-512 BF16
parts, whose kernels differ. So a machine is its CPU name AND its ISA class, and the tables at the top hold
only rows from the machine of the newest result (the one `make bench` last ran on); every other machine gets
its own dated section below, with its own rows.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"
MAIN_ORDER = ("essnet_train", "unet_train", "synthesis", "prepare", "prepare_scaling", "dvc_repro", "dvc_repro_noop")
NOT_SHOWN = ("chaos",)  # chaos_cost.json: an estimate documented in README's own section, not a benchmark row
OWN_TABLE = ("time_to_quality", "unet_ensemble", "essnet_ensemble", "grid", "startup")  # the rest: the main table
Results = dict[str, dict]


def cpu_name(r: dict) -> str:
    """CPU model name: benchmarks/measure.py writes `machine.cpu_model` (its `cpu` is "x86_64"); the runtime's
    machine record (time to quality, start-up, chaos cost) writes the model as `cpu`."""
    m = r.get("machine", {})
    return str(m.get("cpu_model") or r.get("cpu") or m.get("cpu") or "?")


def isa(r: dict) -> str:
    """The ISA class that picks the kernels: amx > avx512_bf16 > avx512 > avx2. measure.py records
    `machine.cpu_flags` (a list), the runtime record `isa` ("avx2,fma"); old files record neither."""
    m = r.get("machine", {})
    flags = m.get("cpu_flags")
    if flags is None:
        text = m.get("isa") or r.get("isa")
        if not text:
            return "ISA not recorded"
        flags = str(text).split(",")
    if any(f.startswith("amx") for f in flags):
        return "amx"
    for flag, label in (("avx512_bf16", "avx512_bf16"), ("avx512f", "avx512"), ("avx2", "avx2")):
        if flag in flags:
            return label
    return "no AVX2"


def machine_of(r: dict) -> tuple[str, str]:
    """The identity rows are grouped by: same name with another ISA is another machine."""
    return cpu_name(r), isa(r)


def machine_line(r: dict) -> str:
    """What varies from run to run on one machine (threads, load, date): the CPU and ISA head the section."""
    m = r.get("machine", {})
    load = r.get("load_avg_1m", m.get("load_avg_1m_at_start", "not recorded"))
    if isinstance(load, dict):  # chaos_cost-style {start, end}
        load = load.get("start", "?")
    if isinstance(load, float):
        load = round(load, 2)
    threads = m.get("torch_threads", m.get("threads", "?"))
    return f"torch {m.get('torch', '?')}, threads {threads}, 1-min load {load}, {r.get('date', '?')}"


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _scaling_rows(r: dict) -> list[str]:
    n, n4 = r["patients"]
    runs, size = r["runs"], "x".join(map(str, r["volume"]))
    lines = []
    for k in (n, n4):
        opt, base = runs[f"optimised_{k}"], runs[f"baseline_{k}"]
        lines.append(f"| prepare, {k} patients of {size} (s) | {opt['seconds']:.2f} | {base['seconds']:.2f} | "
                     f"{base['seconds'] / opt['seconds']:.2f}x | "
                     f"{opt['peak_rss_mb']:.0f} / {base['peak_rss_mb']:.0f} |")
    lines.append(f"| prepare, {n} -> {n4} patients: time x, RSS growth | "
                 f"x{r['optimised_time_ratio_4n_over_n']}, {r['optimised_rss_growth_mb']:+.0f} MiB | "
                 f"x{r['baseline_time_ratio_4n_over_n']}, {r['baseline_rss_growth_mb']:+.0f} MiB | - | - |")
    return lines


def main_table(rows: Results) -> list[str]:
    """One row per figure, ratio = optimised / plain throughput (time for the repro)."""
    lines = ["| benchmark | optimised | plain baseline | ratio | peak RSS optimised / baseline (MiB) |",
             "| --- | --- | --- | --- | --- |"]
    for name, r in rows.items():
        rss = r.get("peak_rss_mb", {})
        if name == "prepare_scaling":
            lines += _scaling_rows(r)
        elif r.get("unit") == "s":
            target = f" (target < {r['target_s']:g} s)" if "target_s" in r else ""
            base = f"{r['baseline']:.1f}" if r.get("baseline") is not None else "-"
            ratio = f"{r['ratio']:.2f}x" if r.get("ratio") is not None else "-"
            peak = f"{rss.get('optimised', 0):.0f}" + (f" / {rss['baseline']:.0f}" if "baseline" in rss else "")
            lines.append(f"| {name} (s){target} | {r['optimised']:.{1 if r['optimised'] >= 10 else 2}f} | {base} | "
                         f"{ratio} | {peak} (largest process) |")
        else:
            lines.append(f"| {name} ({r['unit']}) | {_fmt(r['optimised'])} | {_fmt(r['baseline'])} | "
                         f"{_fmt(r['ratio'])}x | {rss.get('optimised', 0):.0f} / {rss.get('baseline', 0):.0f} |")
            if "optimised_bf16" in r:
                lines.append(f"| {name} + cpu_bf16 (opt-in) ({r['unit']}) | {_fmt(r['optimised_bf16'])} | "
                             f"{_fmt(r['baseline'])} | {_fmt(r['ratio_bf16'])}x | "
                             f"{rss.get('optimised_bf16', 0):.0f} / {rss.get('baseline', 0):.0f} |")
    return lines


def ensemble_table(rows: Results) -> list[str]:
    """Batched K-seed ensembles against K sequential trainings, with the FLOP rates that explain the ratio."""
    lines = ["| benchmark | K | ensemble | sequential | ratio (target) | ensemble bf16 / ratio | GFLOP per member-step | "
             "achieved GFLOP/s ens / seq / ens bf16 | measured peak GFLOP/s GEMM, conv fp32 (bf16) | "
             "peak RSS ens / seq (MiB) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in rows.items():
        g, p, rss = r["gflops_achieved"], r["peak_gflops"], r["peak_rss_mb"]
        lines.append(
            f"| {name} ({r['unit']}, batch {r['batch_size']}, {r['image_size']} px) | {r['k']} | {r['ensemble']:.2f} | "
            f"{r['sequential']:.2f} | {r['ratio']:.2f}x (>= {r['target_ratio']}x) | {r['ensemble_bf16']:.2f} / "
            f"{r['ratio_bf16']:.2f}x | {r['gflop_per_member_step']:.2f} | {g['ensemble']:.1f} / {g['sequential']:.1f} / "
            f"{g['ensemble_bf16']:.1f} | {p['gemm_fp32']:.0f}, {p['conv_fp32']:.0f} ({p['gemm_bf16']:.0f}, "
            f"{p['conv_bf16']:.0f}) | {rss.get('ensemble', 0):.0f} / {rss.get('sequential', 0):.0f} |")
    return lines


def startup_table(rows: Results) -> list[str]:
    """Seconds to start each stage in a fresh interpreter, and which imports cost them."""
    r = rows["startup"]
    lines = ["| what | seconds |", "| --- | --- |"]
    for key, value in r.items():
        if key.endswith("_s") and isinstance(value, (int, float)) and key != "wall_s":
            lines.append(f"| {key[:-2].replace('_', ' ')} | {value:.2f} |")
        elif key.endswith("_error"):
            lines.append(f"| {key[:-6].replace('_', ' ')} | failed: {str(value)[-120:]} |")
    for key, value in r.items():
        if key.startswith("top_imports_"):
            top = ", ".join(f"{row['module']} {row['seconds']:.2f}" for row in value[:8])
            lines.append(f"| top imports of {key[len('top_imports_'):]} (cumulative s) | {top} |")
    return lines


def grid_table(rows: Results) -> list[str]:
    """The training grid's engine (benchmarks/grid.py): worker processes at 1 thread vs one process."""
    r = rows["grid"]
    lines = ["| cells | K | grid: workers x threads | cells/s grid | sequential: 1 process x threads | cells/s sequential "
             "| ratio | peak RSS of one process grid / seq (MiB) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind in ("generator", "unet"):
        c = r[kind]
        g, s = c["grid"], c["sequential"]
        lines.append(f"| {kind} ({c['steps_per_cell']} steps each) | {r['k']} | {g['workers']} x {g['threads']} | "
                     f"{g['cells_per_s']:.4f} | 1 x {s['threads']} | {s['cells_per_s']:.4f} | {c['ratio']:.2f}x | "
                     f"{g['peak_rss_mb']:.0f} / {s['peak_rss_mb']:.0f} |")
    return lines


def time_to_quality_table(rows: Results) -> list[str]:
    """The translator sweep (benchmarks/time_to_quality.py): CPU-seconds to the default's final fidelity."""
    r = rows["time_to_quality"]
    t = r["target"]
    lines = [f"Target: SSIM {t['ssim']:.4f} on body pixels against the oracle (contrast rank {t['contrast_rank']:.3f}), "
             f"{r['probe_slices']} probe CT slices. {r.get('note', '')}",
             "", "| config | batch | steps | ngf/blocks/ndf | lr (decay from) | seg every | seeds | CPU-s/step | "
             "CPU-s to target | default run CPU-s / this | final / best SSIM | final contrast rank |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in r["rows"]:
        hit = "not reached" if row["cpu_s_to_target"] is None else f"{row['cpu_s_to_target']:.1f}"
        speed = "-" if row["speedup_vs_default"] is None else f"{row['speedup_vs_default']:.2f}x"
        lines.append(f"| {row['config']} | {row['batch_size']} | {row['steps']} | {row['ngf']}/{row['n_blocks']}/"
                     f"{row['ndf']} | {row['lr']:g} ({row['lr_decay_from']:g}) | {row['seg_every']} | "
                     f"{len(row['seeds'])} | {row['cpu_s_per_step']:.3f} | {hit} | {speed} | {row['final_ssim']:.4f} / "
                     f"{row['best_ssim']:.4f} | {row['final_contrast_rank']:.3f} |")
    for ref, f in r.get("references", {}).items():
        lines.append(f"| reference: {ref.replace('_', ' ')} (no training) | | | | | | | | | | {f['ssim']:.4f} | "
                     f"{f['contrast_rank']:.3f} |")
    for lever, text in r.get("levers", {}).items():
        lines.append(f"| {lever} | {text} | | | | | | | | | | |")
    return lines


# (heading, which result names it shows, its table, the command that fills it), in summary.md's order.
Section = tuple[str, Callable[[str], bool], Callable[[Results], list[str]], str]
SECTIONS: list[Section] = [
    ("Optimised vs plain baseline", lambda n: not n.startswith(OWN_TABLE), main_table, "`make bench`"),
    ("Translator time to quality (CPU-seconds to today's default's final fidelity)",
     lambda n: n == "time_to_quality", time_to_quality_table, "`make bench`"),
    ("Ensembles: K seeds as one batched model vs K sequential trainings",
     lambda n: n.startswith(("unet_ensemble", "essnet_ensemble")), ensemble_table, "`make bench`"),
    ("The training grid: worker processes vs one process", lambda n: n == "grid", grid_table,
     "`python -m benchmarks.grid`"),
    ("Stage start-up (fresh interpreter each)", lambda n: n == "startup", startup_table, "`make bench`"),
]


def section_markdown(section: Section, rows: Results, here: bool) -> list[str]:
    """One table from one machine's rows; on the current machine a missing table is said, elsewhere left out."""
    title, shows, table, command = section
    mine = {n: r for n, r in rows.items() if shows(n)}
    if not mine:
        return [f"#### {title}", "", f"not run on this CPU yet: {command}", ""] if here else []
    ok = {n: r for n, r in mine.items() if "error" not in r}
    lines = [f"#### {title}", ""] + (table(ok) + [""] if ok else [])
    lines += [f"- {n}: failed, see benchmarks/results/{n}.json, {r.get('date', '?')}" for n, r in mine.items()
              if "error" in r]
    return lines + [f"- {n}: {machine_line(r)}" for n, r in ok.items()] + [""]


def machine_heading(machine: tuple[str, str], rows: Results, here: bool) -> list[str]:
    """The CPU and ISA once per machine, and the span of dates its rows were measured over."""
    dates = sorted(str(r.get("date", "?"))[:10] for r in rows.values())
    span = dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}"
    if not here:
        return [f"### Other machine: {machine[0]} ({machine[1]}), {span}; not comparable with the tables above", ""]
    m = max(rows.values(), key=lambda r: str(r.get("date", ""))).get("machine", {})
    size = f", {m['cores']} cores, {m.get('memory_gb', '?')} GB" if "cores" in m else ""
    size += f", CUDA {m['cuda']}" if m.get("cuda") else ""
    return [f"### This CPU: {machine[0]} ({machine[1]}{size}), results {span}", "",
            "Every table in this part was measured on this CPU (the one of the newest result). Rows from other CPUs, "
            "or from the same CPU name with another ISA, are in their own dated sections below.", ""]


def load_results(folder: Path = RESULTS) -> Results:
    """Every results JSON by file stem (unet_ensemble_k6_threads1.json's `name` is unet_ensemble_k6)."""
    found = {f.stem: json.loads(f.read_text()) for f in folder.glob("*.json") if not f.stem.startswith(NOT_SHOWN)}
    return {k: found[k] for k in sorted(found, key=lambda k: (MAIN_ORDER.index(k) if k in MAIN_ORDER else 99, k))}


def summary_markdown(results: Results) -> str:
    """Current machine first (the newest result's), then the others, newest first, each with its own tables."""
    if not results:
        return "No benchmark results yet: `make bench`.\n"
    groups: dict[tuple[str, str], Results] = {}
    for name, r in results.items():
        groups.setdefault(machine_of(r), {})[name] = r
    newest = {k: max(str(r.get("date", "")) for r in rows.values()) for k, rows in groups.items()}
    lines: list[str] = []
    for i, machine in enumerate(sorted(groups, key=newest.__getitem__, reverse=True)):
        lines += machine_heading(machine, groups[machine], here=i == 0)
        for section in SECTIONS:
            lines += section_markdown(section, groups[machine], here=i == 0)
    return "\n".join(lines).rstrip() + "\n"


def write_summary(folder: Path = RESULTS) -> str:
    """Rewrite summary.md from the JSONs on disk, so a partial run (`--only`) updates just its rows."""
    text = summary_markdown(load_results(folder))
    (folder / "summary.md").write_text(text)
    return text


if __name__ == "__main__":
    print(write_summary(), end="")
