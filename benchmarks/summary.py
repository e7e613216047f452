"""summary.md sections for the ensemble/roofline and start-up results (figures only from results JSON)."""
from __future__ import annotations


def machine_line(r: dict) -> str:
    """CPU (model, avx512_bf16 / AMX), threads, load and date of one result."""
    m = r.get("machine", {})
    load = r.get("load_avg_1m", m.get("load_avg_1m_at_start", "?"))
    flags = m.get("cpu_flags")
    if flags is None:  # results from before flags were recorded
        bf16 = amx = "flags not recorded"
    else:
        bf16 = "avx512_bf16" if "avx512_bf16" in flags else "no avx512_bf16"
        amx = "AMX" if any(f.startswith("amx") for f in flags) else "no AMX"
    return (f"{m.get('cpu_model', '?')} ({m.get('cores', '?')} cores, {bf16}, {amx}), torch {m.get('torch', '?')} "
            f"{m.get('torch_threads', '?')} threads, 1-min load {load}, {r.get('date', '')}")


def ensemble_markdown(results: dict[str, dict]) -> str:
    rows = [(n, r) for n, r in results.items() if n.startswith(("unet_ensemble", "essnet_ensemble"))]
    if not rows:
        return ""
    lines = ["", "### Ensembles: K seeds as one batched model vs K sequential trainings", "",
             "| benchmark | K | ensemble | sequential | ratio (target) | ensemble bf16 / ratio | GFLOP per member-step | "
             "achieved GFLOP/s ens / seq / ens bf16 | measured peak GFLOP/s GEMM, conv fp32 (bf16) | "
             "peak RSS ens / seq (MiB) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, r in rows:
        if "error" in r:
            lines.append(f"| {name} | failed: see benchmarks/results/{name}.json | | | | | | | | |")
            continue
        g, p, rss = r["gflops_achieved"], r["peak_gflops"], r["peak_rss_mb"]
        lines.append(
            f"| {name} ({r['unit']}, batch {r['batch_size']}, {r['image_size']} px) | {r['k']} | {r['ensemble']:.2f} | "
            f"{r['sequential']:.2f} | {r['ratio']:.2f}x (>= {r['target_ratio']}x) | {r['ensemble_bf16']:.2f} / "
            f"{r['ratio_bf16']:.2f}x | {r['gflop_per_member_step']:.2f} | {g['ensemble']:.1f} / {g['sequential']:.1f} / "
            f"{g['ensemble_bf16']:.1f} | {p['gemm_fp32']:.0f}, {p['conv_fp32']:.0f} ({p['gemm_bf16']:.0f}, "
            f"{p['conv_bf16']:.0f}) | {rss.get('ensemble', 0):.0f} / {rss.get('sequential', 0):.0f} |")
    lines += [""] + [f"- {name}: {machine_line(r)}" for name, r in rows]
    return "\n".join(lines) + "\n"


def startup_markdown(results: dict[str, dict]) -> str:
    r = results.get("startup")
    if not r or "error" in r:
        return "" if not r else "\n### Stage start-up\n\nfailed: see benchmarks/results/startup.json\n"
    lines = ["", "### Stage start-up (fresh interpreter each)", "", "| what | seconds |", "| --- | --- |"]
    for key, value in r.items():
        if key.endswith("_s") and isinstance(value, (int, float)) and key != "wall_s":
            lines.append(f"| {key[:-2].replace('_', ' ')} | {value:.2f} |")
        elif key.endswith("_error"):
            lines.append(f"| {key[:-6].replace('_', ' ')} | failed: {str(value)[-120:]} |")
    for key, value in r.items():
        if key.startswith("top_imports_"):
            top = ", ".join(f"{row['module']} {row['seconds']:.2f}" for row in value[:8])
            lines.append(f"| top imports of {key[len('top_imports_'):]} (cumulative s) | {top} |")
    lines += ["", f"- startup: {machine_line(r)}"]
    return "\n".join(lines) + "\n"


def grid_markdown(results: dict[str, dict]) -> str:
    """The training grid's engine (benchmarks/grid.py): worker processes at 1 thread vs one process."""
    r = results.get("grid")
    if not r or "error" in r:
        return ""
    lines = ["", "### The training grid: worker processes vs one process", "",
             "| cells | K | grid: workers x threads | cells/s grid | sequential: 1 process x threads | cells/s sequential "
             "| ratio | peak RSS of one process grid / seq (MiB) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind in ("generator", "unet"):
        c = r[kind]
        g, s = c["grid"], c["sequential"]
        lines.append(f"| {kind} ({c['steps_per_cell']} steps each) | {r['k']} | {g['workers']} x {g['threads']} | "
                     f"{g['cells_per_s']:.4f} | 1 x {s['threads']} | {s['cells_per_s']:.4f} | {c['ratio']:.2f}x | "
                     f"{g['peak_rss_mb']:.0f} / {s['peak_rss_mb']:.0f} |")
    lines += ["", f"- grid: {machine_line(r)}"]
    return "\n".join(lines) + "\n"


def machine_key(m: dict) -> str:
    """CPU model and the ISA that picks other kernels: "AMD EPYC" alone names both AVX2-only and AVX-512 parts."""
    flags = m.get("cpu_flags")
    if flags is None:
        return f"{m.get('cpu_model', '?')} [ISA not recorded]"
    isa = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f in flags] or (["avx2"] if "avx2" in flags else [])
    return f"{m.get('cpu_model', '?')} [{' '.join(isa) or 'no AVX2'}]"


def split_by_machine(results: dict[str, dict], cpu_model: str) -> tuple[dict[str, dict], dict[str, dict[str, dict]]]:
    """Rows measured on `cpu_model` (the main table: one machine) and the rest grouped by their CPU."""
    here: dict[str, dict] = {}
    other: dict[str, dict[str, dict]] = {}
    for name, r in results.items():
        cpu = machine_key(r.get("machine", {}))
        if "error" in r or cpu == cpu_model:
            here[name] = r
        else:
            other.setdefault(str(cpu), {})[name] = r
    return here, other


def time_to_quality_markdown(results: dict[str, dict]) -> str:
    """The translator sweep (benchmarks/time_to_quality.py): CPU-seconds to the default's final fidelity."""
    r = results.get("time_to_quality")
    if not r or "error" in r:
        return ""
    t, m = r["target"], r["machine"]
    lines = ["", "### Translator time to quality (CPU-seconds to today's default's final fidelity)", "",
             f"Target: SSIM {t['ssim']:.4f} on body pixels against the oracle (contrast rank {t['contrast_rank']:.3f}), "
             f"{r['probe_slices']} probe CT slices; {m['cpu']} ({m['isa']}), 1 thread, {r['date']}. {r.get('note', '')}",
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
    return "\n".join(lines) + "\n"
