"""The safety stage: policy levels and the screening of requests and outputs (``policy``), prompt
term lists and their matching (``terms``), the output image classifier (``classifier``), and the
tiny random-weight classifier for tests and CPU runs (``tiny``)."""
