"""Sample data and the offline demo: what `make demo` runs."""
