"""dvc.yaml is complete: every file a stage may run and every params key it reads is declared;
liversynth.paths names exactly the DAG's outputs; the package has no import cycle."""
from __future__ import annotations

import ast
import copy
from pathlib import Path

import yaml

from liversynth import paths
from tests.conftest import REPO
from tests.dag_deps import closure, covered, imported_modules, module_file, params_covered, params_read
from tests.test_layers import find_cycle

DVC_YAML = yaml.safe_load((REPO / "dvc.yaml").read_text())
# The study's own dvc.yaml (wdir: the repository root), checked the same way.
STUDY_YAML = yaml.safe_load((REPO / "study" / "dvc.yaml").read_text())


def expand_stages(dag: dict) -> dict[str, dict]:
    """Stages with `foreach` expanded the way DVC names them (`stage@item`)."""
    out = {}
    for name, stage in dag["stages"].items():
        if "foreach" in stage:
            for item in stage["foreach"]:
                text = yaml.safe_dump(stage["do"]).replace("${item}", item)
                out[f"{name}@{item}"] = yaml.safe_load(text)
        else:
            out[name] = stage
    return out


def _paths(entries: list) -> list[str]:
    return [next(iter(e)) if isinstance(e, dict) else e for e in entries or []]


def missing(stage: dict) -> tuple[list[str], list[str]]:
    """(code files not covered by deps, params keys read but not declared) for one stage."""
    entry = stage["cmd"].split("-m", 1)[1].split()[0]
    files = closure(REPO, entry)
    deps = _paths(stage.get("deps"))
    declared = [str(p) for p in stage.get("params", [])]
    return (sorted(str(f) for f in files if not covered(f, deps)),
            sorted(k for k in params_read(files, REPO) if not params_covered(k, declared)))


def test_every_stage_declares_the_code_it_runs_and_the_params_it_reads() -> None:
    stages = {**expand_stages(DVC_YAML), **expand_stages(STUDY_YAML)}
    assert all(s.get("wdir") == ".." for s in expand_stages(STUDY_YAML).values())
    problems = {name: missing(stage) for name, stage in stages.items()}
    assert {k: v for k, v in problems.items() if v != ([], [])} == {}


def test_a_removed_dep_or_param_is_caught() -> None:
    stages = expand_stages(copy.deepcopy(DVC_YAML))
    unet = stages["train_unet"]
    unet["deps"].remove("src/liversynth/training/loop.py")
    unet["params"].remove("unet")
    files, keys = missing(unet)
    assert files == ["src/liversynth/training/loop.py"]
    assert "unet" in keys or any(k.startswith("unet.") for k in keys)
    register = stages["register"]
    register["params"].remove("evaluate.ci")
    assert missing(register)[1] == ["evaluate.ci"]


def _dag_outputs() -> set[str]:
    outs = set()
    for stage in [*expand_stages(DVC_YAML).values(), *expand_stages(STUDY_YAML).values()]:
        for kind in ("outs", "metrics", "plots"):
            outs |= set(_paths(stage.get(kind)))
    return outs


def _named_paths() -> set[str]:
    named = {str(v) for k, v in vars(paths).items() if isinstance(v, Path) and k.isupper()}
    named |= {str(p) for p in paths.EVALUATE_FIGURES.values()}
    for fn in (paths.generator_dir, paths.variant_grid, paths.variant_losses, paths.variant_history, paths.variant_fidelity,
               paths.synthetic_root, paths.synthesis_metrics_path, paths.synthesis_grid):
        named |= {str(fn(v)) for v in paths.VARIANTS}
    return named


def test_paths_module_names_every_dag_output() -> None:
    named = _named_paths()
    assert _dag_outputs() - named == set()
    # per-seed files live inside their variant's output
    assert all(paths.generator_dir(v) in paths.generator_path(v, 3).parents and
               paths.synthetic_root(v) in paths.synthetic_dir(v, 3).parents for v in paths.VARIANTS)
    # and nothing it names as a stage output is missing from the DAG (inputs and scratch excepted)
    not_outputs = {str(p) for p in (paths.RAW, paths.DATA_DVC, paths.DOWNLOADS, paths.REAL_SAMPLE_SHA256, paths.MAKE_RUN,
                                    paths.REPORTS, paths.FIGURES, paths.CHECKPOINTS, paths.UNET_MODELS, paths.STUDY_DIR, paths.STUDY_RUN,
                                    paths.RUN_DURATIONS, paths.STUDY_RUN_DURATIONS)}
    inside_outputs = {p for p in named if any(Path(o) in Path(p).parents for o in _dag_outputs())}
    assert named - _dag_outputs() - not_outputs - inside_outputs == set()


def _import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in (REPO / "src/liversynth").rglob("*.py"):
        rel = path.relative_to(REPO / "src").with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        targets = set()
        for mod in imported_modules(ast.parse(path.read_text()), top_level_only=True):
            target = module_file(REPO, mod)
            if target is not None:
                t = target.relative_to(REPO / "src").with_suffix("")
                targets.add(".".join(t.parts[:-1] if t.name == "__init__" else t.parts))
        graph[name] = targets - {name}
    return graph


def test_no_import_cycle_in_the_package() -> None:
    assert find_cycle(_import_graph()) is None


def test_the_cycle_check_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_train_essnet_runs_no_unet_evaluation_or_quality_code() -> None:
    """An edit to U-Net, evaluation or synthesis-quality code must not retrain the generators."""
    files = {str(f) for f in closure(REPO, "flows.train_essnet")}
    unet = {"src/liversynth/models/unet.py", "src/liversynth/training/unet.py", "src/liversynth/training/unet_cells.py"}
    assert files & unet == set()
    assert not any(f.startswith("src/liversynth/evaluation/") for f in files)
    assert "src/liversynth/synthesis/quality.py" not in files
    declared = set(_paths(DVC_YAML["stages"]["train_essnet"]["deps"]))
    assert not any(d.startswith(("src/liversynth/evaluation", "src/liversynth/synthesis/quality"))
                   or d in unet or d in ("src/liversynth/models", "src/liversynth/training") for d in declared)
