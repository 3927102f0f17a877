"""Object stores the jobs read and write: S3 (plain boto3) and a local folder, behind one interface.

Every step compares ETags, so both stores give each object one: S3's own, or for a local file its
mtime and size. Both stores attach user metadata to objects (S3 metadata, local extended attributes)
so that an output records the source it was made from.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import io
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import botocore
from botocore.exceptions import ClientError

from batch_job.errors import (
    AccessDenied,
    BadInput,
    DeletesRefused,
    NoSuchBucket,
    NotDeleted,
    ObjectChanged,
    Refused,
    StoreError,
)

MiB = 1024 * 1024
GiB = 1024 * MiB
# S3's multipart limits (Amazon S3 user guide, "Amazon S3 multipart upload limits").
S3_MAX_PARTS = 10_000
S3_MIN_PART_SIZE = 5 * MiB  # every part but the last
S3_MAX_PART_SIZE = 5 * GiB

PART_SIZE = 16 * MiB  # our smallest part: few requests, little memory
PARTS_SPARE = 1_000  # parts left over for an object larger than its size hint (decompress guesses)
RANGE_SIZE = 8 * MiB  # one ranged GET of a streamed read
GUARD_SECONDS = 10  # a local lock's guard is held for a rename: waiting longer means something is stuck
DELETE_BATCH = 1000  # S3's DeleteObjects limit

# S3 error codes that mean "not allowed": retrying cannot help.
DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"}


def is_denied(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code", "") in DENIED_CODES


def part_size_for(size_hint: int) -> int:
    """PART_SIZE, or larger for an object of about `size_hint` bytes, so that it fits in
    S3_MAX_PARTS - PARTS_SPARE parts (16 MiB parts reach 140 GiB; a 5 TiB object takes 583 MiB parts)."""
    part_size = max(PART_SIZE, -(-size_hint // (S3_MAX_PARTS - PARTS_SPARE)))
    if part_size > S3_MAX_PART_SIZE:
        raise StoreError(f"an object of {size_hint} bytes needs parts over S3's limit of {S3_MAX_PART_SIZE} bytes")
    return part_size


@dataclass(frozen=True, slots=True)  # a listing may hold hundreds of thousands
class ObjectInfo:
    key: str
    size: int
    etag: str
    metadata: dict[str, str] = field(default_factory=dict, compare=False)


class Store:
    """Interface of a store; keys are `/`-separated paths within the bucket or folder."""

    # A small file's time here is its requests' latency, not its bytes: many are worked on at once.
    latency_bound = False

    def uri(self, key: str) -> str:
        raise NotImplementedError

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        raise NotImplementedError

    def head(self, key: str) -> ObjectInfo | None:
        raise NotImplementedError

    def open(self, key: str, etag: str | None = None) -> contextlib.AbstractContextManager[BinaryIO]:
        """A read stream; with `etag`, ObjectChanged unless the object is exactly that version."""
        raise NotImplementedError

    def read_range(self, key: str, start: int, length: int, etag: str) -> bytes:
        raise NotImplementedError

    def write(self, key: str, chunks: Iterable[bytes], metadata: dict[str, str], size_hint: int = 0) -> ObjectInfo:
        """Store the streamed bytes as `key` all at once: readers never see a partial object."""
        raise NotImplementedError

    def delete(self, objects: list[tuple[str, str]]) -> None:
        """Delete each (key, etag) only if the object still has that ETag (a changed one stays, and
        the call fails naming it); a key already gone is not an error, as deletes are re-run."""
        raise NotImplementedError

    def create(self, key: str, data: bytes) -> ObjectInfo | None:
        """Create `key` only if no object has that key (the lock primitive); None if one has."""
        raise NotImplementedError

    def replace(self, key: str, data: bytes, etag: str) -> ObjectInfo | None:
        """Overwrite `key` only if it is still version `etag` (a lock's renewal); None if it is not."""
        raise NotImplementedError

    def fenced(self, check: Callable[[], None], seconds: float) -> Store:
        """This store for deleting under a lease: `check` runs right before each delete request is sent
        (each attempt, retries included) and raises if the lease cannot cover it; each attempt is cut
        off within `seconds`, so no request of this store outlives the lease it was sent under."""
        raise NotImplementedError

    def read_object(self, key: str, limit: int) -> tuple[ObjectInfo, bytes] | None:
        """What head() says of `key` and at most its first `limit` bytes, of that very version (None if
        there is no such object): a small object whole, in one GET on S3."""
        info = self.head(key)
        if info is None:
            return None
        with self.open(key, info.etag) as stream:
            return info, stream.read(limit)

    def read_bytes(self, key: str) -> bytes | None:
        info = self.head(key)
        if info is None:
            return None
        with self.open(key) as stream:
            return stream.read()

    def read_head(self, key: str, limit: int) -> bytes | None:
        """At most the first `limit` bytes of `key` (None if there is no such object): a record's
        first line, without reading the rest (one ranged GET on S3)."""
        found = self.read_object(key, limit)
        return None if found is None else found[1]

    def write_bytes(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> ObjectInfo:
        return self.write(key, [data], metadata or {})


# Conditional writes (PutObject If-None-Match) and per-object ETags in DeleteObjects: botocore 1.36.
# The image pins its own; the Lambdas use the runtime's, which AWS updates on its own schedule.
MIN_BOTOCORE = (1, 36)


def check_botocore(version: str) -> None:
    """Refuse an SDK without the conditional requests every lock and delete relies on."""
    if tuple(int(part) for part in version.split(".")[:2]) < MIN_BOTOCORE:
        wanted = ".".join(map(str, MIN_BOTOCORE))
        raise Refused(f"botocore {version} is older than {wanted}, which S3's conditional writes and deletes need")


# The environment a client is made from: a process that changes it (a test) gets a new client.
CLIENT_SETTINGS = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN",
    "AWS_CA_BUNDLE",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)
_CLIENT_LOCK = threading.Lock()


def s3_client():
    """The process's boto3 S3 client, honouring the standard environment, with adaptive retries for
    throttling. One is shared by every store: clients are thread-safe, and each new one re-reads
    botocore's models (a bulk report reading a thousand run folders spent minutes making clients)."""
    check_botocore(botocore.__version__)
    with _CLIENT_LOCK:  # threads that start together share one client
        return _s3_client(tuple(os.environ.get(name) for name in CLIENT_SETTINGS))


@functools.lru_cache(maxsize=8)
def _s3_client(settings: tuple[str | None, ...]):
    # Adaptive retries, 10 attempts in all, unless the environment says otherwise (AWS_RETRY_MODE,
    # AWS_MAX_ATTEMPTS, which counts the first attempt): an explicit Config would override them.
    attempts = os.environ.get("AWS_MAX_ATTEMPTS", "10")
    if not attempts.isdigit() or int(attempts) < 1:
        raise BadInput(f"AWS_MAX_ATTEMPTS must be a whole number of attempts, at least 1, not {attempts!r}")
    retries = {"mode": os.environ.get("AWS_RETRY_MODE", "adaptive"), "total_max_attempts": int(attempts)}
    return _new_client(retries=retries, max_pool_connections=64)


def _new_client(**config):
    """A new S3 client with botocore Config `config`. boto3 is imported here, not at the top: a step
    on a local folder then starts without it (0.1 s less for every process)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client("s3", config=Config(**config))


class S3Store(Store):
    latency_bound = True

    def __init__(self, bucket: str, client=None) -> None:
        self.bucket = bucket
        self.client = client or s3_client()

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _error(self, exc: ClientError, key: str) -> StoreError:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("PreconditionFailed", "NoSuchKey", "404"):
            return ObjectChanged(f"{self.uri(key)} is gone or changed ({code})")
        if code in DENIED_CODES:
            return AccessDenied(f"{self.uri(key)}: access denied ({code}): the role may not do this; not retried")
        if code == "NoSuchBucket":  # a typo or another account's name: waiting cannot help
            return NoSuchBucket(f"bucket {self.bucket!r} does not exist (or not in this account and region)")
        return StoreError(f"{self.uri(key)}: {code or exc}")

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"], item["Size"], item["ETag"].strip('"'))
        except ClientError as exc:
            raise self._error(exc, prefix) from exc

    def head(self, key: str) -> ObjectInfo | None:
        try:
            resp = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._error(exc, key) from exc
        return ObjectInfo(key, resp["ContentLength"], resp["ETag"].strip('"'), resp.get("Metadata", {}))

    @contextlib.contextmanager
    def open(self, key: str, etag: str | None = None) -> Iterator[BinaryIO]:
        """Small objects as one GET; large ones as parallel ranged GETs pinned to one ETag."""
        extra = {"IfMatch": f'"{etag}"'} if etag else {}
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{RANGE_SIZE - 1}", **extra)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":  # an empty object
                yield io.BytesIO(b"")
                return
            raise self._error(exc, key) from exc
        total = int(resp.get("ContentRange", "/0").rsplit("/", 1)[-1] or 0)
        reader = _RangedReader(self, key, resp["ETag"].strip('"'), resp["Body"], total)
        try:
            yield reader
        finally:
            reader.close()

    def read_object(self, key: str, limit: int) -> tuple[ObjectInfo, bytes] | None:
        if limit <= 0:
            return super().read_object(key, limit)
        try:
            resp = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{limit - 1}")
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            if code == "InvalidRange":  # an empty object
                return super().read_object(key, limit)
            raise self._error(exc, key) from exc
        # A store that ignores Range answers the whole object: its ContentLength is then its size.
        size = int(resp["ContentRange"].rsplit("/", 1)[-1]) if "ContentRange" in resp else resp["ContentLength"]
        info = ObjectInfo(key, size, resp["ETag"].strip('"'), resp.get("Metadata", {}))
        with contextlib.closing(resp["Body"]) as body:
            return info, body.read(limit)

    def read_range(self, key: str, start: int, length: int, etag: str) -> bytes:
        if length <= 0:
            return b""
        try:
            resp = self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={start}-{start + length - 1}", IfMatch=f'"{etag}"'
            )
        except ClientError as exc:
            raise self._error(exc, key) from exc
        return resp["Body"].read()

    def write(self, key: str, chunks: Iterable[bytes], metadata: dict[str, str], size_hint: int = 0) -> ObjectInfo:
        upload = _MultipartUpload(self, key, metadata, part_size_for(size_hint))
        try:
            for chunk in chunks:
                upload.add(chunk)
            etag = upload.finish()
        except BaseException:
            upload.abort()
            raise
        # What S3 acknowledged, without a HEAD: two requests fewer for every small file compressed.
        return ObjectInfo(key, upload.size, etag, dict(metadata))

    def copy(self, key: str, etag: str, to: S3Store, to_key: str) -> ObjectInfo:
        """Server-side copy of exactly version `etag` of `key`, metadata included (in parts above
        8 MiB, as boto3's managed copy does it); the bytes never pass through this process."""
        try:
            self.client.copy(
                {"Bucket": self.bucket, "Key": key}, to.bucket, to_key, ExtraArgs={"CopySourceIfMatch": f'"{etag}"'}
            )
        except ClientError as exc:
            raise self._error(exc, key) from exc
        info = to.head(to_key)
        if info is None:
            raise StoreError(f"{to.uri(to_key)} is missing right after copying {self.uri(key)} there")
        return info

    def create(self, key: str, data: bytes) -> ObjectInfo | None:
        try:
            resp = self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
        except ClientError as exc:
            # 412: the key exists; 409: a concurrent conditional write of the same key won.
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return None
            raise self._error(exc, key) from exc
        return ObjectInfo(key, len(data), resp["ETag"].strip('"'))

    def replace(self, key: str, data: bytes, etag: str) -> ObjectInfo | None:
        try:
            resp = self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfMatch=f'"{etag}"')
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "404"):
                return None
            raise self._error(exc, key) from exc
        return ObjectInfo(key, len(data), resp["ETag"].strip('"'))

    def fenced(self, check: Callable[[], None], seconds: float) -> S3Store:
        client = _new_client(
            connect_timeout=max(1.0, seconds / 3),
            read_timeout=max(1.0, seconds * 2 / 3),
            retries={"mode": "standard", "max_attempts": 3},
        )
        for operation in ("DeleteObjects", "DeleteObject"):
            client.meta.events.register(f"before-send.s3.{operation}", lambda **_: check())
        return S3Store(self.bucket, client=client)

    def abort_stale_uploads(self, key: str) -> int:
        """Abort unfinished multipart uploads of exactly `key` left by a killed earlier attempt."""
        aborted = 0
        resp = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
        for upload in resp.get("Uploads", []):
            if upload["Key"] == key:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"])
                aborted += 1
        return aborted

    def delete(self, objects: list[tuple[str, str]]) -> None:
        errors = []
        for start in range(0, len(objects), DELETE_BATCH):
            batch = objects[start : start + DELETE_BATCH]
            # Conditional deletes: S3 deletes each object only if its ETag still matches. The ETag goes
            # bare, as in S3's own conditional-delete examples; a changed object comes back as an
            # error with the code PreconditionFailed.
            identifiers = [{"Key": key, "ETag": etag} for key, etag in batch]
            try:
                resp = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": identifiers, "Quiet": True})
            except ClientError as exc:
                raise self._error(exc, batch[0][0]) from exc
            errors += [e for e in resp.get("Errors", []) if e.get("Code") != "NoSuchKey"]
        if errors:
            kept = {e["Key"]: e.get("Code", "") for e in errors}
            named = ", ".join(f"{key} ({code})" for key, code in list(kept.items())[:5])
            if any(code in DENIED_CODES for code in kept.values()):  # per key: a bucket policy, object ownership
                raise DeletesRefused(f"{len(kept)} objects were not deleted, access denied: {named}; not retried", kept)
            raise NotDeleted(f"{len(kept)} objects were not deleted: {named}", kept)


class _RangedReader(io.RawIOBase):
    """Reads an object as consecutive ranges fetched ahead in threads: one S3 stream tops out
    well below what the codec takes, several in parallel do not. Every range is pinned with
    If-Match to the first range's ETag, so a rewrite mid-read fails instead of mixing versions."""

    AHEAD = 4

    def __init__(self, store: S3Store, key: str, etag: str, first_body, total: int) -> None:
        super().__init__()
        self.store, self.key, self.etag, self.total = store, key, etag, total
        self._current = first_body
        self._next_start = min(RANGE_SIZE, total)
        self._pool = ThreadPoolExecutor(self.AHEAD) if total > RANGE_SIZE else None
        self._pending: deque[Future] = deque()
        self._fill()

    def _fetch(self, start: int, end: int) -> bytes:
        return self.store.read_range(self.key, start, end - start, self.etag)

    def _fill(self) -> None:
        while self._pool is not None and len(self._pending) < self.AHEAD and self._next_start < self.total:
            end = min(self._next_start + RANGE_SIZE, self.total)
            self._pending.append(self._pool.submit(self._fetch, self._next_start, end))
            self._next_start = end

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(RANGE_SIZE), b""))
        while True:
            data = self._current.read(size)
            if data:
                return data
            if not self._pending:
                return b""
            self._current = io.BytesIO(self._pending.popleft().result())
            self._fill()

    def close(self) -> None:
        if self._pool is not None:
            for future in self._pending:
                future.cancel()
            self._pool.shutdown(wait=False)
        super().close()


class _MultipartUpload:
    """Streams parts to S3 as they fill, two uploads in flight; small objects become one PutObject."""

    IN_FLIGHT = 2

    def __init__(self, store: S3Store, key: str, metadata: dict[str, str], part_size: int) -> None:
        self.store = store
        self.key = key
        self.metadata = metadata
        self.part_size = part_size
        self.buffer = bytearray()
        self.size = 0
        self.upload_id: str | None = None
        self.parts: list[Future] = []
        self.pool: ThreadPoolExecutor | None = None

    @property
    def client(self):
        return self.store.client

    def add(self, chunk: bytes) -> None:
        self.buffer += chunk
        self.size += len(chunk)
        while len(self.buffer) >= self.part_size:
            part = bytes(self.buffer[: self.part_size])
            del self.buffer[: self.part_size]
            self._send(part)

    def _send(self, part: bytes) -> None:
        if self.upload_id is None:
            self.store.abort_stale_uploads(self.key)
            resp = self.client.create_multipart_upload(Bucket=self.store.bucket, Key=self.key, Metadata=self.metadata)
            self.upload_id = resp["UploadId"]
            self.pool = ThreadPoolExecutor(self.IN_FLIGHT)
        in_flight = [f for f in self.parts if not f.done()]
        if len(in_flight) >= self.IN_FLIGHT:
            in_flight[0].result()
        number = len(self.parts) + 1
        self.parts.append(self.pool.submit(self._upload_part, number, part))

    def _upload_part(self, number: int, data: bytes) -> dict:
        resp = self.client.upload_part(
            Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=data
        )
        return {"PartNumber": number, "ETag": resp["ETag"]}

    def finish(self) -> str:
        if self.upload_id is None:
            resp = self.client.put_object(
                Bucket=self.store.bucket, Key=self.key, Body=bytes(self.buffer), Metadata=self.metadata
            )
            return resp["ETag"].strip('"')
        if self.buffer:
            self._send(bytes(self.buffer))
            self.buffer.clear()
        parts = [f.result() for f in self.parts]
        resp = self.client.complete_multipart_upload(
            Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id, MultipartUpload={"Parts": parts}
        )
        self.pool.shutdown()
        return resp["ETag"].strip('"')

    def abort(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
        if self.upload_id is not None:
            with contextlib.suppress(ClientError):
                self.client.abort_multipart_upload(Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id)


_XATTR = "user.bgzip-workflow."


class LocalStore(Store):
    """A folder on disk; writes go to a hidden temporary file renamed into place when complete."""

    def __init__(self, root: str | os.PathLike, fence: Callable[[], None] | None = None, guarded: bool = False) -> None:
        """`guarded`: the locks' store, whose deletes hold a key's guard as its replaces do (_guard)."""
        self.root = Path(root).resolve()
        self._fence = fence  # fenced(): runs before each file is deleted
        self._guarded = guarded

    @contextlib.contextmanager
    def _guard(self, path: Path) -> Iterator[None]:
        """An exclusive flock on `<key>.guard` beside the key, for a lock's renewal or removal: of the two
        racing, one goes first and the other then finds the version it left. The kernel drops a flock
        when its process dies; on NFS, Linux takes it as a POSIX lock held by the server."""
        fd = os.open(path.with_name(path.name + ".guard"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + GUARD_SECONDS
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StoreError(f"{path}: another process held its guard for {GUARD_SECONDS} s") from None
                    time.sleep(0.005)
            yield
        finally:
            os.close(fd)

    def _path(self, key: str) -> Path:
        return self.root / key

    def uri(self, key: str) -> str:
        return str(self._path(key))

    @staticmethod
    def _etag(st: os.stat_result) -> str:
        return f"{st.st_mtime_ns:x}-{st.st_size:x}"

    def _info(self, key: str, path: Path | int, st: os.stat_result, with_metadata: bool) -> ObjectInfo:
        """`path` may be an open file's descriptor: then its metadata is that very file's."""
        metadata = {}
        if with_metadata:
            for name in os.listxattr(path):
                if name.startswith(_XATTR):
                    metadata[name[len(_XATTR) :]] = os.getxattr(path, name).decode()
        return ObjectInfo(key, st.st_size, self._etag(st), metadata)

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            raise StoreError(f"{base} is not a folder")
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                st = path.stat()
                yield self._info(path.relative_to(self.root).as_posix(), path, st, False)

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return self._info(key, path, st, True)

    @contextlib.contextmanager
    def open(self, key: str, etag: str | None = None) -> Iterator[BinaryIO]:
        path = self._path(key)
        try:
            stream = path.open("rb")
        except OSError as exc:
            raise ObjectChanged(f"{path}: {exc.strerror}") from exc
        with stream:
            if etag and self._etag(os.fstat(stream.fileno())) != etag:
                raise ObjectChanged(f"{path} changed since it was planned")
            yield stream

    def read_object(self, key: str, limit: int) -> tuple[ObjectInfo, bytes] | None:
        try:
            stream = self._path(key).open("rb")
        except FileNotFoundError:
            return None
        with stream:
            info = self._info(key, stream.fileno(), os.fstat(stream.fileno()), True)
            data = stream.read(limit)
            if self._etag(os.fstat(stream.fileno())) != info.etag:  # written to while it was read
                raise ObjectChanged(f"{self._path(key)} changed while it was read")
            return info, data

    def read_range(self, key: str, start: int, length: int, etag: str) -> bytes:
        with self.open(key, etag) as stream:
            stream.seek(start)
            return stream.read(length)

    @staticmethod
    def _make_parent(path: Path) -> None:
        if not path.parent.is_dir():  # a stat: mkdir(exist_ok=True) costs an exception a file
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, key: str, chunks: Iterable[bytes], metadata: dict[str, str], size_hint: int = 0) -> ObjectInfo:
        path = self._path(key)
        self._make_parent(path)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with tmp.open("wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
                for name, value in metadata.items():
                    os.setxattr(out.fileno(), _XATTR + name, value.encode())
                written = os.fstat(out.fileno())  # the rename keeps its size and mtime: the ETag
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return ObjectInfo(key, written.st_size, self._etag(written), dict(metadata))

    def create(self, key: str, data: bytes) -> ObjectInfo | None:
        path = self._path(key)
        self._make_parent(path)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with tmp.open("wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.link(tmp, path)  # atomic, and fails if the key exists: readers never see a partial object
        except FileExistsError:
            return None
        finally:
            tmp.unlink(missing_ok=True)
        return self.head(key)

    def replace(self, key: str, data: bytes, etag: str) -> ObjectInfo | None:
        """Under the key's guard (of a renewal and a removal racing, one goes first), the current
        version is checked and the new one renamed over it: the key is never missing, so a create or a
        read meanwhile finds one version or the other, never a free lock."""
        path = self._path(key)
        with self._guard(path):
            try:
                if self._etag(path.stat()) != etag:
                    return None
            except FileNotFoundError:
                return None
            return self.write(key, [data], {})  # renamed over the old version

    def fenced(self, check: Callable[[], None], seconds: float) -> LocalStore:
        return LocalStore(self.root, fence=check, guarded=self._guarded)

    def delete(self, objects: list[tuple[str, str]]) -> None:
        changed = []
        for key, etag in objects:
            path = self._path(key)
            if self._fence is not None:
                self._fence()
            with self._guard(path) if self._guarded else contextlib.nullcontext():
                # Renamed away first (atomic), then compared: a file replaced in between is never removed.
                taken = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.taken")
                try:
                    os.rename(path, taken)
                except FileNotFoundError:
                    continue
                if self._etag(taken.stat()) != etag:
                    changed.append(key)
                    with contextlib.suppress(FileExistsError):
                        os.link(taken, path)
                taken.unlink()
        if changed:
            kept = dict.fromkeys(changed, "changed")
            raise NotDeleted(f"{len(changed)} objects changed and were not deleted: {', '.join(changed[:5])}", kept)
