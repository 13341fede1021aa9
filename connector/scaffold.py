"""`po-connector new-adapter`: writes the skeleton of an installable adapter package.

The package has a pyproject that registers the adapter under `po_connector.adapters`, an adapter
module with its config model and the hooks to fill, a sandbox skeleton, a conformance test wired
to the kit and a README. Installed as written, its kit tests run: the structural ones pass and
each one that needs a hook or a fixture piece fails, naming what to provide.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from string import Template

import click

from connector.kinds import AdapterKind

NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_SUFFIX = {AdapterKind.SOURCE: "Source", AdapterKind.BILLING: "Billing", AdapterKind.SINK: "Sink"}
_ADAPTER = {
    AdapterKind.SOURCE: "source_adapter.py.tmpl",
    AdapterKind.BILLING: "billing_adapter.py.tmpl",
    AdapterKind.SINK: "sink_adapter.py.tmpl",
}
_TEST = {
    AdapterKind.SOURCE: "source_test.py.tmpl",
    AdapterKind.BILLING: "source_test.py.tmpl",
    AdapterKind.SINK: "sink_test.py.tmpl",
}


def _template(name: str) -> Template:
    return Template(resources.files("connector").joinpath("scaffold_templates", name).read_text("utf-8"))


def names_for(name: str, kind: AdapterKind) -> dict[str, str]:
    """The identifiers derived from an adapter name such as `acme-proc`."""
    if not NAME.match(name):
        raise ValueError(
            f"adapter name {name!r} must be lower case letters and digits in dash-separated words, "
            "starting with a letter (e.g. acme-proc)"
        )
    module = name.replace("-", "_")
    title = "".join(part.capitalize() for part in name.split("-"))
    return {
        "name": name,
        "kind": kind.value,
        "module": module,
        "package": f"po_connector_{module}",
        "dist": f"po-connector-{name}",
        "cls": f"{title}{_SUFFIX[kind]}",
        "config_cls": f"{title}Config",
        "env_prefix": module.upper(),
    }


def write_adapter(name: str, kind: AdapterKind, target: Path) -> list[Path]:
    """Write the package skeleton of adapter `name` into the new directory `target`.

    `target` must not exist or be empty. Returns the files written.
    """
    values = names_for(name, kind)
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} exists and is not empty")
    package = values["package"]
    files = {
        Path("pyproject.toml"): "pyproject.toml.tmpl",
        Path("README.md"): "README.md.tmpl",
        Path(package, "__init__.py"): "init.py.tmpl",
        Path(package, "adapter.py"): _ADAPTER[kind],
        Path("tests", f"{values['module']}_sandbox.py"): "sandbox.py.tmpl",
        Path("tests", "test_conformance.py"): _TEST[kind],
    }
    written: list[Path] = []
    for relative, template in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_template(template).substitute(values), encoding="utf-8")
        written.append(path)
    return written


@click.command("new-adapter")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice([k.value for k in AdapterKind]),
    required=True,
    help="The port the adapter implements.",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder to create the package folder po-connector-NAME in.",
)
def new_adapter_command(name: str, kind: str, out: Path) -> None:
    """Write an installable adapter package skeleton with its conformance test."""
    target = out / f"po-connector-{name}"
    try:
        written = write_adapter(name, AdapterKind(kind), target)
    except (ValueError, FileExistsError) as exc:
        raise click.UsageError(str(exc)) from None
    for path in written:
        click.echo(str(path))
    click.echo(
        f"next: cd {target} && pip install -e . && pytest  "
        "(the failing kit tests name the hooks and fixture pieces to fill in)",
        err=True,
    )
