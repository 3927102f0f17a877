"""What can go wrong talking to the bioindex. The class name becomes the execution's Error, the
message its Cause: every refusal says in one line what was found and what to do."""

from __future__ import annotations


class BioindexUnavailable(Exception):
    """The bioindex (server or database) did not answer, after retries. Worth retrying later."""


class BioindexRejected(Exception):
    """The bioindex answered that the request itself is wrong (HTTP 4xx, an SQL error): final."""


class InsecureBioindexUrl(Exception):
    """The bioindex URL is plain http:// and the stack does not allow it."""


class Refused(Exception):
    """A pre-flight or flag check failed: nothing was changed."""


class UnknownIndex(Refused):
    """No `__Indexes` row has this (name, prefix)."""


class AmbiguousIndex(Refused):
    """More than one `__Indexes` row has this (name, prefix)."""


class IndexNotBuilt(Refused):
    """The index exists but was never built, so it serves nothing to compare with."""


class NestedPrefix(Refused):
    """Another index's prefix equals, contains or lies inside this prefix."""


class RebuiltFromCompressed(Refused):
    """The index was built from .json.gz keys: its offsets point into compressed files."""


class FlagAlreadySet(Refused):
    """The listing already shows the wanted flag and no receipt says this (index, prefix) set it."""


class FlagNotConfirmed(Refused):
    """After setting the flag, reading it back does not prove that this (index, prefix) flipped."""


class FlagChanged(Refused):
    """The flag is no longer what flag.json recorded: someone changed it since."""


class CannotList(Refused):
    """The backend cannot list the bioindex's indexes with their prefixes (the http listing has none)."""


class CannotSample(Refused):
    """No sample queries can be formed to prove what the bioindex serves."""


class ReadersStale(Exception):
    """A bioindex process answered differently from before the run once the canary was deleted."""
