"""Tests of the EM loops, data checks and the train/eval/sample CLI."""
