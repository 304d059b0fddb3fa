"""Where benchmark results go: a JSON file each, and one section each of ``docs/benchmarks.md``.

Every benchmark script ends with ``write_results(section, results, markdown, json_path)``:
the JSON file gets the results with the machine they were measured on and when, and the
section ``## <section>`` of ``docs/benchmarks.md`` is replaced by the given markdown — only
that section, so benchmarks written by different people (and run concurrently) never
clobber each other's figures. ``machine_info()`` is what the JSON records about the machine;
``machine_summary()`` renders it as one line for a section's footer.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_PACKAGES",
    "DOCS_PATH",
    "machine_info",
    "machine_summary",
    "replace_section",
    "write_results",
]

ROOT = Path(__file__).resolve().parents[2]
DOCS_PATH = ROOT / "docs" / "benchmarks.md"
DEFAULT_PACKAGES = ("datasketch", "openai", "aiohttp")

_DOCUMENT_HEADER = (
    "# Benchmarks\n\n"
    "Each section is written by its script under `scripts/bench/` (raw figures in "
    "`docs/benchmarks/*.json`); rerun the script rather than editing a section by hand.\n"
)
_NEW_FILE_MODE = 0o644
_FENCE = re.compile(r"^\s*(```|~~~)")
# "## Title", optionally closed by hashes ("## Title ##"); "###" and deeper are subsections.
_SECTION_HEADING = re.compile(r"^ {0,3}##(?:[ \t]+(.*?))??(?:[ \t]+#+)?[ \t]*$")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info(packages: Sequence[str] = DEFAULT_PACKAGES) -> dict[str, Any]:
    """The machine, interpreter and library versions a result was measured with."""
    usable_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable_cpus,
        "memory_gib": _memory_gib(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {name: _package_version(name) for name in packages},
    }


def machine_summary(info: Mapping[str, Any]) -> str:
    """``machine_info()`` as one line of markdown for the end of a section."""
    packages = ", ".join(f"{name} {version or 'absent'}" for name, version in info.get("packages", {}).items())
    return (
        f"Machine: {info.get('cpu_model')} ({info.get('cpus_usable')} of {info.get('cpu_count')} CPUs), "
        f"{info.get('python')}, {info.get('platform')}; {packages}."
    )


def _section_spans(lines: Sequence[str]) -> list[tuple[str, int, int]]:
    """(title, first line, end line) of each ``## `` section; headings inside code fences don't count."""
    starts: list[tuple[str, int]] = []
    in_fence = False
    for number, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        heading = None if in_fence else _SECTION_HEADING.match(line)
        if heading is not None:
            starts.append((heading.group(1) or "", number))
    if not starts:
        return []
    ends = [start for _, start in starts[1:]] + [len(lines)]
    return [(title, start, end) for (title, start), end in zip(starts, ends, strict=True)]


def replace_section(document: str, section: str, markdown: str) -> str:
    """``document`` with section ``## section`` replaced by ``markdown`` (appended if absent).

    ``markdown`` is the section's body; it may start with the section's own heading, which is
    then dropped, but may not contain other ``## `` headings (they would end the section, and
    the next replacement would leave them behind). Everything outside the section is kept
    byte for byte, so replacing with the same body twice gives the same document.
    """
    title = section.strip()
    if not title or "\n" in title:
        raise ValueError(f"section title must be one non-empty line, got {section!r}")
    body_lines = markdown.strip("\n").splitlines()
    own_heading = _SECTION_HEADING.match(body_lines[0]) if body_lines else None
    if own_heading is not None and (own_heading.group(1) or "") == title:
        body_lines = "\n".join(body_lines[1:]).strip("\n").splitlines()
    if _section_spans(body_lines):
        raise ValueError(f"the markdown for section {title!r} contains a '## ' heading of its own")
    block = f"## {title}\n\n" + "\n".join(body_lines).rstrip() + "\n"
    if not document.strip():
        document = _DOCUMENT_HEADER
    lines = document.splitlines(keepends=True)
    matches = [(start, end) for name, start, end in _section_spans([line.rstrip("\r\n") for line in lines])
               if name == title]  # fmt: skip
    if not matches:
        return document.rstrip("\n") + "\n\n" + block
    start, end = matches[0]
    after = "".join(lines[end:])
    # Keep one blank line between this section and the next.
    return "".join(lines[:start]) + block + ("\n" + after if after else "")


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    """An exclusive lock on ``directory`` itself, so no lock file is left in docs/."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _write_atomically(path: Path, text: str) -> None:
    """Write via a temporary file and a rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp makes the file private (0600); a results page is for everyone to read.
    mode = path.stat().st_mode & 0o777 if path.exists() else _NEW_FILE_MODE
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_results(
    section: str,
    results: Mapping[str, Any],
    markdown: str,
    json_path: Path,
    *,
    docs_path: Path = DOCS_PATH,
    machine: Mapping[str, Any] | None = None,
) -> None:
    """Write ``results`` to ``json_path`` and ``markdown`` as section ``## section`` of ``docs_path``.

    The JSON holds ``section``, ``generated_at`` (UTC), ``machine`` (``machine_info()`` unless
    given) and ``results``. The docs file is created if missing; only this section changes.
    Its read-modify-write happens under an exclusive lock on its directory and ends with an
    atomic rename, so two benchmarks finishing at once both keep their sections.
    """
    document_json = json.dumps(
        {
            "section": section,
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": dict(machine) if machine is not None else machine_info(),
            "results": results,
        },
        indent=2,
        ensure_ascii=False,
    )  # serialised first: a result that isn't JSON fails before any file changes
    _write_atomically(json_path, document_json + "\n")
    docs_path.parent.mkdir(parents=True, exist_ok=True)
    with _directory_lock(docs_path.parent):
        current = docs_path.read_text(encoding="utf-8") if docs_path.exists() else ""
        updated = replace_section(current, section, markdown)
        if updated != current:
            _write_atomically(docs_path, updated)
