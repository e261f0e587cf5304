"""Provenance: an invisible watermark and C2PA content credentials on every image."""
