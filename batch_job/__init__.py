"""bgzip-workflow's batch job engine: BGZF conversion of bioindex prefixes, on S3 or a local folder."""
