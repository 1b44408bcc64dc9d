"""Reference workloads for substratus-controller: tiny, dependency-free programs that follow the container contract.

Modules:
- `contract`: the container contract (paths under /content, params.json + PARAM_* env, cache dirs, failures).
- `lm`: a deterministic word-bigram "language model" with a question->answer memory.
- `load`, `importer`, `train`, `serve`: the Dataset loader, Model importer, Model trainer and Model server,
  each run as `python3 -m substratus_reference.<module>`.

Everything is Python standard library only and never touches the network.
"""
