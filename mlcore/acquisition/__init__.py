"""Acquisition: informativeness scores, diversity-aware batch selection, cold start."""
