"""CloudFormation's intrinsic functions, evaluated as a deployment would, for the offline stack.

The offline stack creates the template's resources itself, and the least-privilege check reads the
roles the SAM transform generates: both need `!Sub`, `!If` and the rest resolved with the values a
deployment gives the parameters and resources. Only the functions the template uses are known; any
other is an error, so nothing is silently left unresolved.
"""

from __future__ import annotations

import re
from typing import Any

NO_VALUE = object()  # AWS::NoValue: the property or list item is left out


class Intrinsics:
    """`refs`: each parameter's value (a list for list types) and each resource's Ref and
    `Name.Attribute`; `conditions`: the template's Conditions section."""

    def __init__(self, refs: dict[str, Any], conditions: dict[str, Any] | None = None) -> None:
        self.refs = refs
        self.conditions = conditions or {}

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.conditions[name]))

    def _sub(self, text: str, names: dict[str, Any]) -> str:
        def value(match: re.Match) -> str:
            name = match.group(1)
            return str(names[name] if name in names else self.refs[name])

        return re.sub(r"\$\{([^}!]+)\}", value, text)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((fn, arg),) = value.items()
            if fn == "Ref":
                return NO_VALUE if arg == "AWS::NoValue" else self.refs[arg]
            if fn == "Fn::GetAtt":
                return self.refs[arg if isinstance(arg, str) else ".".join(arg)]
            if fn == "Fn::Sub":
                text, names = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))
                return self._sub(text, names)
            if fn == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if fn == "Condition":
                return self.condition(arg)
            if fn == "Fn::Equals":
                left, right = self.resolve(arg)
                return left == right
            if fn == "Fn::Not":
                return not self.resolve(arg[0])
            if fn == "Fn::And":
                return all(self.resolve(arg))
            if fn == "Fn::Or":
                return any(self.resolve(arg))
            if fn == "Fn::Contains":  # Rules only
                values, value = self.resolve(arg)
                return value in values
            if fn == "Fn::EachMemberEquals":  # Rules only
                values, value = self.resolve(arg)
                return all(v == value for v in values)
            if fn == "Fn::EachMemberIn":  # Rules only
                values, allowed = self.resolve(arg)
                return all(v in allowed for v in values)
            if fn == "Fn::Join":
                return arg[0].join(str(v) for v in self.resolve(arg[1]))
            if fn == "Fn::Split":
                return self.resolve(arg[1]).split(arg[0])
            if fn == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if fn.startswith("Fn::"):
                raise ValueError(f"the offline stack does not evaluate {fn}")
        resolved = {key: self.resolve(item) for key, item in value.items()}
        return {key: item for key, item in resolved.items() if item is not NO_VALUE}


def parameter_values(template: dict, given: dict[str, str]) -> dict[str, Any]:
    """Each parameter's value as a Ref gives it: the given one or its Default, a list for list types."""
    values: dict[str, Any] = {}
    for name, spec in template["Parameters"].items():
        value = given.get(name, str(spec.get("Default", "")))
        list_type = spec["Type"] == "CommaDelimitedList" or spec["Type"].startswith("List<")
        values[name] = value.split(",") if list_type else value
    return values


# What CloudFormation accepts inside Rules (RuleCondition and Assert); anything else - Fn::Join, Fn::Sub,
# and in practice Fn::If - fails change-set creation for the whole template, whatever the parameters.
RULE_FUNCTIONS = {
    "Fn::And",
    "Fn::Contains",
    "Fn::EachMemberEquals",
    "Fn::EachMemberIn",
    "Fn::Equals",
    "Fn::Not",
    "Fn::Or",
    "Fn::RefAll",
    "Fn::ValueOf",
    "Fn::ValueOfAll",
    "Ref",
}


def rule_function_errors(template: dict) -> list[str]:
    """Each function a rule uses that CloudFormation refuses in Rules, in words."""
    errors = []

    def walk(rule: str, value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                walk(rule, item)
        elif isinstance(value, dict):
            for key, item in value.items():
                if (key.startswith("Fn::") or key in ("Ref", "Condition")) and key not in RULE_FUNCTIONS:
                    errors.append(f"rule {rule} uses {key}, which CloudFormation does not accept in Rules")
                walk(rule, item)

    for name, rule in template.get("Rules", {}).items():
        walk(name, [rule.get("RuleCondition"), [a.get("Assert") for a in rule.get("Assertions", [])]])
    return errors


def parameter_errors(template: dict, refs: dict[str, Any]) -> list[str]:
    """What CloudFormation refuses before it creates anything, for these parameter values: each
    parameter's AllowedPattern, AllowedValues and MinValue/MaxValue, and the template's Rules."""
    errors = rule_function_errors(template)
    for name, spec in template.get("Parameters", {}).items():
        value = refs[name]
        for item in value if isinstance(value, list) else [value]:
            text = str(item)
            if "AllowedPattern" in spec and not re.fullmatch(spec["AllowedPattern"], text):
                errors.append(f"{name}: {spec.get('ConstraintDescription', 'must match ' + spec['AllowedPattern'])}")
            if "AllowedValues" in spec and text not in [str(v) for v in spec["AllowedValues"]]:
                errors.append(f"{name}: must be one of {spec['AllowedValues']}")
            if spec.get("Type") == "Number" and text:
                if "MinValue" in spec and float(text) < float(spec["MinValue"]):
                    errors.append(f"{name}: must be at least {spec['MinValue']}")
                if "MaxValue" in spec and float(text) > float(spec["MaxValue"]):
                    errors.append(f"{name}: must be at most {spec['MaxValue']}")
    rules = Intrinsics(refs, template.get("Conditions"))
    for name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not rules.resolve(rule["RuleCondition"]):
            continue
        for assertion in rule["Assertions"]:
            if not rules.resolve(assertion["Assert"]):
                errors.append(f"{name}: {assertion.get('AssertDescription', 'assertion failed')}")
    return errors
