"""`make demo`: one client of the offline stack (offline/), run on an embedded sample index."""
