"""The state machines' boundary: what the ASL, the Lambdas and `bgz` agree on, in one package.

    states.py    the states' names and the order each run passes them (the ASL is written from them)
    events.py    what each state sends its Lambda, and the execution input: pydantic models that
                 refuse an unknown key (statemachine/build.py checks every Payload against them)
    boundary.py  what the Lambdas answer and a run ends with: Plan's result (and its preview for
                 `bgz plan`), each later Lambda's answer, the run summary and the bulk report; and
                 RunInput, as `bgz start` builds it

The run folder's records, which the Batch jobs read and write too, are the engine's
(batch_job/records.py); the words both use are defined once, in batch_job/keys.py. The Lambdas get
this package from WorkflowLayer (its Makefile), the engine from EngineLayer; the job image needs
neither this package nor pydantic.
"""
