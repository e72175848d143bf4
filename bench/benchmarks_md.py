"""Writes one section of BENCHMARKS.md, the file where every bench script reports.

Each script renders its own Markdown section (starting with its `## ` heading) and hands it
here, so the rules for where a section goes and how sections are separated live in one place.
"""

import pathlib

PATH = pathlib.Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
PREAMBLE = ("# Benchmarks\n\nEvery number here comes from a committed script; ratios compare "
            "cases measured in the same run.\n")


def replace_section(heading, section, after=None, path=PATH):
    """Puts `section` in place of the section whose heading line starts with `heading`.

    A section not there yet goes after the section whose heading starts with `after` (when
    given and present), else at the end. Sections stay separated by exactly one blank line,
    so writing the same section twice leaves the file as it was.
    """
    text = path.read_text() if path.exists() else PREAMBLE
    body = section.strip("\n") + "\n"
    start = _heading(text, heading)
    if start >= 0:
        end = text.find("\n## ", start + 1)
        rest = text[end + 1:] if end >= 0 else ""
        text = text[:start] + body + ("\n" + rest if rest else "")
    else:
        anchor = _heading(text, after) if after else -1
        end = text.find("\n## ", anchor + 1) if anchor >= 0 else -1
        if end >= 0:
            text = text[:end + 1] + body + "\n" + text[end + 1:]
        else:
            text = text.rstrip("\n") + "\n\n" + body
    path.write_text(text)


def _heading(text, heading):
    """Where the line starting with `heading` begins, or -1."""
    if text.startswith(heading):
        return 0
    at = text.find("\n" + heading)
    return at + 1 if at >= 0 else -1
