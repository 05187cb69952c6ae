"""The README's configuration table is the registry's: regenerate it with `python -m grid.docgen`."""
import pytest

from grid import config, docgen


def test_readme_config_table_matches_registry():
    readme = docgen.README.read_text()
    assert docgen.render(readme) == readme, "README config table is stale: run `python -m grid.docgen`"


def test_table_lists_every_parameter_of_every_role():
    table = docgen.config_table()
    for p in config.REGISTRY:
        assert f"`{p.name}`" in table and p.env in table


def test_render_refuses_a_readme_without_the_markers():
    with pytest.raises(ValueError, match=docgen.BEGIN):
        docgen.render("# no table here\n")
