"""Read Function manifests and the config file from disk or stdin. Does I/O.

Every problem found is collected and raised together as one
:class:`~ofobserve.errors.InvalidInput`, so one run reports all of them.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import yaml

from ofobserve.errors import InvalidInput, Location, Problem
from ofobserve.manifest_lint import lint_function
from ofobserve.manifests import build_function, is_function_document
from ofobserve.model import ClusterRefs, Function
from ofobserve.settings import Config, parse_config, resolve
from ofobserve.subject import Subject, check_subject

log = logging.getLogger("ofobserve")

STDIN = "-"
YAML_SUFFIXES = (".yaml", ".yml")
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Document = tuple[Location, Any]


def load_config(path: str | None) -> Config:
    """The config file, or the built-in defaults when ``path`` is ``None``."""
    if path is None:
        return Config()
    documents = list(_read_source(path, stdin=None))
    if len(documents) != 1:
        raise InvalidInput(
            [Problem(Location(path), f"expected exactly one YAML document, found {len(documents)}")]
        )
    where, data = documents[0]
    return parse_config(data, where)


def load_documents(paths: Iterable[str], stdin: IO[str] | None = None) -> list[Document]:
    """Every YAML document under ``paths`` (files, directories, ``-``), in a stable order."""
    problems: list[Problem] = []
    documents: list[Document] = []
    for path in dict.fromkeys(paths):  # the same path twice is read once
        try:
            found = list(_read_source(path, stdin))
        except InvalidInput as exc:
            problems += exc.problems
            continue
        if not any(is_function_document(doc) for _, doc in found):
            kind = "directory" if Path(path).is_dir() else "input"
            problems.append(
                Problem(
                    Location(path),
                    f"{kind} holds no Function manifests (core.openfunction.io/v1beta1 or v1beta2)",
                )
            )
        documents += found
    if problems:
        raise InvalidInput(problems)
    return documents


def build_functions(
    documents: Iterable[Document],
    refs: dict[tuple[str, str], ClusterRefs] | None = None,
    strict: bool = False,
) -> list[Function]:
    """The Function documents as models; other kinds are skipped with a note. Each field
    OpenFunction would drop is a warning on the log, or with ``strict`` a problem."""
    problems: list[Problem] = []
    functions: list[Function] = []
    seen: dict[tuple[str, str], Location] = {}
    for where, doc in documents:
        if not is_function_document(doc):
            log.info("skipping %s: %s", where, _describe(doc))
            continue
        try:
            function = build_function(doc, where)
        except InvalidInput as exc:
            problems += exc.problems
            continue
        for warning in lint_function(doc, where, function):
            if strict:
                problems.append(warning)
            else:
                log.warning("%s", warning)
        if function.key in seen:
            problems.append(
                Problem(
                    where.at("metadata.name"),
                    f"duplicate Function {function.qualified_name} "
                    f"(first defined at {seen[function.key]})",
                )
            )
            continue
        seen[function.key] = where
        if refs and function.key in refs:
            function = dataclasses.replace(function, refs=refs[function.key])
        functions.append(function)
    if problems:
        raise InvalidInput(problems)
    return functions


def resolve_subjects(functions: Iterable[Function], config: Config) -> list[Subject]:
    """Pair each function with its settings; all settings problems are raised together."""
    problems: list[Problem] = []
    subjects: list[Subject] = []
    for function in functions:
        try:
            subject = Subject(function, resolve(config, function))
        except InvalidInput as exc:
            problems += exc.problems
            continue
        problems += check_subject(subject)
        subjects.append(subject)
    if problems:
        raise InvalidInput(problems)
    return sorted(subjects, key=lambda s: s.function.key)


def load_subjects(
    paths: Iterable[str], config_path: str | None, stdin: IO[str] | None = None
) -> list[Subject]:
    """Files to subjects: config, documents, functions, settings; every problem at once."""
    return load_inputs(paths, config_path, stdin)[1]


def load_inputs(
    paths: Iterable[str],
    config_path: str | None,
    stdin: IO[str] | None = None,
    strict: bool = False,
) -> tuple[Config, list[Subject]]:
    """The config and the subjects, as :func:`load_subjects`."""
    problems: list[Problem] = []
    config = Config()
    try:
        config = load_config(config_path)
    except InvalidInput as exc:
        problems += exc.problems
    try:
        functions = build_functions(load_documents(paths, stdin), strict=strict)
    except InvalidInput as exc:
        raise InvalidInput(problems + list(exc.problems)) from None
    if problems:
        raise InvalidInput(problems)
    return config, resolve_subjects(functions, config)


# --- reading ----------------------------------------------------------------------------------


def _read_source(path: str, stdin: IO[str] | None) -> Iterator[Document]:
    if path == STDIN:
        text = (stdin or sys.stdin).read()
        yield from _parse_yaml(STDIN, text)
        return
    target = Path(path)
    if target.is_dir():
        files = sorted(p for p in target.rglob("*") if p.suffix in YAML_SUFFIXES and p.is_file())
        for file in files:
            yield from _parse_yaml(file.as_posix(), _read_text(file.as_posix()))
        return
    yield from _parse_yaml(path, _read_text(path))


def _read_text(path: str) -> str:
    where = Location(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InvalidInput([Problem(where, "no such file or directory")]) from None
    except PermissionError:
        raise InvalidInput([Problem(where, "cannot read: permission denied")]) from None
    except OSError as exc:
        raise InvalidInput([Problem(where, f"cannot read: {exc.strerror}")]) from None
    if b"\x00" in data:
        raise InvalidInput([Problem(where, "binary file, expected YAML text")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput([Problem(where, f"not UTF-8 text (byte {exc.start})")]) from None


def _parse_yaml(source: str, text: str) -> Iterator[Document]:
    try:
        raw = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        problem = Problem(Location(source), f"YAML syntax error at {at}{reason}")
        raise InvalidInput([problem]) from None
    documents = [(i, doc) for i, doc in enumerate(raw) if doc is not None]
    if not documents:
        raise InvalidInput([Problem(Location(source), "empty file: no YAML documents")])
    for index, doc in documents:
        where = Location(source, index)
        if (
            isinstance(doc, dict)
            and doc.get("kind") == "List"
            and isinstance(doc.get("items"), list)
        ):
            for j, item in enumerate(doc["items"]):
                yield where.at(f"items[{j}]"), item
        else:
            yield where, doc


def _describe(doc: object) -> str:
    if isinstance(doc, dict):
        return f"{doc.get('apiVersion', '?')} {doc.get('kind', '?')} (not a Function)"
    return f"a {type(doc).__name__}, not a Kubernetes object"
