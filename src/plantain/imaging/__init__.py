"""Pixels in and out: input decoding and output encoding, the PNG writer, transparent backgrounds
and output sizes."""
