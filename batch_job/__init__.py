"""bgzip-workflow's batch job engine: BGZF conversion of bioindex prefixes, on S3 or a local folder."""


def version() -> str:
    """The installed bgzip-workflow's version, shown by `bgzip-job --version` and `bgz --version`."""
    import importlib.metadata  # here: it costs every step's start 30 ms, and only --version needs it

    try:
        return importlib.metadata.version("bgzip-workflow")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"
