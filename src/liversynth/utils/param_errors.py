"""pydantic validation errors as one line per problem: `file: dotted.key = value: rule`.

Union member names that pydantic adds to an error's location (`int`, `list[int]`) are dropped by
following the location through the raw YAML; alternatives at one key are joined with "or".
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from liversynth.utils.stage_errors import StageError

__all__ = ["ParamsError", "RuleError", "format_errors"]


class ParamsError(StageError, ValueError):
    """params.yaml cannot be used; the message has one `file: key = value: rule` line per problem."""


class RuleError(ValueError):
    """A broken rule; `key` (relative to the section) when it is not the field being validated."""

    def __init__(self, rule: str, key: str | None = None, value: Any = None) -> None:
        super().__init__(f"{key} = {value!r}: {rule}" if key else rule)
        self.rule, self.key, self.value = rule, key, value


_TYPE_RULES = {"int_type": "expected an integer", "float_type": "expected a number", "string_type": "expected a string",
               "bool_type": "expected true or false", "list_type": "expected a list", "tuple_type": "expected a list",
               "dict_type": "expected a mapping", "model_type": "expected a mapping", "missing": "missing a value",
               "too_short": "must not be empty", "string_too_short": "must not be empty",
               "none_required": "expected null", "finite_number": "must be a finite number"}
_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"), "less_than": ("<", "lt"),
           "less_than_equal": ("<=", "le")}


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, dict):
        value = {k: _show_inner(v) for k, v in value.items()}
    return repr(value)


def _show_inner(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _rule(error: Any) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _BOUNDS:
        op, name = _BOUNDS[kind]
        return f"must be {op} {ctx[name]}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}"
    if kind == "too_long":
        return f"has {ctx.get('actual_length')} items, expected at most {ctx.get('max_length')}"
    if kind == "extra_forbidden":
        return "unknown key"
    return _TYPE_RULES.get(kind, str(error["msg"]).removeprefix("Value error, "))


def _key_path(loc: tuple[Any, ...], raw: Any) -> list[str]:
    """The loc's parts that are keys of the raw YAML (pydantic adds union member names like 'int')."""
    keys, node = [], raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            continue
        keys.append(str(part))
    return keys


def format_errors(err: ValidationError, raw: dict[str, Any], where: str, root: type[BaseModel]) -> list[str]:
    """One `file: dotted.key = value: rule` line per broken rule (union alternatives joined by 'or')."""
    found: dict[str, list[str]] = {}
    for e in err.errors():
        keys = _key_path(tuple(e["loc"]), raw)
        value, rule = e.get("input"), _rule(e)
        cause = (e.get("ctx") or {}).get("error")
        if isinstance(cause, RuleError):
            rule = cause.rule
        if isinstance(cause, RuleError) and cause.key is not None:
            keys = [*keys, *cause.key.split(".")]
            value = cause.value
        if e["type"] == "extra_forbidden":
            rule = f"unknown key; known: {sorted(_known(root, keys[:-1]))}"
        head = ".".join(keys) or "(top level)"
        text = f"{head} = {_show(value)}"
        found.setdefault(text, [])
        if rule not in found[text]:
            found[text].append(rule)
    return [f"{where}: {text}: {' or '.join(rules)}" for text, rules in found.items()]


def _known(root: type[BaseModel], keys: list[str]) -> set[str]:
    model: Any = root
    for k in keys:
        model = model.model_fields[k].annotation
    return {f.alias or n for n, f in model.model_fields.items()}
