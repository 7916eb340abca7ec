"""Inspection tools behind `pcc dump`, `pcc stat` and `pcc dot`: they read
any .pcir, layout or .pcc file (`common.load_checked`) and print text, JSON
or Graphviz; nothing here changes a file."""
