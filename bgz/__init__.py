"""`bgz`: the operator's command for bgzip-workflow - start, watch, list and roll back runs, publish the image."""
