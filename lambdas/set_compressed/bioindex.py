"""HTTP client for the two bioindex endpoints the workflow uses: set the `compressed` flag, read it back.

Transient failures (connection errors, timeouts, 429, 5xx) are retried with jittered exponential
backoff; other 4xx answers are final. The bearer token is sent but never logged or put in errors.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import urllib3

DEFAULT_SET_PATH = "/api/bio/bgcompress/set-compressed/{index}/{value}?prefix={prefix}"
INDEXES_PATH = "/api/bio/indexes"


class BioindexUnavailable(Exception):
    """The bioindex did not answer, or answered 429/5xx, after every retry. Worth retrying later."""


class BioindexRejected(Exception):
    """The bioindex answered 4xx: the request itself is wrong; retrying will not help."""


class IndexNotFound(Exception):
    """The bioindex lists no index of that name."""


class FlagNotConfirmed(Exception):
    """After setting the flag, reading it back does not show the requested value."""


class InsecureBioindexUrl(Exception):
    """The bioindex URL is plain http:// and the stack does not allow it."""


@dataclass
class BioindexClient:
    base_url: str
    token: str | None = None
    set_path: str = DEFAULT_SET_PATH
    attempts: int = 5
    backoff_seconds: float = 1.0
    connect_timeout: float = 3.0
    read_timeout: float = 20.0
    allow_insecure: bool = False

    def __post_init__(self) -> None:
        scheme = urlsplit(self.base_url).scheme
        if scheme not in ("https", "http"):
            raise InsecureBioindexUrl(f"bioindex URL must be https://, got {self.base_url!r}")
        if scheme == "http" and not self.allow_insecure:
            raise InsecureBioindexUrl(
                f"refusing plain http:// bioindex URL {self.base_url!r}; use https:// "
                "or deploy with AllowInsecureBioindex=true"
            )
        self.base_url = self.base_url.rstrip("/")
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=self.connect_timeout, read=self.read_timeout), retries=False
        )

    def _request(self, method: str, path: str) -> bytes:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = self.base_url + path
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                resp = self._http.request(method, url, headers=headers)
            except urllib3.exceptions.HTTPError as exc:
                last = f"{type(exc).__name__} talking to {self.base_url}"
            else:
                if resp.status < 400:
                    return resp.data
                if resp.status != 429 and resp.status < 500:
                    raise BioindexRejected(f"{method} {path.split('?')[0]} answered {resp.status}: {resp.data[:300]!r}")
                last = f"{method} {path.split('?')[0]} answered {resp.status}"
            if attempt < self.attempts:
                delay = min(self.backoff_seconds * 2 ** (attempt - 1), 30.0)
                time.sleep(random.uniform(delay / 2, delay))
        raise BioindexUnavailable(f"{last} (after {self.attempts} attempts)")

    def set_compressed(self, index: str, prefix: str, compressed: bool) -> None:
        path = self.set_path.format(
            index=quote(index, safe=""), value=str(compressed).lower(), prefix=quote(prefix, safe="")
        )
        self._request("POST", path)

    def compressed_flags(self, index: str) -> list[bool]:
        """The `compressed` flag of every arity of the index (the listing does not show prefixes)."""
        body = json.loads(self._request("GET", INDEXES_PATH))
        return [bool(entry.get("compressed")) for entry in body.get("data", []) if entry.get("index") == index]


def confirm(index: str, wanted: bool, before: list[bool], after: list[bool]) -> None:
    """Whether the read-back shows our (index, prefix) with the wanted flag.

    The listing has no prefix, and the set endpoint answers 200 even for an unknown (index, prefix).
    So: the index must be listed; if every arity shows the wanted value it is confirmed; with mixed
    arities, the number showing it must have grown (our update is the one that changed).
    """
    if not after:
        raise IndexNotFound(f"the bioindex lists no index named {index!r}")
    if all(flag is wanted for flag in after):
        return
    if after.count(wanted) > before.count(wanted):
        return
    raise FlagNotConfirmed(
        f"after setting compressed={str(wanted).lower()} for {index!r}, the bioindex still shows "
        f"{after.count(wanted)} of {len(after)} arities with it (is the prefix right?)"
    )
