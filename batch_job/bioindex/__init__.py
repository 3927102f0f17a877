"""The bioindex as the workflow reaches it.

Two flag backends behind one interface (`backend.FlagBackend`): `mysql` works on the bioindex's own
`__Indexes` table, as today's bioindex does; `http` calls the historic set-compressed endpoint and
can only see the flag through the listing, which has no prefix. `server` is the HTTP client of the
bioindex's read endpoints, used to refresh its processes and to prove what they read.
"""
