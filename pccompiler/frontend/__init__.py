"""The frontend: user objects in, a `pcir.Model` out.

- `groups`: the group objects a user builds (inputs, products, sums) and
  the distributions and edge patterns they carry.
- `builder`: `inputs` / `multiply` / `summate` / `tie`, the builder API.
- `lowering`: `lower(root)`, groups -> a checked `pcir.Model`.
- `networkx_io`: a circuit from / to a networkx DiGraph, node by node.

The standard structures (HCLT, PD, RAT-SPN, HMM) live beside this folder in
`pccompiler/structures/` and build through the same builder API.
"""
