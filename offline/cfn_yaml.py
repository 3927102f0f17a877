"""template.yaml read as CloudFormation reads it: YAML whose short tags (`!Ref X`, `!Sub ...`,
`!GetAtt A.B`) are the long forms (`{"Ref": "X"}`, `{"Fn::Sub": ...}`, `{"Fn::GetAtt": ["A", "B"]}`).

PyYAML (which moto's server brings) with one constructor for every `!` tag: the offline stack needs
no linter to read the template (cfn-lint and its 150 MB stay in the dev tools).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """SafeLoader with CloudFormation's short intrinsic tags."""


# CloudFormation reads an unquoted 2012-10-17 (a policy's Version) as a string, not a date.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _node(loader: _Loader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


def _intrinsic(loader: _Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value = _node(loader, node)
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _intrinsic)


def loads(text: str) -> dict[str, Any]:
    """The document, every alias (`*policy`) a copy of its own: PyYAML hands out the anchored object
    itself, and the SAM transform changes what it is given."""
    return json.loads(json.dumps(yaml.load(text, Loader=_Loader)))  # a SafeLoader, with the intrinsic tags


TEMPLATE = Path(__file__).resolve().parent.parent / "template.yaml"


def load_template() -> dict:
    """template.yaml, a fresh copy each time: the SAM transform changes what it is given. Read as
    YAML once per version of the file (a tenth of a second each; a test deploys it many times)."""
    version = TEMPLATE.stat()
    return json.loads(_template_json(TEMPLATE, version.st_mtime_ns, version.st_size))


@cache
def _template_json(path: Path, mtime_ns: int, size: int) -> str:
    return json.dumps(yaml.load(path.read_text(), Loader=_Loader))
