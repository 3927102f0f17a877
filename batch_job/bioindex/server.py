"""HTTP client of the bioindex server: its listing, its query endpoints and the historic
set-compressed endpoint.

Transient failures (connection errors, timeouts, 429, 5xx) are retried with jittered exponential
backoff; other 4xx answers are final. Every request closes its connection, so that a series of
requests spreads over the server's processes instead of riding one kept-alive connection to one
of them. The bearer token is sent but never logged or put in errors.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

import urllib3

from batch_job.bioindex.errors import BioindexRejected, BioindexUnavailable, InsecureBioindexUrl
from batch_job.records import Answer

DEFAULT_SET_PATH = "/api/bio/bgcompress/set-compressed/{index}/{value}?prefix={prefix}"
INDEXES_PATH = "/api/bio/indexes"
MAX_PAGES = 1000


def records_digest(records: list) -> str:
    """SHA-256 of the records in a canonical JSON form: equal answers, equal digests."""
    return hashlib.sha256(json.dumps(records, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class BioindexServer:
    base_url: str
    token: str | None = field(default=None, repr=False)  # never in a log line or a traceback
    set_path: str = DEFAULT_SET_PATH
    attempts: int = 5
    backoff_seconds: float = 1.0
    connect_timeout: float = 3.0
    read_timeout: float = 30.0
    allow_insecure: bool = False

    def __post_init__(self) -> None:
        scheme = urlsplit(self.base_url).scheme
        if scheme not in ("https", "http"):
            raise InsecureBioindexUrl(f"bioindex URL must be https://, got {self.base_url!r}")
        if scheme == "http" and not self.allow_insecure:
            raise InsecureBioindexUrl(
                f"refusing plain http:// bioindex URL {self.base_url!r}; use https:// "
                "or deploy with the URL as InsecureBioindexUrl"
            )
        self.base_url = self.base_url.rstrip("/")
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=self.connect_timeout, read=self.read_timeout), retries=False
        )

    def _request(self, method: str, path: str, attempts: int | None = None) -> bytes:
        headers = {"Accept": "application/json", "Connection": "close"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = self.base_url + path
        attempts = attempts or self.attempts
        what = f"{method} {path.split('?')[0]}"
        last = ""
        for attempt in range(1, attempts + 1):
            try:
                resp = self._http.request(method, url, headers=headers)
            except urllib3.exceptions.HTTPError as exc:
                last = f"{type(exc).__name__} talking to {self.base_url}"
            else:
                if resp.status < 400:
                    return resp.data
                if resp.status != 429 and resp.status < 500:
                    raise BioindexRejected(f"{what} answered {resp.status}: {resp.data[:300]!r}")
                last = f"{what} answered {resp.status} {resp.data[:200].decode(errors='replace')}"
            if attempt < attempts:
                delay = min(self.backoff_seconds * 2 ** (attempt - 1), 30.0)
                time.sleep(random.uniform(delay / 2, delay))
        raise BioindexUnavailable(f"{last} (after {attempts} attempts)")

    def _json(self, path: str, attempts: int | None = None) -> dict:
        body = self._request("GET", path, attempts)
        try:
            return json.loads(body)
        except json.JSONDecodeError as exc:
            raise BioindexRejected(f"GET {path.split('?')[0]} answered something that is not JSON") from exc

    def listing(self) -> list[dict]:
        """`GET /api/bio/indexes`: every (name, arity) with its flag. It also makes the one server
        process that answers reload its cached flags."""
        return list(self._json(INDEXES_PATH).get("data", []))

    def flags(self, index: str) -> list[bool]:
        """The `compressed` flag of every arity of the index (the listing does not show prefixes)."""
        return [bool(entry.get("compressed")) for entry in self.listing() if entry.get("index") == index]

    def refresh(self, times: int, burst: int = 1) -> None:
        """Ask `times` times for the listing, each on a new connection, `burst` at once. Each request
        reloads the flags of the one process that takes it: whichever is idle. Requests in flight
        together keep the processes that took them busy, so the next ones go to others - which is why
        bursts reach more processes than a series (bench/reader_reach.py) - but nothing makes a
        process that is busy with a long query take one: this is never a proof."""
        with ThreadPoolExecutor(max_workers=max(1, burst)) as pool:
            for _ in pool.map(lambda _: self._request("GET", INDEXES_PATH), range(times)):
                pass

    def _set_path(self, index: str, prefix: str, compressed: bool) -> str:
        return self.set_path.format(
            index=quote(index, safe=""), value=str(compressed).lower(), prefix=quote(prefix, safe="")
        )

    def set_compressed(self, index: str, prefix: str, compressed: bool) -> None:
        self._request("POST", self._set_path(index, prefix, compressed))

    def has_set_route(self, index: str, prefix: str) -> bool:
        """Whether the set-compressed route exists, without calling it: a GET of a route that takes
        only POST answers 405 (FastAPI, the bioindex's framework); a route that is not there, 404."""
        path = self._set_path(index, prefix, True)
        try:
            self._request("GET", path)
        except BioindexRejected as exc:
            return " answered 404" not in str(exc)
        return True

    def keys(self, index: str, arity: int) -> list[list[str]]:
        """`GET /api/bio/keys/{index}/{arity}`: the distinct key values of the index's key columns."""
        return [list(map(str, k)) for k in self._json(f"/api/bio/keys/{quote(index, safe='')}/{arity}").get("keys", [])]

    def answer(self, index: str, q: list[str], attempts: int | None = None) -> Answer:
        """Every record the bioindex answers to `q` (all continuation pages), counted and hashed."""
        body = self._json(f"/api/bio/query/{quote(index, safe='')}?q={quote(','.join(q), safe='')}", attempts)
        records = list(body.get("data") or [])
        for _ in range(MAX_PAGES):
            token = body.get("continuation")
            if not token:
                return Answer(list(q), len(records), records_digest(records))
            body = self._json(f"/api/bio/cont?token={quote(str(token), safe='')}", attempts)
            records += list(body.get("data") or [])
        raise BioindexRejected(f"the answer to {q} has more than {MAX_PAGES} pages; choose smaller queries")
