"""FlagBackend=http through the real ASL: a bioindex that exposes the historic set-compressed endpoint.
Its listing has no prefix, so an unchanged listing is never taken as proof."""

from __future__ import annotations

import pytest

from tests.stacks import INDEX, PREFIX, Deployment


@pytest.fixture
def deployment(offline_aws, tmp_path, mariadb):
    d = Deployment(offline_aws, tmp_path, mariadb, backend="http")
    yield d
    d.close()


def _before(deployment: Deployment, function: str, action) -> None:
    """Run `action` once, just before the Lambda `function` is first invoked."""
    done = []

    def hook(name: str) -> None:
        if name.endswith(function) and not done:
            done.append(name)
            action()

    deployment.aws.runner.before_invoke = hook


def _failed_before_deletion(d: Deployment, result: dict, step: str, *words: str) -> None:
    assert result["status"] == "FAILED" and result["error"] == f"{step}Failed", (
        result.get("error"),
        result.get("cause"),
    )
    for word in words:
        assert word in result["cause"], result["cause"]
    assert "No original was deleted" in result["cause"]
    assert d.originals_intact()


def test_compress_and_rollback_with_transient_errors(deployment):
    _before(deployment, "SetCompressedFunction", lambda: deployment.bioindex.inject_failures([500, 503]))
    result = deployment.run()
    assert result["status"] == "SUCCEEDED", result.get("cause")
    assert deployment.flag() is True
    assert any(
        r.startswith("POST /api/bio/bgcompress/set-compressed/associations/true?prefix=associations%2F")
        for r in deployment.bioindex.requests
    )
    assert deployment.run("rollback")["status"] == "SUCCEEDED"
    assert deployment.originals_intact() and deployment.flag() is False


def test_a_persistent_outage_is_retried_by_the_state_then_fails(deployment):
    _before(deployment, "SetCompressedFunction", lambda: deployment.bioindex.inject_failures([500] * 1000))
    result = deployment.run()
    _failed_before_deletion(deployment, result, "SetCompressed", "BioindexUnavailable", "500")
    runs = [
        e
        for e in deployment.aws.runner.lambda_logs
        if e["function"].endswith(f"{deployment.name}-SetCompressedFunction")
    ]
    assert len(runs) >= 3, "the state's Retry called the Lambda again"


def test_a_4xx_is_final(deployment):
    _before(deployment, "SetCompressedFunction", lambda: deployment.bioindex.inject_failures([403]))
    result = deployment.run()
    _failed_before_deletion(deployment, result, "SetCompressed", "BioindexRejected", "403")
    assert deployment.flag() is False


def test_an_unchanged_listing_does_not_read_back_the_flag(deployment):
    deployment.bioindex.ignore_updates()
    result = deployment.run()
    _failed_before_deletion(deployment, result, "SetCompressed", "FlagNotReadBack", "unchanged listing proves nothing")


def test_a_wrong_prefix_of_an_already_compressed_index_is_refused_at_plan(deployment, tmp_path):
    other = deployment.add_index("other-index", "other/", deployment.schema, tmp_path / "index" / "T2D")
    deployment.db.set_compressed(INDEX, PREFIX, True)
    deployment.bioindex.restart()
    result = deployment.run(index=INDEX, prefix="other/")
    assert result["status"] == "FAILED" and result["error"] == "PlanFailed", result.get("cause")
    assert "FlagAlreadySet" in result["cause"] and "'other/' may be another index's prefix" in result["cause"]
    assert not any(s.endswith(" job") for s in deployment.states)
    assert all(deployment.read(k) == v for k, v in other.items()), "nothing under other/ changed"
    listing = deployment.s3.list_objects_v2(Bucket=deployment.stack.data_bucket, Prefix="other/")["Contents"]
    assert not any(o["Key"].endswith(".gz") for o in listing)


def test_a_re_run_is_read_back_by_the_receipt_of_the_earlier_run(deployment):
    """The flag is set, then the run fails before deleting; the listing no longer changes when the next
    execution sets it again - the receipt SetCompressed kept for this (index, prefix) is the proof."""
    _before(deployment, "ProveReadersFunction", lambda: deployment.bioindex.inject_failures([403] * 1000))
    first = deployment.run()
    _failed_before_deletion(deployment, first, "ProveReaders", "BioindexRejected")
    assert deployment.flag() is True
    receipt = f"receipts/{INDEX}/{PREFIX}flag.json"
    assert deployment.s3.head_object(Bucket=deployment.stack.run_bucket, Key=receipt)

    deployment.bioindex.inject_failures([])
    deployment.aws.runner.before_invoke = None
    again = deployment.run()
    assert again["status"] == "SUCCEEDED", again.get("cause")
    assert not any(k.endswith(".json") for k in deployment.data_keys())
