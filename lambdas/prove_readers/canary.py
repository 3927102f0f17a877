"""The canary: one planned file whose spent side is deleted first, to see who still reads it.

Before deleting, its side is checked as the delete steps check every file (verified in this run,
the kept and the removed side unchanged since, this run holding the prefix's lock) and copied aside
into the run folder. If any
answer then differs, the copy is put back - the same bytes, by a server-side copy - and nothing
else is deleted. Each transition is written to readers-check.json first, so a retried Lambda
continues where the last attempt stopped.
"""

from __future__ import annotations

from batch_job.errors import Refused, StoreError
from batch_job.locations import parse_location
from batch_job.locks import Locks
from batch_job.records import CanaryObject, CanaryRecord, CanaryStatus, Plan, ReadersCheck, now
from batch_job.runfolder import RunFolder
from batch_job.steps.delete import deletable
from batch_job.stores import S3Store


class CanaryNotRestored(Exception):
    """The canary could not be put back: the message says where its copy is."""


class Canary:
    def __init__(self, run: RunFolder, plan: Plan, key: str, record: ReadersCheck) -> None:
        self.run = run
        self.plan = plan
        self.planned = next(f for f in plan.files if f.key == key)
        self.data = parse_location(plan.target).store
        self.aside = run.location
        self.record = record
        if not isinstance(self.data, S3Store) or not isinstance(self.aside.store, S3Store):
            raise Refused("the canary needs the data and the run folder on S3")

    @property
    def status(self) -> CanaryStatus | None:
        return self.record.canary_status

    @property
    def keys(self) -> list[str]:
        return [o.key for o in self.record.canary.objects] if self.record.canary else []

    def _save(self, status: CanaryStatus, objects: list[CanaryObject] | None = None) -> None:
        if self.record.canary is None:
            self.record.canary = CanaryRecord(status, now(), objects or [])
        else:
            self.record.canary.status, self.record.canary.at = status, now()
        self.run.write_readers_check(self.record)

    def delete(self) -> None:
        """Check, copy aside, then delete the canary's spent side (conditional on its ETags)."""
        if self.status in (CanaryStatus.DELETED, CanaryStatus.RESTORED, CanaryStatus.RELEASED):
            return
        if self.status is None:
            verified = self.run.verified_records(self.planned.shard).get(self.planned.key)
            if verified is None:
                raise Refused(f"canary {self.planned.key} was not verified OK in this run; nothing deleted")
            objects = []
            for key, etag in deletable(self.data, self.plan.mode, self.planned, verified):
                copy = self.data.copy(key, etag, self.aside.store, self.run.canary_key(key))
                objects.append(CanaryObject(key, etag, copy.size, copy.key, copy.etag))
            self._save(CanaryStatus.SET_ASIDE, objects)
        objects = self.record.canary.objects
        Locks(parse_location(self.plan.target)).check_held_by(self.run.uri)  # as every destructive step does
        self.data.delete([(o.key, o.etag) for o in objects])
        self._save(CanaryStatus.DELETED)

    def restore(self) -> None:
        """Put the canary back from its copy and check it is the same object (size, and ETag where S3
        keeps it); refuse loudly if it cannot be."""
        for o in self.record.canary.objects:
            try:
                back = self.aside.store.copy(o.aside, o.aside_etag, self.data, o.key)
            except StoreError as exc:
                raise CanaryNotRestored(
                    f"canary {o.key} was deleted and could not be restored ({exc}); "
                    f"copy it back from {self.aside.store.uri(o.aside)}"
                ) from exc
            if back.size != o.size:
                raise CanaryNotRestored(f"restored canary {o.key} has {back.size} bytes, expected {o.size}")
            o.restored_etag = back.etag
        self._save(CanaryStatus.RESTORED)

    def release(self) -> None:
        """The check passed: the canary stays deleted, and its copy is no longer needed."""
        self.aside.store.delete([(o.aside, o.aside_etag) for o in self.record.canary.objects])
        self._save(CanaryStatus.RELEASED)
