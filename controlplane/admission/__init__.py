"""Admission: checks on a decoded object before it is stored (Pod Security)."""
