"""`bgz selftest` against the offline stack: each check runs as the role that does the thing on AWS
(offline IAM refuses what the role does not allow, as AWS would), through the real image code and the
real Lambda, with the bioindex's MariaDB over TLS."""

from __future__ import annotations

import json

import pytest

from bgz import cli
from offline.cfn_yaml import load_template
from tests.stacks import Deployment

pytestmark = pytest.mark.slow


def run_selftest(d: Deployment, capsys) -> tuple[int, list[str]]:
    code = cli.main(["selftest", "--stack", d.name, "--region", "us-east-1", "--interval", "0.1"])
    return code, capsys.readouterr().out.splitlines()


def line(lines: list[str], name: str) -> str:
    found = [text for text in lines if text[6:].startswith(name + ":")]
    assert len(found) == 1, (name, lines)
    return found[0]


def unconditional_delete_denial(d: Deployment) -> str:
    """The one call the self test makes that template.yaml's roles refuse: Plan's delete without an ETag."""
    denials = d.denied()
    assert len(denials) == 1, denials
    (denial,) = denials
    assert denial.startswith("PlanFunctionRole may not s3:DeleteObject on arn:aws:s3:::")
    assert "with s3:if-match" not in denial
    return denial


def test_selftest_passes_on_a_new_stack_and_touches_no_bioindex_data(offline_aws, tmp_path, mariadb, capsys):
    d = Deployment(offline_aws, tmp_path, mariadb)
    try:
        before = {k: d.read(k) for k in d.data_keys()}
        code, lines = run_selftest(d, capsys)
        d.expected_denials.add(unconditional_delete_denial(d))
        assert code == 0, lines
        assert lines[-1].endswith("ready for a first run")
        assert line(lines, "lock create").startswith("ok  ")
        assert line(lines, "lock delete, wrong ETag").endswith("kept (PreconditionFailed)")
        assert line(lines, "lock delete, no ETag").endswith("kept (AccessDenied)")
        assert line(lines, "lock delete, its ETag").endswith("deleted")
        assert "over TLS, certificate verified: 1 index" in line(lines, "Lambda bioindex flag")
        assert "over TLS, certificate verified: 1 index" in line(lines, "job bioindex flag")
        assert "lists 1 index" in line(lines, "Lambda BioindexUrl")
        assert "verified through htslib, restored and verified again" in line(lines, "job compress, verify, restore")
        assert line(lines, "Lambda SDK").startswith("ok  ") and line(lines, "job SDK").startswith("ok  ")
        assert len([text for text in lines if text.startswith("ok  ")]) == 12
        assert line(lines, "Fargate On-Demand vCPU quota").endswith("quota: 4000 vCPU, MaxvCpus 64")
        # The probe is gone, the bioindex's data as it was; the scratch folder holds the round trip.
        assert d.locks() == []
        assert {k: d.read(k) for k in d.data_keys()} == before
        scratch = d.s3.list_objects_v2(Bucket=d.stack.run_bucket, Prefix="runs/selftest-")["Contents"]
        names = sorted(o["Key"].split("/", 2)[2] for o in scratch)
        assert names == [
            "compress/selftest.json",
            "compress/selftest.json.gz",
            "compress/selftest.json.gz.gzi",
            "rollback/selftest.json",
            "rollback/selftest.json.gz",
            "rollback/selftest.json.gz.gzi",
            "selftest.json",
        ]
    finally:
        d.close()


def test_selftest_fails_a_role_that_may_delete_without_an_etag_and_a_low_quota(offline_aws, tmp_path, mariadb, capsys):
    template = load_template()
    for statement in template["Resources"]["PlanFunction"]["Properties"]["Policies"][0]["Statement"]:
        if statement.get("Sid") == "ClearStaleLocks":
            del statement["Condition"]  # a role that may delete any lock, whatever its version
    d = Deployment(offline_aws, tmp_path, mariadb, template=template)
    offline_aws.runner.quotas["L-3032A538"] = 16
    try:
        code, lines = run_selftest(d, capsys)
        d.expected_denials.add(unconditional_delete_denial(d))
        assert code == 1, lines
        assert line(lines, "lock delete, no ETag").endswith(
            "was deleted; it must be kept (AccessDenied expected): the role may delete a lock without naming its ETag"
        )
        assert line(lines, "lock delete, no ETag").startswith("FAIL")
        quota = line(lines, "Fargate On-Demand vCPU quota")
        assert quota.startswith("FAIL  Fargate On-Demand vCPU quota: 16 vCPU, below MaxvCpus"), quota
        assert "deploy with MaxvCpus=16" in quota
        results = [text for text in lines if text.startswith(("ok  ", "FAIL"))]
        assert [text[:4] for text in results].count("FAIL") == 2, results
        assert lines[-1] == f"{len(results) - 2} of {len(results)} checks passed"
    finally:
        offline_aws.runner.quotas["L-3032A538"] = 4000.0
        d.close()


def test_selftest_job_says_why_the_bioindex_is_unreachable(offline_aws, tmp_path, mariadb, capsys):
    """A wrong database secret: both the Lambda and the job say the login was refused, in one line each."""
    d = Deployment(offline_aws, tmp_path, mariadb)
    try:
        secret = d.stack.refs["BioindexDatabaseSecretArn"]
        sm = offline_aws.client("secretsmanager")
        login = json.loads(sm.get_secret_value(SecretId=secret)["SecretString"])
        sm.put_secret_value(SecretId=secret, SecretString=json.dumps({**login, "password": "wrong"}))
        code, lines = run_selftest(d, capsys)
        d.expected_denials.add(unconditional_delete_denial(d))
        assert code == 1
        for where in ("Lambda", "job"):
            text = line(lines, f"{where} bioindex flag")
            assert text.startswith("FAIL") and "refused the login" in text, text
        assert line(lines, "job compress, verify, restore").startswith("ok  ")
    finally:
        d.close()
