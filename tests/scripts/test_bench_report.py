"""Tests for scripts/bench/report.py: section replacement in the benchmarks page, and the JSON file."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from scripts.bench.report import (
    machine_info,
    machine_summary,
    replace_section,
    write_results,
)

OTHER_SECTION = (
    "## Dedup\n"
    "\n"
    "| items/s | µs |\n"
    "|---|---|\n"
    "| 1 | 2 |\n"
    "\n"
    "### Parameter choice\n"
    "\n"
    "```text\n"
    "## not a heading inside a fence\n"
    "```\n"
)


def _document() -> str:
    return "# Benchmarks\n\nIntro line.\n\n" + OTHER_SECTION + "\n## Simulated LLM profile\n\nold body\n\n## Tail\n\ntail body\n"


def test_replaces_only_the_named_section() -> None:
    """The named section's body changes; the text before and after it stays byte for byte."""
    updated = replace_section(_document(), "Simulated LLM profile", "new body\n\n| a |\n|---|\n| 1 |")
    assert "old body" not in updated
    assert "## Simulated LLM profile\n\nnew body\n\n| a |\n|---|\n| 1 |\n\n## Tail\n\ntail body\n" in updated
    assert updated.startswith("# Benchmarks\n\nIntro line.\n\n" + OTHER_SECTION)


def test_heading_inside_code_fence_does_not_end_a_section() -> None:
    """A '## ' line inside a fenced block belongs to its section, so replacing Dedup removes it too."""
    updated = replace_section(_document(), "Dedup", "dedup v2")
    assert "not a heading inside a fence" not in updated
    assert "### Parameter choice" not in updated
    assert "## Dedup\n\ndedup v2\n\n## Simulated LLM profile\n\nold body\n" in updated


def test_replacing_twice_with_the_same_body_is_idempotent() -> None:
    """A second replacement with the same markdown gives the same document."""
    once = replace_section(_document(), "Simulated LLM profile", "body\n")
    assert replace_section(once, "Simulated LLM profile", "body\n") == once
    appended = replace_section(_document(), "New one", "x")
    assert replace_section(appended, "New one", "x") == appended


def test_missing_section_is_appended_after_the_others() -> None:
    """A section not yet in the document goes at its end; the rest is kept as it was."""
    document = _document()
    updated = replace_section(document, "Gossip", "g")
    assert updated == document.rstrip("\n") + "\n\n## Gossip\n\ng\n"


def test_empty_document_gets_a_title_and_the_section() -> None:
    """An empty or missing page starts with a title, then the section."""
    updated = replace_section("", "Gossip", "g")
    assert updated.startswith("# Benchmarks\n")
    assert updated.endswith("\n\n## Gossip\n\ng\n")


def test_markdown_may_start_with_the_section_heading() -> None:
    """A body that opens with its own '## section' heading gets that heading once, not twice."""
    with_heading = replace_section(_document(), "Simulated LLM profile", "## Simulated LLM profile\n\nbody")
    assert with_heading == replace_section(_document(), "Simulated LLM profile", "body")
    assert with_heading.count("## Simulated LLM profile") == 1


def test_markdown_with_another_section_heading_is_refused() -> None:
    """A body holding a '## ' heading would split the section; it is rejected, not written."""
    with pytest.raises(ValueError, match="heading"):
        replace_section(_document(), "Gossip", "intro\n## Sneaky\nmore")
    assert replace_section("", "Gossip", "```\n## fenced is fine\n```").count("## fenced is fine") == 1


def test_write_results_writes_json_and_leaves_other_sections(tmp_path: Path) -> None:
    """write_results creates the JSON with machine info and touches only its section of the page."""
    docs = tmp_path / "docs" / "benchmarks.md"
    docs.parent.mkdir()
    docs.write_text(_document(), encoding="utf-8")
    json_path = tmp_path / "docs" / "benchmarks" / "profile.json"
    write_results("Simulated LLM profile", {"distinct": 3.7}, "measured", json_path, docs_path=docs)
    written = json.loads(json_path.read_text(encoding="utf-8"))
    assert written["section"] == "Simulated LLM profile"
    assert written["results"] == {"distinct": 3.7}
    assert written["machine"]["packages"]["openai"]
    assert written["generated_at"].endswith("+00:00")
    text = docs.read_text(encoding="utf-8")
    assert OTHER_SECTION in text and "## Tail\n\ntail body\n" in text
    assert "## Simulated LLM profile\n\nmeasured\n" in text
    write_results("Simulated LLM profile", {"distinct": 3.7}, "measured", json_path, docs_path=docs)
    assert docs.read_text(encoding="utf-8") == text
    assert sorted(p.name for p in docs.parent.iterdir()) == ["benchmarks", "benchmarks.md"]  # no temp or lock files


def test_write_results_creates_a_missing_page(tmp_path: Path) -> None:
    """With no page yet, write_results creates it (and its directory), readable by all."""
    docs = tmp_path / "new" / "benchmarks.md"
    write_results("Gossip", {}, "g", tmp_path / "g.json", docs_path=docs)
    assert docs.read_text(encoding="utf-8").endswith("## Gossip\n\ng\n")
    assert docs.stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "g.json").stat().st_mode & 0o777 == 0o644


def test_unserialisable_results_change_no_file(tmp_path: Path) -> None:
    """Results that are not JSON fail before the page or the JSON file is written."""
    docs = tmp_path / "benchmarks.md"
    docs.write_text(_document(), encoding="utf-8")
    with pytest.raises(TypeError):
        write_results("Gossip", {"bad": object()}, "g", tmp_path / "g.json", docs_path=docs)
    assert docs.read_text(encoding="utf-8") == _document()
    assert not (tmp_path / "g.json").exists()


def test_concurrent_writers_keep_both_sections(tmp_path: Path) -> None:
    """Two benchmarks writing their sections at the same time both end up in the page."""
    docs = tmp_path / "benchmarks.md"
    errors: list[BaseException] = []

    def writer(section: str) -> None:
        try:
            for round_number in range(25):
                write_results(section, {}, f"{section} round {round_number}", tmp_path / f"{section}.json",
                              docs_path=docs, machine={})  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(name,)) for name in ("Dedup", "Profile")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    text = docs.read_text(encoding="utf-8")
    assert "## Dedup\n\nDedup round 24\n" in text
    assert "## Profile\n\nProfile round 24\n" in text


def test_machine_info_names_the_machine_and_packages() -> None:
    """machine_info reports CPU, Python and the versions of the benchmarked libraries."""
    info = machine_info()
    assert info["cpu_count"] >= 1 and info["cpu_model"]
    assert info["python"].split()[-1].startswith("3.")
    assert set(info["packages"]) == {"datasketch", "openai", "aiohttp"}
    assert machine_info(["no-such-package-xyz"])["packages"] == {"no-such-package-xyz": None}
    assert "absent" in machine_summary(machine_info(["no-such-package-xyz"]))
