"""Tests of the torch backend, the backend registry and .pcc files."""
