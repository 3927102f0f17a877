"""The offline stack: the SAM template's resources in moto, with Batch jobs and Lambda invokes run for
real, and a bioindex stand-in (its tables, its server processes) with sample data. The tests, the
benchmark, `make demo` and `make sandbox` are its clients; nothing here is deployed.

    sample_stack.SampleStack ── a deploy beside a bioindex, sample indexes loaded: what the tests
      │                         (tests/stacks.py), the demo and the sandbox run
      ├─ aws.OfflineAWS ── a moto server on loopback; start(), deploy(), run()/wait() an execution
      │    ├─ deployer.py      template.yaml -> moto resources, one function per resource kind
      │    │    ├─ cfn_yaml.py       the template read as CloudFormation reads it (short tags)
      │    │    ├─ intrinsics.py     Ref, Fn::Sub, Fn::If...; the parameters checked against the Rules
      │    │    └─ authorization.py  each job's and Lambda's role, from the SAM transform
      │    ├─ moto_hooks.py    the eleven patches of moto's internals (pinned moto; canary: test_offline_aws)
      │    └─ runner.py        runs each Batch job and Lambda invoke in a process of its own
      │         ├─ warm_start.py      ... forked from a zygote with the libraries imported
      │         ├─ job_runtime.py, lambda_runtime.py   what that process runs
      │         └─ recorder.py        every AWS call it makes, checked against its role as it is made
      ├─ bioindex_db.py       the bioindex's tables (MariaDB in the tests, SQLite in the demo), its indexer
      ├─ bioindex_standin.py  its server: N processes on one shared socket (bioindex_worker.py), as uvicorn's
      ├─ standin_hook.py      the ReaderRefresh=hook Lambda that restarts the stand-in
      └─ sample_index.py      sample JSON-lines data, uploaded and indexed
"""
