"""The offline stack: the SAM template's resources in moto, with Batch jobs and Lambda invokes run for
real, and a bioindex stand-in (its tables, its server processes) with sample data. The tests, the
benchmark and `make demo` are its clients; nothing here is deployed."""
