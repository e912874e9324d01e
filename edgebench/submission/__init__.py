"""Submissions: the tree `edgebench submit` assembles, the rules it is held to, and the
checker that holds it to them."""

from __future__ import annotations


class SubmissionError(ValueError):
    """Input that cannot become (or be checked as) a submission; the message names the fix."""
