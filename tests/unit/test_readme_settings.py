"""README.md's configuration table lists every setting the functions read, and no other."""

import re
from pathlib import Path

from shared.settings import Settings

README = Path(__file__).parents[2] / "README.md"


def _configuration_table_variables() -> set[str]:
    """The `NAME`s in the first column of the table under README's "## Configuration"."""
    section = README.read_text().split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row.split(" | ", 1)[0])}


def test_the_configuration_table_lists_every_setting_and_only_settings():
    aliases = {field.alias for field in Settings.model_fields.values()}
    assert None not in aliases
    assert _configuration_table_variables() == aliases
