"""Shared plumbing: settings, errors, ids, the metadata database and artifact storage."""
