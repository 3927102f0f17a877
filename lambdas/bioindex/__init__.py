"""The bioindex as the Lambdas configure it (`config`), set its flag (`flag_record`) and prove what
its processes read (`readers`). The backends and the server client are the engine's
(`batch_job.bioindex`): the delete jobs re-read the flag through the same code."""
