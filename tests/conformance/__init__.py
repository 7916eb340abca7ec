"""Conformance suite: any backend against the float64 reference."""
