"""Durable state: tasks, their events, input images, output files and the webhook outbox, in one
SQLite database (``<data_dir>/plantain.db``) with output bytes in files beside it."""
