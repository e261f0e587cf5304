"""The safety stage: policy levels, prompt term lists and the output image classifier (``policy``),
and the tiny random-weight classifier for tests and CPU runs (``tiny``)."""
