"""What several handlers share: their settings from the stack (`config`), setting the flag with its
receipt (`flag_record`), and the baseline answers that prove what the bioindex's processes read
(`baseline`). The backends and the server client are the engine's (`batch_job.bioindex`): the
delete jobs re-read the flag through the same code."""
