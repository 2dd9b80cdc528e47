"""The pipeline: one decode fanned out to several engines; ``score``, QP maps, one-pass jobs and
resumable batches are runs of it; pooled results and result files."""
