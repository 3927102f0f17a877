"""What can go wrong talking to the bioindex. The class name becomes the execution's Error, the
message its Cause: every refusal says in one line what was found and what to do."""

from __future__ import annotations


class BioindexUnavailable(Exception):
    """The bioindex (server or database) did not answer, after retries. Worth retrying later."""


class BioindexRejected(Exception):
    """The bioindex answered that the request itself is wrong (HTTP 4xx, an SQL error): final."""


class InsecureBioindexUrl(Exception):
    """The bioindex URL is plain http:// and the stack does not allow it."""


class BioindexRefused(Exception):
    """A pre-flight or flag check failed: nothing was changed."""


class DatabaseNotConfigured(BioindexRefused):
    """The stack's database settings cannot make a connection: its secret, host or TLS settings."""


class DatabaseNeedsTls(BioindexRejected):
    """The database refused a connection without TLS, or its certificate did not verify."""


class UnknownIndex(BioindexRefused):
    """No `__Indexes` row has this (name, prefix)."""


class AmbiguousIndex(BioindexRefused):
    """More than one `__Indexes` row has this (name, prefix)."""


class IndexNotBuilt(BioindexRefused):
    """The index exists but was never built, so it serves nothing to compare with."""


class NestedPrefix(BioindexRefused):
    """Another index's prefix equals, contains or lies inside this prefix."""


class RebuiltFromCompressed(BioindexRefused):
    """The index was built from .json.gz keys: its offsets point into compressed files."""


class FlagAlreadySet(BioindexRefused):
    """The listing already shows the wanted flag and no receipt says this (index, prefix) set it."""


class FlagNotReadBack(BioindexRefused):
    """After setting the flag, reading it back does not prove that this (index, prefix) flipped."""


class FlagChanged(BioindexRefused):
    """The flag is no longer what flag.json recorded: someone changed it since."""


class CannotList(BioindexRefused):
    """The backend cannot list the bioindex's indexes with their prefixes (the http listing has none)."""


class IndexNotServed(BioindexRefused):
    """The bioindex server at BioindexUrl does not list the index: another portal's URL, or none."""


class NoSetEndpoint(BioindexRefused):
    """FlagBackend=http, but the bioindex server has no set-compressed route."""


class CannotSample(BioindexRefused):
    """No sample queries can be formed to prove what the bioindex serves."""


class ReadersStale(Exception):
    """A bioindex process answered differently from before the run once the canary was deleted."""


class ConvertedFilesUnreadable(Exception):
    """With the new flag the bioindex answered a sample query with an error or other records before
    anything was deleted: it cannot read the converted side. The flag was set back."""


class OldAnswersNotBack(Exception):
    """After the flag was set back and the processes refreshed, the bioindex still answers differently."""
