"""Tests of bench/benchmarks_md.py: python3 bench/test_benchmarks_md.py (run by .ci/run)."""

import pathlib
import sys
import tempfile
import unittest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import benchmarks_md  # noqa: E402


class ReplaceSection(unittest.TestCase):
    def setUp(self):
        self.path = pathlib.Path(tempfile.mkdtemp()) / "BENCHMARKS.md"

    def test_writing_every_section_of_the_real_file_back_leaves_it_unchanged(self):
        real = benchmarks_md.PATH.read_text()
        self.path.write_text(real)
        sections = ["## " + s for s in real.split("\n## ")[1:]]
        self.assertGreater(len(sections), 3)
        for section in sections:
            benchmarks_md.replace_section(section.splitlines()[0], section, path=self.path)
        self.assertEqual(self.path.read_text(), real)

    def test_a_replaced_section_keeps_one_blank_line_before_the_next_heading(self):
        self.path.write_text("# B\n\n## One\n\nold\n\n## Two\n\nkept\n")
        benchmarks_md.replace_section("## One", "## One\n\nnew\n\n\n\n", path=self.path)
        self.assertEqual(self.path.read_text(), "# B\n\n## One\n\nnew\n\n## Two\n\nkept\n")

    def test_a_new_section_goes_after_its_anchor_or_else_at_the_end(self):
        self.path.write_text("# B\n\n## One\n\n1\n\n## Two\n\n2\n")
        benchmarks_md.replace_section("## New", "## New\n\nn", after="## One", path=self.path)
        benchmarks_md.replace_section("## Last", "## Last\n\nl", after="## Missing", path=self.path)
        self.assertEqual(self.path.read_text(),
                         "# B\n\n## One\n\n1\n\n## New\n\nn\n\n## Two\n\n2\n\n## Last\n\nl\n")

    def test_a_heading_is_matched_only_at_the_start_of_a_line(self):
        self.path.write_text("# B\n\nsee ## One below\n\n## One\n\nold\n")
        benchmarks_md.replace_section("## One", "## One\n\nnew", path=self.path)
        self.assertEqual(self.path.read_text(), "# B\n\nsee ## One below\n\n## One\n\nnew\n")

    def test_a_missing_file_starts_with_the_preamble(self):
        benchmarks_md.replace_section("## Only", "## Only\n\nz", path=self.path)
        self.assertEqual(self.path.read_text(), benchmarks_md.PREAMBLE + "\n## Only\n\nz\n")


if __name__ == "__main__":
    unittest.main()
